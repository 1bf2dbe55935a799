//! The Firestore connector: each route writes one document per event.
//!
//! Only what is specific to Firestore lives here: document paths, the four
//! operations and their preconditions, field mapping and transforms, and the
//! `batchWrite` batching with per-write outcomes. Retries, rate limits,
//! idempotency and acking are the core's.

pub mod client;
pub mod config;
pub mod error;
pub mod service;

pub use config::{Action, RawAction, Target};
pub use service::FirestoreConnector;

/// The connector's description for the runtime.
#[derive(Debug)]
pub struct FirestoreSpec;

impl gluefleet_runtime::Spec for FirestoreSpec {
    type Target = Target;
    type RawAction = RawAction;
    type Connector = FirestoreConnector;

    fn build(
        target: Target,
        http: reqwest::Client,
    ) -> Result<FirestoreConnector, gluefleet_core::ConfigError> {
        FirestoreConnector::new(target, http, &|k| std::env::var(k).ok())
    }

    fn compile_action(
        _connector: &FirestoreConnector,
        raw: RawAction,
    ) -> Result<Action, gluefleet_core::ConfigError> {
        raw.compile()
    }
}
