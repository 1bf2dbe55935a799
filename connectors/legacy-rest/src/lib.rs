//! The legacy REST connector: each route is one HTTP request to one API.
//!
//! Only what is specific to REST lives here: the request (method, path
//! template, headers, body mapping, `Idempotency-Key`) and which statuses
//! mean success or already done. Retries, rate limits, auth, idempotency and
//! acking are the core's.

pub mod client;
pub mod config;
pub mod error;
pub mod service;

pub use config::{Action, RawAction, Target};
pub use service::RestConnector;

/// The connector's description for the runtime.
#[derive(Debug)]
pub struct LegacyRest;

impl gluefleet_runtime::Spec for LegacyRest {
    type Target = Target;
    type RawAction = RawAction;
    type Connector = RestConnector;

    fn build(
        target: Target,
        http: reqwest::Client,
    ) -> Result<RestConnector, gluefleet_core::ConfigError> {
        RestConnector::new(target, http)
    }

    fn compile_action(
        _connector: &RestConnector,
        raw: RawAction,
    ) -> Result<Action, gluefleet_core::ConfigError> {
        raw.compile()
    }
}
