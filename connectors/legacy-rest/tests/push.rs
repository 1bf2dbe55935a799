//! Push mode end to end: the `gluefleet-legacy-rest` binary in `serve` mode,
//! the Pub/Sub emulator pushing to it (its push subscriptions send no token,
//! hence `push.auth = "none"`), a real HTTP target. Every assertion reads
//! what the target and the dead-letter topic saw.

use gluefleet_testkit::bin::Worker;
use gluefleet_testkit::http_target::{HttpTarget, Reply};
use gluefleet_testkit::pubsub::{OutgoingMessage, PubsubEmulator, SubscriptionOptions};
use gluefleet_testkit::{TempDir, free_port};
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_gluefleet-legacy-rest");

struct Push {
    emulator: PubsubEmulator,
    target: HttpTarget,
    worker: Worker,
    _dir: TempDir,
}

/// The worker serving on a free port, then topic `orders` with a push
/// subscription to it (dead letters after 5 attempts to `dead`, read back
/// through `dead-sub`).
async fn push() -> Push {
    push_with("").await
}

/// [`push`], with `push_extra` added to the config's `[push]` table.
async fn push_with(push_extra: &str) -> Push {
    let emulator = PubsubEmulator::start()
        .await
        .expect("Pub/Sub emulator starts");
    let target = HttpTarget::start().await.expect("HTTP target");
    let dir = TempDir::new("push").expect("temp dir");
    let config = dir
        .write(
            "legacy-rest.toml",
            format!(
                r#"
[push]
auth = "none"
{push_extra}

[pubsub]
concurrency = 64

[delivery.retry]
initial_backoff = "50ms"
max_backoff = "200ms"
budget = "2s"

[target]
base_url = "{url}/erp"

[[routes]]
type = "order.*"
action = {{ path = "/orders/{{data.orderId}}", body = "{{id: .data.orderId}}" }}
"#,
                url = target.url()
            ),
        )
        .expect("config")
        .display()
        .to_string();
    let port = free_port();
    let mut env = emulator.worker_env("orders-push", "dead");
    env.push(("PORT", port.to_string()));
    let worker = Worker::spawn(Path::new(BIN), &["serve", "--config", &config], &env)
        .await
        .expect("the worker starts");
    assert!(
        worker
            .wait_for_log("Serving push deliveries.", Duration::from_secs(30))
            .await,
        "{}",
        worker.logs().join("\n")
    );
    emulator.create_topic("orders").await.expect("topic");
    emulator
        .create_topic("dead")
        .await
        .expect("dead-letter topic");
    emulator
        .create_subscription("dead-sub", "dead", SubscriptionOptions::default())
        .await
        .expect("inspect subscription");
    emulator
        .create_subscription(
            "orders-push",
            "orders",
            SubscriptionOptions {
                ack_deadline_secs: 10,
                dead_letter: Some(("dead".into(), 5)),
                push_endpoint: Some(format!("http://127.0.0.1:{port}/")),
            },
        )
        .await
        .expect("push subscription");
    Push {
        emulator,
        target,
        worker,
        _dir: dir,
    }
}

fn order(id: &str) -> OutgoingMessage {
    OutgoingMessage::cloudevent(
        &format!("ev-{id}"),
        "//erp/orders",
        "order.created",
        json!({"orderId": id}),
    )
}

async fn applied_reach(target: &HttpTarget, n: usize, limit: Duration) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if target.applied().len() >= n {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_pushed_events_are_applied_once_each() {
    let mut p = push().await;
    let orders: Vec<_> = (0..1000).map(|i| order(&format!("P{i:04}"))).collect();
    p.emulator
        .publish("orders", &orders)
        .await
        .expect("published");
    let all = applied_reach(&p.target, 1000, Duration::from_secs(120)).await;
    assert!(
        all,
        "{} applied\n{}",
        p.target.applied().len(),
        p.worker.logs().join("\n")
    );
    // A little longer: a redelivery would show up as a second effect.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let applied = p.target.applied();
    assert_eq!(applied.len(), 1000);
    assert!(applied.values().all(|n| *n == 1), "each once");
    p.worker.signal_term();
    let status = p.worker.wait(Duration::from_secs(15)).await.expect("stops");
    assert!(status.success(), "{}", p.worker.logs().join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_storm_is_redelivered_and_poison_is_dead_lettered_with_a_2xx() {
    let p = push().await;
    // Every call fails for a while: each push is answered 503 and comes back.
    p.target.script(std::iter::repeat_n(Reply::status(503), 60));
    let mut messages: Vec<_> = (0..20).map(|i| order(&format!("S{i:02}"))).collect();
    messages.push(OutgoingMessage {
        data: b"{not json".to_vec(),
        ..OutgoingMessage::default()
    });
    p.emulator
        .publish("orders", &messages)
        .await
        .expect("published");
    let all = applied_reach(&p.target, 20, Duration::from_secs(120)).await;
    assert!(
        all,
        "{} applied\n{}",
        p.target.applied().len(),
        p.worker.logs().join("\n")
    );
    assert!(p.target.applied().values().all(|n| *n == 1), "each once");
    let refused = p
        .target
        .requests()
        .iter()
        .filter(|r| r.status == 503)
        .count();
    assert_eq!(refused, 60, "the storm was met and outlasted");
    let dead = p
        .emulator
        .drain("dead-sub", Duration::from_secs(2))
        .await
        .expect("dead letters");
    let poison: Vec<_> = dead
        .iter()
        .filter(|m| m.attr("gluefleet-error-class") == "poison")
        .collect();
    assert_eq!(poison.len(), 1, "{dead:?}");
    assert_eq!(poison[0].data, b"{not json");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_past_answer_within_is_answered_503_at_once_and_redelivered() {
    // The fixture's retry budget (2 s) would wait out a 1 s Retry-After in
    // process; a request due within 500 ms cannot, so it is nacked now.
    let mut p = push_with("answer_within = \"500ms\"").await;
    p.target
        .script([Reply::status(429).header("Retry-After", "1")]);
    p.emulator
        .publish("orders", &[order("W1")])
        .await
        .expect("published");
    let applied = applied_reach(&p.target, 1, Duration::from_secs(60)).await;
    assert!(applied, "{}", p.worker.logs().join("\n"));
    p.worker.signal_term();
    let status = p.worker.wait(Duration::from_secs(15)).await.expect("stops");
    assert!(status.success(), "{}", p.worker.logs().join("\n"));
    let summary = p.worker.summary().expect("a summary at stop");
    // `retried`: handed back to Pub/Sub (here: answered 503) for redelivery.
    assert_eq!(
        (&summary["received"], &summary["retried"]),
        (&serde_json::json!(2), &serde_json::json!(1)),
        "one push answered 503 instead of waiting, then pushed again: {summary}"
    );
    assert_eq!(summary["acked"], 1, "{summary}");
    let calls: Vec<u16> = p.target.requests().iter().map(|r| r.status).collect();
    assert_eq!(calls, [429, 201], "one call per push");
    assert_eq!(p.target.applied().len(), 1);
}
