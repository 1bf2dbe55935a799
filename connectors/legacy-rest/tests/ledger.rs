//! The shared idempotency ledger on the real Firestore emulator: two worker
//! processes on one subscription, every event published twice with the same
//! CloudEvents id, and the target must see each event exactly once.

use gluefleet_testkit::TempDir;
use gluefleet_testkit::bin::Worker;
use gluefleet_testkit::firestore::FirestoreEmulator;
use gluefleet_testkit::http_target::HttpTarget;
use gluefleet_testkit::pubsub::{OutgoingMessage, PubsubEmulator};
use serde_json::json;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_gluefleet-legacy-rest");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_one_ledger_and_apply_each_event_once() {
    let (pubsub, firestore) = tokio::join!(PubsubEmulator::start(), FirestoreEmulator::start());
    let pubsub = pubsub.expect("Pub/Sub emulator starts");
    let firestore = firestore.expect("Firestore emulator starts");
    pubsub
        .create_worker_subscription("orders", "orders-sub", "dead", 30)
        .await
        .expect("topic and subscription");
    let target = HttpTarget::start().await.expect("HTTP target");
    target.set_delay(Duration::from_millis(20));

    let dir = TempDir::new("ledger").expect("temp dir");
    let config = dir
        .write(
            "c.toml",
            format!(
                r#"
[pubsub]
concurrency = 64
lease_extension = "10s"

[delivery.idempotency]
store = "firestore"
collection = "ledger"
project = "{project}"

[target]
base_url = "{}"
allow_insecure_http = true

[[routes]]
type = "order.created"
action = {{ path = "/orders/{{data.orderId}}" }}
"#,
                target.url(),
                project = firestore.project()
            ),
        )
        .expect("config");

    // 2,000 events, each published twice (same CloudEvents id, two messages),
    // the copies far apart so both workers see them.
    let events: Vec<OutgoingMessage> = (0..2000)
        .map(|i| {
            OutgoingMessage::cloudevent(
                &format!("ev-{i}"),
                "//erp",
                "order.created",
                json!({"orderId": format!("O-{i}")}),
            )
        })
        .collect();
    let mut all = events.clone();
    all.extend(events);
    pubsub.publish("orders", &all).await.expect("published");

    let config = config.display().to_string();
    let mut workers = Vec::new();
    for _ in 0..2 {
        // Each its own free PORT.
        let mut e = pubsub.worker_env("orders-sub", "dead");
        e.push(("FIRESTORE_EMULATOR_HOST", firestore.host()));
        workers.push(
            Worker::spawn(std::path::Path::new(BIN), &["run", "--config", &config], &e)
                .await
                .expect("worker"),
        );
    }
    let done = target
        .wait_for_successes(2000, Duration::from_secs(180))
        .await;
    assert!(
        done,
        "2,000 effects within 3 min\n{}",
        workers[0].logs().join("\n")
    );
    // Let any late duplicate show itself before counting.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let effects = target.effects();
    assert_eq!(effects.len(), 2000, "one key per event");
    let doubled: Vec<_> = effects.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        doubled.is_empty(),
        "events applied more than once: {doubled:?}"
    );
    for w in &workers {
        w.signal_term();
    }
    for w in &mut workers {
        let status = w
            .wait(Duration::from_secs(12))
            .await
            .expect("exits after SIGTERM");
        assert!(status.success());
    }
    // The ledger holds one done record per event, where the TTL policy will find it.
    assert_eq!(
        firestore.count("ledger").await.expect("ledger readable"),
        2000
    );
    let received: u64 = workers
        .iter()
        .flat_map(|w| w.logs())
        .filter(|l| l.contains("\"message\":\"Stopped.\""))
        .count()
        .try_into()
        .expect("small");
    assert_eq!(received, 2, "both workers stopped cleanly");
}
