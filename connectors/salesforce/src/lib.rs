//! The Salesforce connector: upsert by external id (batched through sObject
//! Collections), create, update and delete, within the org's daily API limit.
//!
//! Only what is specific to Salesforce lives here: the REST paths, the
//! per-record results of Collections, the `Sforce-Limit-Info` bookkeeping and
//! Salesforce's error codes. Auth (JWT bearer or client credentials, with
//! `instance_url`), retries, rate limits and idempotency are the core's.

pub mod client;
pub mod config;
pub mod error;
pub mod limits;
pub mod service;

pub use config::{Action, RawAction, Target};
pub use service::SalesforceConnector;

/// The connector's description for the runtime.
#[derive(Debug)]
pub struct SalesforceSpec;

impl gluefleet_runtime::Spec for SalesforceSpec {
    type Target = Target;
    type RawAction = RawAction;
    type Connector = SalesforceConnector;

    fn build(
        target: Target,
        http: reqwest::Client,
    ) -> Result<SalesforceConnector, gluefleet_core::ConfigError> {
        SalesforceConnector::new(target, http)
    }

    fn auth_defaults(auth: &mut gluefleet_core::auth::AuthConfig) {
        config::fill_auth_defaults(auth);
    }

    fn compile_action(
        connector: &SalesforceConnector,
        raw: RawAction,
    ) -> Result<Action, gluefleet_core::ConfigError> {
        let action = raw.compile()?;
        // `check` describes every object the routes use.
        connector.uses(
            &action.sobject,
            action.external_id.as_ref().map(|(f, _)| f.as_str()),
        );
        Ok(action)
    }
}
