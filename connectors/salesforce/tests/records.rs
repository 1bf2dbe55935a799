//! What a record's call carries, against the Salesforce double: the
//! external id value in a single upsert's URL (RFC 3986's unreserved
//! characters as they are, everything else percent-encoded), and the
//! README's mapping, which leaves a field the event lacks out of the record
//! instead of sending `null`, which would clear it in Salesforce.

mod common;

use gluefleet_core::outcome::{AckReason, Outcome};
use gluefleet_testkit::pipeline;
use gluefleet_testkit::salesforce::{SalesforceConfig, SalesforceDouble};
use serde_json::json;

const ROUTES: &str = r#"
[[routes]]
type = "customer.upserted"
action = { operation = "upsert", batch = false, sobject = "Account", external_id_field = "External_Id__c", external_id = "{data.id}", fields = "{Name: .data.name}" }

# The README's example mapping.
[[routes]]
type = "customer.changed"
[routes.action]
operation = "upsert"
sobject = "Account"
external_id_field = "External_Id__c"
external_id = "{data.customerId}"
fields = "{Name: .data.name, Phone: .data.phone} | with_entries(select(.value != null))"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreserved_characters_stay_and_the_rest_is_encoded() {
    let double = SalesforceDouble::start(SalesforceConfig::default())
        .await
        .expect("double");
    let p = common::pipeline(&double, "", ROUTES);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_mapping_leaves_a_missing_field_out() {
    let double = SalesforceDouble::start(SalesforceConfig::default())
        .await
        .expect("double");
    let p = common::pipeline(&double, "", ROUTES);
    let full = pipeline::cloudevent(
        "c1",
        "customer.changed",
        json!({"customerId": "K-1", "name": "One", "phone": "+47 22 00 00 01"}),
    );
    assert_eq!(p.process(&full).await, Outcome::Ack(AckReason::Delivered));
    // A later event without a phone must not clear the stored one.
    let partial = pipeline::cloudevent(
        "c2",
        "customer.changed",
        json!({"customerId": "K-1", "name": "Uno"}),
    );
    assert_eq!(
        p.process(&partial).await,
        Outcome::Ack(AckReason::Delivered)
    );
    let sent: serde_json::Value =
        serde_json::from_str(&double.requests().last().expect("a call").body).expect("JSON");
    assert_eq!(
        sent["records"][0]
            .as_object()
            .map(|r| r.contains_key("Phone")),
        Some(false),
        "{sent}"
    );
    let stored = double.record("Account", "K-1").expect("stored");
    assert_eq!(
        (stored["Name"].clone(), stored["Phone"].clone()),
        (json!("Uno"), json!("+47 22 00 00 01"))
    );
}
