//! End to end: the `gluefleet-firestore` binary between the real Pub/Sub and
//! Firestore emulators, as a Cloud Run job would run it.

use gluefleet_testkit::TempDir;
use gluefleet_testkit::bin::Worker;
use gluefleet_testkit::firestore::{FirestoreEmulator, plain};
use gluefleet_testkit::pubsub::{OutgoingMessage, PubsubEmulator, SubscriptionOptions};
use serde_json::json;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_gluefleet-firestore");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_become_documents_and_bad_ones_are_dead_lettered() {
    let (pubsub, firestore) = tokio::join!(PubsubEmulator::start(), FirestoreEmulator::start());
    let pubsub = pubsub.expect("Pub/Sub emulator starts");
    let firestore = firestore.expect("Firestore emulator starts");
    pubsub
        .create_worker_subscription("accounts", "accounts-sub", "dead", 30)
        .await
        .expect("topic and subscription");
    pubsub
        .create_subscription("dead-sub", "dead", SubscriptionOptions::default())
        .await
        .expect("inspect");

    let mut msgs: Vec<OutgoingMessage> = (0..300)
        .map(|i| {
            OutgoingMessage::cloudevent(
                &format!("c{i}"),
                "//mobile",
                "account.created",
                json!({"accountId": format!("A{i:03}"), "name": format!("n{i}")}),
            )
        })
        .collect();
    msgs.push(OutgoingMessage::json(
        &json!({"type": "account.renamed", "data": {"accountId": "GHOST", "name": "x"}}),
    ));
    pubsub.publish("accounts", &msgs).await.expect("published");

    let dir = TempDir::new("fs-e2e").expect("temp dir");
    let config = dir
        .write(
            "firestore.toml",
            format!(
            r#"
[pubsub]
concurrency = 500

[target]
project = "{}"

[[routes]]
type = "account.created"
action = {{ operation = "create", document = "accounts/{{data.accountId}}", fields = "{{name: .data.name}}", transforms = {{ createdAt = "server_timestamp" }} }}

[[routes]]
type = "account.renamed"
action = {{ operation = "update", document = "accounts/{{data.accountId}}", fields = "{{name: .data.name}}" }}
"#,
            firestore.project()
            ),
        )
        .expect("config");
    let config = config.display().to_string();
    let mut env = pubsub.worker_env("accounts-sub", "dead");
    env.push(("FIRESTORE_EMULATOR_HOST", firestore.host()));
    let mut job = Worker::spawn(
        std::path::Path::new(BIN),
        &["job", "--config", &config, "--idle-exit", "2s"],
        &env,
    )
    .await
    .expect("job starts");
    let status = job
        .wait(Duration::from_secs(120))
        .await
        .expect("job ends when idle");
    assert!(status.success(), "{}", job.logs().join("\n"));

    assert_eq!(firestore.count("accounts").await.expect("count"), 300);
    let a7 = firestore
        .get("accounts/A007")
        .await
        .expect("read")
        .expect("A007 exists");
    assert_eq!(plain(&a7["fields"])["name"], json!("n7"));
    assert!(a7["fields"]["createdAt"]["timestampValue"].is_string());

    let dead = pubsub
        .drain("dead-sub", Duration::from_secs(1))
        .await
        .expect("dead letters");
    assert_eq!(dead.len(), 1, "the rename of a missing account");
    let error = dead[0].attr("gluefleet-error").to_owned();
    assert!(
        error.contains("NOT_FOUND") && error.contains("accounts/GHOST"),
        "{error}"
    );

    let summary = job.summary().expect("summary printed");
    let requests = summary["target_requests"]
        .as_u64()
        .expect("the connector counts requests");
    assert!(
        requests < 301,
        "writes were batched: {requests} requests for 301 events"
    );
    assert_eq!(summary["acked"].as_u64(), Some(300));
}
