//! End to end: the `gluefleet-sap-odata` binary between the real Pub/Sub
//! emulator and the real SAP CAP server, once per OData version.

use gluefleet_testkit::TempDir;
use gluefleet_testkit::bin::Worker;
use gluefleet_testkit::pubsub::{OutgoingMessage, PubsubEmulator, SubscriptionOptions};
use gluefleet_testkit::sap::SapCap;
use serde_json::json;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_gluefleet-sap-odata");

/// Runs the worker as a job on subscription `sub` until it is idle, and
/// fails the test with its log unless it exits 0; the exited worker, for
/// its summary and log.
async fn run_job(pubsub: &PubsubEmulator, config: &str, sub: &str, version: &str) -> Worker {
    let mut job = Worker::spawn(
        std::path::Path::new(BIN),
        &["job", "--config", config, "--idle-exit", "2s"],
        &pubsub.worker_env(sub, "dead"),
    )
    .await
    .expect("job starts");
    let status = job
        .wait(Duration::from_secs(120))
        .await
        .expect("job ends when idle");
    assert!(status.success(), "{version}: {}", job.logs().join("\n"));
    job
}

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
    let dir = TempDir::new("sap-e2e").expect("temp dir");

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
                    push_endpoint: None,
                },
            )
            .await
            .expect("subscription");
        let tag = &version[1..];
        let mut msgs: Vec<OutgoingMessage> = (0..50)
            .map(|i| {
                OutgoingMessage::cloudevent(
                    &format!("{version}-{i}"),
                    "//crm",
                    "partner.created",
                    json!({"id": format!("E{tag}{i:03}"), "name": format!("P{i}")}),
                )
            })
            .collect();
        msgs.push(OutgoingMessage::json(
            &json!({"type": "partner.created", "data": {"id": "WAY-TOO-LONG-KEY", "name": "x"}}),
        ));
        pubsub.publish(&topic, &msgs).await.expect("published");
        let config = dir
            .write(
                &format!("{version}.toml"),
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

[[routes]]
type = "partner.renamed"
action = {{ operation = "update", entity_set = "BusinessPartners", key = {{ ID = "{{data.id}}" }}, fields = "{{name: .data.name}}" }}

[[routes]]
type = "partner.renamed.from"
action = {{ operation = "update", entity_set = "BusinessPartners", key = {{ ID = "{{data.id}}" }}, fields = "{{name: .data.name}}", etag = "{{data.etag}}" }}

[[routes]]
type = "partner.renamed.lww"
action = {{ operation = "update", entity_set = "BusinessPartners", key = {{ ID = "{{data.id}}" }}, fields = "{{name: .data.name}}", etag = "{{data.etag}}", last_writer_wins = true }}

[[routes]]
type = "partner.upserted"
action = {{ operation = "upsert", entity_set = "BusinessPartners", key = {{ ID = "{{data.id}}" }}, fields = "{{name: .data.name}}" }}

[[routes]]
type = "partner.deleted"
action = {{ operation = "delete", entity_set = "BusinessPartners", key = {{ ID = "{{data.id}}" }} }}
"#
            ),
        )
        .expect("config");
        let config = config.display().to_string();
        let job = run_job(&pubsub, &config, &sub, version).await;
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
        let error = dead[0].attr("gluefleet-error").to_owned();
        assert!(
            error.contains("String(10)"),
            "{version}: SAP's message on the dead letter: {error}"
        );

        // Second wave, on what the first created: updates (ETag read first,
        // a stale ETag from the event, last writer wins), upserts, a delete.
        let stale = "W/\"2000-01-01T00:00:00.000Z\"";
        let id = |i: u32| format!("E{tag}{i:03}");
        let wave = [
            ("partner.renamed", json!({"id": id(0), "name": "Renamed"})),
            (
                "partner.renamed.from",
                json!({"id": id(1), "name": "Stale", "etag": stale}),
            ),
            (
                "partner.renamed.lww",
                json!({"id": id(2), "name": "Latest", "etag": stale}),
            ),
            ("partner.upserted", json!({"id": id(3), "name": "Upserted"})),
            (
                "partner.upserted",
                json!({"id": format!("N{tag}"), "name": "Brand new"}),
            ),
            ("partner.deleted", json!({"id": id(4)})),
        ];
        let msgs: Vec<OutgoingMessage> = wave
            .iter()
            .enumerate()
            .map(|(n, (ty, data))| {
                OutgoingMessage::json(
                    &json!({"specversion": "1.0", "id": format!("{version}-w{n}"),
                    "source": "//crm", "type": ty, "data": data}),
                )
            })
            .collect();
        // A fresh subscription: the emulator may keep feeding a closed
        // stream of the old one for a while.
        let sub2 = format!("{sub}-2");
        pubsub
            .create_subscription(
                &sub2,
                &topic,
                SubscriptionOptions {
                    ack_deadline_secs: 30,
                    dead_letter: Some(("dead".into(), 10)),
                    push_endpoint: None,
                },
            )
            .await
            .expect("second subscription");
        pubsub
            .publish(&topic, &msgs)
            .await
            .expect("second wave published");
        let job = run_job(&pubsub, &config, &sub2, version).await;
        let name = |e: Option<serde_json::Value>| e.map(|e| e["name"].clone());
        let read = |key: String| {
            let cap = &cap;
            async move {
                cap.get_entity("BusinessPartners", &key)
                    .await
                    .expect("readable")
            }
        };
        assert_eq!(
            name(read(id(0)).await),
            Some(json!("Renamed")),
            "{version}: update\n{}",
            job.logs().join("\n")
        );
        assert_eq!(
            name(read(id(1)).await),
            Some(json!("P1")),
            "{version}: stale ETag not applied"
        );
        assert_eq!(
            name(read(id(2)).await),
            Some(json!("Latest")),
            "{version}: last writer wins"
        );
        assert_eq!(
            name(read(id(3)).await),
            Some(json!("Upserted")),
            "{version}: upsert of an existing entity"
        );
        assert_eq!(
            name(read(format!("N{tag}")).await),
            Some(json!("Brand new")),
            "{version}: upsert creates"
        );
        assert_eq!(read(id(4)).await, None, "{version}: deleted");
        let dead = pubsub
            .drain("dead-sub", Duration::from_secs(1))
            .await
            .expect("dead letters");
        assert_eq!(dead.len(), 1, "{version}: only the stale ETag");
        let error = dead[0].attr("gluefleet-error").to_owned();
        assert!(error.contains("conflict"), "{version}: {error}");
        assert_eq!(
            dead[0]
                .attributes
                .get("gluefleet-http-status")
                .map(String::as_str),
            Some("412")
        );
    }
}
