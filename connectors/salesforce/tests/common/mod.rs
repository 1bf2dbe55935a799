//! Setup shared by the in-process tests against the Salesforce double:
//! the connector from a `[target]` table, signed in with the JWT bearer
//! grant the double accepts, in a pipeline of the given routes.

use gluefleet_core::auth::{JwtBearer, JwtBearerConfig, TokenProvider};
use gluefleet_core::{Pipeline, RawMessage};
use gluefleet_salesforce::{RawAction, SalesforceConnector, Target};
use gluefleet_testkit::pipeline;
use gluefleet_testkit::salesforce::{SalesforceConfig, SalesforceDouble, TEST_PRIVATE_KEY_PEM};
use secrecy::SecretString;
use serde_json::json;
use std::sync::Arc;

/// A pipeline for `routes` whose connector reads `target` (TOML) and signs
/// in to `double`.
pub(crate) fn pipeline(
    double: &SalesforceDouble,
    target: &str,
    routes: &str,
) -> Arc<Pipeline<SalesforceConnector>> {
    let http = gluefleet_core::http::client().expect("http client");
    let target: Target = toml::from_str(target).expect("target");
    let connector = SalesforceConnector::new(target, http.clone()).expect("connector");
    let auth = JwtBearer::new(
        JwtBearerConfig {
            login_url: double.url(),
            token_url: None,
            audience: None,
            consumer_key: SalesforceConfig::default().consumer_key,
            username: SalesforceConfig::default().username,
            private_key: SecretString::from(TEST_PRIVATE_KEY_PEM),
            assumed_lifetime: None,
        },
        http,
    )
    .expect("auth");
    let auth: Arc<dyn TokenProvider> = Arc::new(auth);
    pipeline::build(
        connector,
        routes,
        |raw: RawAction| raw.compile(),
        Some(auth),
    )
}

/// `n` `customer.upserted` events with ids `<prefix>-0000`, ...
#[allow(dead_code, reason = "not every test file upserts in bulk")]
pub(crate) fn upserts(prefix: &str, n: usize) -> Vec<RawMessage> {
    (0..n)
        .map(|i| {
            pipeline::cloudevent(
                &format!("{prefix}-{i}"),
                "customer.upserted",
                json!({"id": format!("{prefix}-{i:04}"), "name": format!("Customer {i}")}),
            )
        })
        .collect()
}
