//! End to end: the `gluefleet-sap-odata` binary between the real Pub/Sub
//! emulator and the real SAP CAP server, once per OData version.

use gluefleet_testkit::bin::Worker;
use gluefleet_testkit::free_port;
use gluefleet_testkit::pubsub::{OutgoingMessage, PubsubEmulator, SubscriptionOptions};
use gluefleet_testkit::sap::SapCap;
use serde_json::json;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_gluefleet-sap-odata");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partners_through_pubsub_in_v2_and_v4() {
    let (pubsub, cap) = tokio::join!(PubsubEmulator::start(), SapCap::start());
    let pubsub = pubsub.expect("Pub/Sub emulator starts");
    let cap = cap.expect("SAP CAP starts");
    pubsub
        .create_topic("dead")
        .await
        .expect("dead-letter topic");
    pubsub
        .create_subscription("dead-sub", "dead", SubscriptionOptions::default())
        .await
        .expect("inspect");
    let dir = std::env::temp_dir().join(format!(
        "gluefleet-sap-e2e-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");

    for (version, service) in [("v4", cap.v4_service()), ("v2", cap.v2_service())] {
        let topic = format!("partners-{version}");
        let sub = format!("partners-{version}-sub");
        pubsub.create_topic(&topic).await.expect("topic");
        pubsub
            .create_subscription(
                &sub,
                &topic,
                SubscriptionOptions {
                    ack_deadline_secs: 30,
                    dead_letter: Some(("dead".into(), 10)),
                },
            )
            .await
            .expect("subscription");
        let tag = &version[1..];
        let mut msgs: Vec<OutgoingMessage> = (0..50)
            .map(|i| {
                OutgoingMessage::json(&json!({"specversion": "1.0", "id": format!("{version}-{i}"), "source": "//crm",
                    "type": "partner.created", "data": {"id": format!("E{tag}{i:03}"), "name": format!("P{i}")}}))
            })
            .collect();
        msgs.push(OutgoingMessage::json(
            &json!({"type": "partner.created", "data": {"id": "WAY-TOO-LONG-KEY", "name": "x"}}),
        ));
        pubsub.publish(&topic, &msgs).await.expect("published");
        let config = dir.join(format!("{version}.toml"));
        std::fs::write(
            &config,
            format!(
                r#"
[pubsub]
concurrency = 200

[target]
service_url = "{service}"
version = "{version}"
allow_insecure_http = true
linger = "300ms"

[[routes]]
type = "partner.created"
action = {{ operation = "create", entity_set = "BusinessPartners", key = {{ ID = "{{data.id}}" }}, fields = "{{name: .data.name}}" }}
"#
            ),
        )
        .expect("config");
        let config = config.display().to_string();
        let mut job = Worker::spawn(
            std::path::Path::new(BIN),
            &["job", "--config", &config, "--idle-exit", "2s"],
            &[
                ("PUBSUB_EMULATOR_HOST", pubsub.host()),
                ("GOOGLE_CLOUD_PROJECT", pubsub.project().to_owned()),
                ("GLUEFLEET_SUBSCRIPTION", sub.clone()),
                ("GLUEFLEET_DEAD_LETTER_TOPIC", "dead".to_owned()),
                ("PORT", free_port().to_string()),
            ],
        )
        .await
        .expect("job starts");
        let status = job
            .wait(Duration::from_secs(120))
            .await
            .expect("job ends when idle");
        assert!(status.success(), "{version}: {}", job.logs().join("\n"));
        for i in [0, 25, 49] {
            let id = format!("E{tag}{i:03}");
            assert!(
                cap.get_entity("BusinessPartners", &id)
                    .await
                    .expect("readable")
                    .is_some(),
                "{version}: {id} created"
            );
        }
        let summary = job.summary().expect("summary printed");
        assert_eq!(summary["acked"].as_u64(), Some(50), "{version}");
        assert_eq!(summary["dead_lettered"].as_u64(), Some(1), "{version}");
        let requests = summary["target_requests"].as_u64().unwrap_or(u64::MAX);
        assert!(
            requests < 20,
            "{version}: 51 events in {requests} OData requests"
        );
        let dead = pubsub
            .drain("dead-sub", Duration::from_secs(1))
            .await
            .expect("dead letters");
        assert_eq!(dead.len(), 1, "{version}");
        let error = dead[0]
            .attributes
            .get("gluefleet-error")
            .cloned()
            .unwrap_or_default();
        assert!(
            error.contains("String(10)"),
            "{version}: SAP's message on the dead letter: {error}"
        );
    }
}
