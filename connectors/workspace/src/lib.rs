//! The Google Workspace connector: each route turns one event into one call
//! of Sheets, Gmail, Calendar or the Admin SDK Directory, acting as the
//! route's subject through domain-wide delegation.
//!
//! Only what is specific to Workspace lives here: the request a route makes
//! and what its answers mean. Pulling, acking, retries, rate limits,
//! credentials, idempotency and dead letters are the core's and the
//! runtime's.

pub mod client;
pub mod config;
pub mod error;
pub mod ids;
pub mod message;
pub mod service;
pub mod sheets;

pub use config::{Action, RawAction, Target};
use gluefleet_core::ConfigError;
pub use service::WorkspaceConnector;

/// The connector's description for the runtime.
#[derive(Debug)]
pub struct Workspace;

impl gluefleet_runtime::Spec for Workspace {
    type Target = Target;
    type RawAction = RawAction;
    type Connector = WorkspaceConnector;

    fn build(target: Target, http: reqwest::Client) -> Result<WorkspaceConnector, ConfigError> {
        WorkspaceConnector::new(target, http)
    }

    fn compile_action(
        connector: &WorkspaceConnector,
        raw: RawAction,
    ) -> Result<Action, ConfigError> {
        let action = raw.compile()?;
        connector.note(&action);
        Ok(action)
    }
}
