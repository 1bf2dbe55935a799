//! An external id value in a single upsert's URL: RFC 3986's unreserved
//! characters go as they are, everything else percent-encoded, and the
//! Salesforce double stores the value the event carried.

use gluefleet_core::auth::{JwtBearer, JwtBearerConfig, TokenProvider};
use gluefleet_core::outcome::{AckReason, Outcome};
use gluefleet_salesforce::{RawAction, SalesforceConnector, Target};
use gluefleet_testkit::pipeline;
use gluefleet_testkit::salesforce::{SalesforceConfig, SalesforceDouble, TEST_PRIVATE_KEY_PEM};
use secrecy::SecretString;
use serde_json::json;
use std::sync::Arc;

const ROUTES: &str = r#"
[[routes]]
type = "customer.upserted"
action = { operation = "upsert", batch = false, sobject = "Account", external_id_field = "External_Id__c", external_id = "{data.id}", fields = "{Name: .data.name}" }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreserved_characters_stay_and_the_rest_is_encoded() {
    let double = SalesforceDouble::start(SalesforceConfig::default())
        .await
        .expect("double");
    let http = gluefleet_core::http::client().expect("http client");
    let target: Target = toml::from_str("").expect("target");
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
    let p = pipeline::build(
        connector,
        ROUTES,
        |raw: RawAction| raw.compile(),
        Some(auth),
    );
    let all_unreserved = "AZaz09-._~";
    for (value, segment) in [
        (all_unreserved, all_unreserved),
        ("ERP-0001.v2_a~b", "ERP-0001.v2_a~b"),
        ("a/b?c#d%e f", "a%2Fb%3Fc%23d%25e%20f"),
        (
            "x+y=z&w;v,u:t@s!r*q'p(o)n$m",
            "x%2By%3Dz%26w%3Bv%2Cu%3At%40s%21r%2Aq%27p%28o%29n%24m",
        ),
        ("Øre-ü", "%C3%98re-%C3%BC"),
    ] {
        let event = pipeline::cloudevent(
            value,
            "customer.upserted",
            json!({"id": value, "name": "A"}),
        );
        assert_eq!(
            p.process(&event).await,
            Outcome::Ack(AckReason::Delivered),
            "{value}"
        );
        let sent = double.requests().last().expect("a call").path.clone();
        assert_eq!(
            sent,
            format!("/services/data/v62.0/sobjects/Account/External_Id__c/{segment}"),
            "{value}"
        );
        assert!(
            double.record("Account", value).is_some(),
            "{value} stored as sent"
        );
    }
}
