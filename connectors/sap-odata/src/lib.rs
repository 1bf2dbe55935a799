//! The SAP OData connector: create, update, upsert and delete entities of an
//! OData V2 (SAP Gateway, S/4HANA on premise) or V4 (S/4HANA Cloud, CAP)
//! service.
//!
//! Only what is specific to SAP lives here: key predicates, the Gateway CSRF
//! session, ETags and `If-Match`, `$batch` in both versions, and SAP's error
//! bodies. Auth (Basic or OAuth2 client credentials), retries, rate limits and
//! idempotency are the core's.

pub mod batch;
pub mod client;
pub mod config;
pub mod error;
pub mod service;

pub use config::{Action, RawAction, Target};
pub use service::SapConnector;

/// The connector's description for the runtime.
#[derive(Debug)]
pub struct SapSpec;

impl gluefleet_runtime::Spec for SapSpec {
    type Target = Target;
    type RawAction = RawAction;
    type Connector = SapConnector;

    fn build(
        target: Target,
        http: reqwest::Client,
    ) -> Result<SapConnector, gluefleet_core::ConfigError> {
        // The CSRF session needs its own cookie jar: one client per service.
        let _ = http;
        SapConnector::new(target)
    }

    fn compile_action(
        _connector: &SapConnector,
        raw: RawAction,
    ) -> Result<Action, gluefleet_core::ConfigError> {
        raw.compile()
    }
}
