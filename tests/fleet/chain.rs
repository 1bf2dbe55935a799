//! Chaining by result events, end to end with no code: `gluefleet-legacy-rest`
//! creates customers in a CRM (a real HTTP target) and reports each outcome
//! to `customer-results`; `gluefleet-sap-odata` subscribes to that topic and
//! creates the SAP business partner (a real SAP CAP server) keyed by the id
//! the CRM answered. Both binaries run as Cloud Run jobs on the Pub/Sub
//! emulator; what is asserted is what the CRM and SAP hold afterwards.

use gluefleet_testkit::TempDir;
use gluefleet_testkit::bin::{Worker, connector_binary};
use gluefleet_testkit::http_target::{HttpTarget, Reply};
use gluefleet_testkit::pubsub::{OutgoingMessage, PubsubEmulator, SubscriptionOptions};
use gluefleet_testkit::sap::SapCap;
use serde_json::json;
use std::time::Duration;

/// Worker output lines quoted when an assertion fails.
const TAIL: usize = 40;

async fn topic_with_subscription(pubsub: &PubsubEmulator, topic: &str, sub: &str) {
    pubsub.create_topic(topic).await.expect("topic");
    pubsub
        .create_subscription(
            sub,
            topic,
            SubscriptionOptions {
                ack_deadline_secs: 30,
                dead_letter: Some(("dead".into(), 10)),
                push_endpoint: None,
            },
        )
        .await
        .expect("subscription");
}

/// Runs `connector` as a job on `sub` until idle; fails with its log unless
/// it exits 0.
async fn job(pubsub: &PubsubEmulator, connector: &str, config: &str, sub: &str) -> Worker {
    let binary = connector_binary(connector).expect("connector binary");
    let mut worker = Worker::spawn(
        &binary,
        &["job", "--config", config, "--idle-exit", "3s"],
        &pubsub.worker_env(sub, "dead"),
    )
    .await
    .expect("job starts");
    worker
        .wait_success(Duration::from_secs(120), TAIL)
        .await
        .expect("the job exits 0 once idle");
    worker
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crm_customer_becomes_an_sap_partner_carrying_the_crm_id() {
    let (pubsub, cap, crm) = tokio::join!(
        PubsubEmulator::start(),
        SapCap::start(),
        HttpTarget::start()
    );
    let pubsub = pubsub.expect("Pub/Sub emulator starts");
    let cap = cap.expect("SAP CAP starts");
    let crm = crm.expect("CRM target starts");
    pubsub
        .create_topic("dead")
        .await
        .expect("dead-letter topic");
    pubsub
        .create_subscription("dead-sub", "dead", SubscriptionOptions::default())
        .await
        .expect("inspect subscription");
    topic_with_subscription(&pubsub, "customers", "customers-sub").await;
    topic_with_subscription(&pubsub, "customer-results", "customer-results-sap").await;
    pubsub.create_topic("partner-results").await.expect("topic");
    pubsub
        .create_subscription(
            "partner-results-sub",
            "partner-results",
            SubscriptionOptions::default(),
        )
        .await
        .expect("subscription");

    // The CRM assigns its own ids; "Nobody" is refused.
    crm.rule(|r| {
        let n = if r.body.contains("Ada") {
            "41"
        } else if r.body.contains("Grace") {
            "42"
        } else {
            return Some(Reply::status(400).body(r#"{"error":"name is reserved"}"#));
        };
        Some(
            Reply::status(201)
                .header("location", format!("/crm/customers/{n}"))
                .body(format!(r#"{{"id":"CRM-{n}"}}"#)),
        )
    });

    let dir = TempDir::new("chain").expect("temp dir");
    let crm_config = dir
        .write(
            "legacy-rest.toml",
            format!(
                r#"
[target]
base_url = "{url}/crm"
allow_insecure_http = true

[[routes]]
name = "create-customer"
type = "customer.created"
results = "customer-results"
action = {{ path = "/customers", body = "{{name: .data.name}}" }}
"#,
                url = crm.url()
            ),
        )
        .expect("config");
    // No code: a route on the result type, the key taken from what the CRM
    // answered, the name from the original event the result carries. A
    // failed creation has nothing to chain, so its result is dropped here
    // (it is on the CRM side's dead-letter topic already).
    let sap_config = dir
        .write(
            "sap-odata.toml",
            format!(
                r#"
[delivery]
unroutable = "drop"

[target]
service_url = "{service}"
version = "v4"
allow_insecure_http = true

[[routes]]
name = "partner-from-crm"
type = "gluefleet.delivered"
results = "partner-results"
action = {{ operation = "create", entity_set = "BusinessPartners", key = {{ ID = "{{data.answer.body.id}}" }}, fields = "{{name: .data.data.name}}" }}
"#,
                service = cap.v4_service()
            ),
        )
        .expect("config");

    pubsub
        .publish(
            "customers",
            &[
                OutgoingMessage::cloudevent(
                    "c-1",
                    "//crm",
                    "customer.created",
                    json!({"name": "Ada"}),
                ),
                OutgoingMessage::cloudevent(
                    "c-2",
                    "//crm",
                    "customer.created",
                    json!({"name": "Grace"}),
                ),
                OutgoingMessage::cloudevent(
                    "c-3",
                    "//crm",
                    "customer.created",
                    json!({"name": "Nobody"}),
                ),
            ],
        )
        .await
        .expect("published");

    let first = job(
        &pubsub,
        "legacy-rest",
        &crm_config.display().to_string(),
        "customers-sub",
    )
    .await;
    let s = first.summary().expect("summary");
    assert_eq!(s["acked"], 2, "{s}");
    assert_eq!(s["dead_lettered"], 1, "{s}");
    assert_eq!(s["results"], 3, "every outcome reported: {s}");

    let second = job(
        &pubsub,
        "sap-odata",
        &sap_config.display().to_string(),
        "customer-results-sap",
    )
    .await;
    let s = second.summary().expect("summary");
    assert_eq!(
        s["acked"], 3,
        "two partners created, one failed result dropped: {s}"
    );
    assert_eq!(s["dead_lettered"], 0, "{s}");

    for (id, name) in [("CRM-41", "Ada"), ("CRM-42", "Grace")] {
        let partner = cap
            .get_entity("BusinessPartners", id)
            .await
            .expect("readable")
            .unwrap_or_else(|| panic!("{id} created in SAP; log:\n{}", second.logs().join("\n")));
        assert_eq!(partner["name"], name, "{partner}");
    }
    assert_eq!(crm.requests().len(), 3, "one CRM call per customer");

    // The second link reports too: SAP's key, correlated to the CRM result.
    let mut partner_results = Vec::new();
    for _ in 0..20 {
        partner_results.extend(
            pubsub
                .drain("partner-results-sub", Duration::from_millis(300))
                .await
                .expect("drain"),
        );
        if partner_results.len() >= 2 {
            break;
        }
    }
    let mut entities: Vec<String> = partner_results
        .iter()
        .map(|m| {
            assert_eq!(m.attr("ce-type"), "gluefleet.delivered");
            let data = m.json().expect("JSON result");
            data["answer"]["entity"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    entities.sort();
    assert_eq!(
        entities,
        ["BusinessPartners('CRM-41')", "BusinessPartners('CRM-42')"],
        "SAP's answer names each partner's key"
    );
}
