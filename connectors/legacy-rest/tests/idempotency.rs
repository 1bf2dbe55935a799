//! Idempotency keys as a target that honours them sees them, and leases a
//! config may not have: the real binary, from a file source (no Pub/Sub
//! needed), against the real HTTP target.

use gluefleet_testkit::bin::Worker;
use gluefleet_testkit::http_target::HttpTarget;
use gluefleet_testkit::{TempDir, free_port};
use std::path::Path;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_gluefleet-legacy-rest");

fn dir(name: &str) -> TempDir {
    TempDir::new(name).expect("temp dir")
}

async fn run(args: &[&str]) -> (Option<i32>, String) {
    let mut w = Worker::spawn(Path::new(BIN), args, &[("PORT", free_port().to_string())])
        .await
        .expect("spawn");
    let status = w.wait(Duration::from_secs(60)).await.expect("exits");
    (status.code(), w.logs().join("\n"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_of_one_order_reaches_a_target_that_honours_keys() {
    let target = HttpTarget::start().await.expect("HTTP target");
    target.honour_idempotency_keys();
    let d = dir("keys");
    // The configuration reference's example routes.
    let config = d
        .write(
            "c.toml",
            format!(
                r#"
[target]
base_url = "{}"
allow_insecure_http = true

[[routes]]
type = "order.created"
action = {{ path = "/orders/{{data.orderId}}" }}

[[routes]]
name = "order-other"
type = "order.*"
timeout = "5s"
retry = {{ max_attempts = 3, budget = "10s" }}
idempotency_key = "data.orderId"
action = {{ method = "PUT", path = "/orders/{{data.orderId}}/events" }}
"#,
                target.url()
            ),
        )
        .expect("config");
    let lines: Vec<String> = [
        "order.created",
        "order.paid",
        "order.shipped",
        "order.cancelled",
    ]
    .iter()
    .enumerate()
    .map(|(i, t)| {
        serde_json::json!({"specversion": "1.0", "id": format!("e{i}"), "source": "//erp/orders",
                               "type": t, "data": {"orderId": "A1"}})
        .to_string()
    })
    .collect();
    let events = d
        .write("events.jsonl", lines.join("\n") + "\n")
        .expect("events");
    let source = format!("file:{}", events.display());
    let (code, logs) = run(&[
        "run",
        "--config",
        &config.display().to_string(),
        "--source",
        &source,
    ])
    .await;
    assert_eq!(code, Some(0), "{logs}");

    let applied = target.applied();
    assert_eq!(
        applied.values().sum::<usize>(),
        4,
        "four changes applied, none taken for a repeat: {applied:?}"
    );
    assert_eq!(target.replays(), 0);
    // The job summary reports the in-memory store's keys and evictions.
    let summary = logs
        .lines()
        .find(|l| l.starts_with("{\"summary\""))
        .expect("summary printed");
    let summary: serde_json::Value = serde_json::from_str(summary).expect("summary is JSON");
    assert_eq!(summary["summary"]["idempotency_keys"], 4, "{summary}");
    assert_eq!(summary["summary"]["idempotency_evictions"], 0, "{summary}");
    for key in [
        "ce://erp/orders/e0",
        "key:legacy-rest/order-other/order.paid/A1",
        "key:legacy-rest/order-other/order.shipped/A1",
        "key:legacy-rest/order-other/order.cancelled/A1",
    ] {
        assert_eq!(applied.get(key), Some(&1), "{key} in {applied:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_shorter_than_a_delivery_stops_check_and_run_with_64() {
    let d = dir("lease");
    let config = d
        .write(
            "c.toml",
            r#"
[delivery.idempotency]
lease = "3s"

[target]
base_url = "http://127.0.0.1:9"
allow_insecure_http = true

[[routes]]
type = "order.created"
timeout = "10s"
action = { path = "/orders/{data.orderId}" }
"#,
        )
        .expect("config");
    let events = d.write("events.jsonl", "").expect("events");
    let config = config.display().to_string();
    let source = format!("file:{}", events.display());
    for mode in ["check", "run"] {
        let (code, logs) = run(&[mode, "--config", &config, "--source", &source]).await;
        assert_eq!(code, Some(64), "{mode}: {logs}");
        for needle in [
            "delivery.idempotency.lease (3s)",
            "timeout (10s)",
            "at least 50s",
        ] {
            assert!(
                logs.contains(needle),
                "{mode}: {needle:?} missing from: {logs}"
            );
        }
    }
}
