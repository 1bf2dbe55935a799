//! Result events end to end: the real `gluefleet-legacy-rest` binary on the
//! Pub/Sub emulator, a real HTTP target, and a route with `results`. What a
//! test asserts is what a subscriber of the results topic actually receives.

use gluefleet_testkit::TempDir;
use gluefleet_testkit::bin::Worker;
use gluefleet_testkit::http_target::{HttpTarget, Reply};
use gluefleet_testkit::pubsub::{
    OutgoingMessage, PubsubEmulator, PulledMessage, SubscriptionOptions,
};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_gluefleet-legacy-rest");

struct Fleet {
    emulator: PubsubEmulator,
    target: HttpTarget,
    config: PathBuf,
    _dir: TempDir,
}

/// Topics `customers` and `dead`, subscriptions `customers-sub` and
/// `dead-sub`; the route publishes its results to `customer-results`, which
/// exists (with `results-sub`) only when `with_results_topic`.
async fn fleet(with_results_topic: bool) -> Fleet {
    let emulator = PubsubEmulator::start()
        .await
        .expect("Pub/Sub emulator starts");
    emulator.create_topic("customers").await.expect("topic");
    emulator
        .create_topic("dead")
        .await
        .expect("dead-letter topic");
    emulator
        .create_subscription(
            "customers-sub",
            "customers",
            SubscriptionOptions {
                ack_deadline_secs: 30,
                dead_letter: Some(("dead".into(), 10)),
                push_endpoint: None,
            },
        )
        .await
        .expect("subscription");
    emulator
        .create_subscription("dead-sub", "dead", SubscriptionOptions::default())
        .await
        .expect("inspect subscription");
    if with_results_topic {
        results_topic(&emulator).await;
    }
    let target = HttpTarget::start().await.expect("HTTP target");
    let dir = TempDir::new("results").expect("temp dir");
    let text = format!(
        r#"
[pubsub]
concurrency = 8

[delivery.retry]
initial_backoff = "100ms"
max_backoff = "1s"

[target]
base_url = "{url}/crm"
allow_insecure_http = true

[[routes]]
name = "create-customer"
type = "customer.created"
results = "customer-results"
action = {{ path = "/customers", body = "{{name: .data.name}}" }}
"#,
        url = target.url()
    );
    let config = dir.write("legacy-rest.toml", text).expect("config written");
    Fleet {
        emulator,
        target,
        config,
        _dir: dir,
    }
}

async fn results_topic(emulator: &PubsubEmulator) {
    emulator
        .create_topic("customer-results")
        .await
        .expect("results topic");
    emulator
        .create_subscription(
            "results-sub",
            "customer-results",
            SubscriptionOptions::default(),
        )
        .await
        .expect("results subscription");
}

impl Fleet {
    async fn worker(&self) -> Worker {
        self.spawn(&["run", "--idle-exit", "30s"]).await
    }

    /// A Cloud Run job run: exits by itself once idle and prints its summary.
    async fn job(&self) -> Worker {
        self.spawn(&["job", "--idle-exit", "3s"]).await
    }

    async fn spawn(&self, mode: &[&str]) -> Worker {
        let config = self.config.display().to_string();
        let mut args = mode.to_vec();
        args.extend(["--config", config.as_str()]);
        let mut env = self.emulator.worker_env("customers-sub", "dead");
        env.push(("RUST_LOG", "info".into()));
        Worker::spawn(std::path::Path::new(BIN), &args, &env)
            .await
            .expect("worker starts")
    }

    /// Pulls from `sub` until `n` messages came or `timeout` passed.
    async fn collect(&self, sub: &str, n: usize, timeout: Duration) -> Vec<PulledMessage> {
        let mut got = Vec::new();
        let deadline = Instant::now() + timeout;
        while got.len() < n && Instant::now() < deadline {
            got.extend(
                self.emulator
                    .drain(sub, Duration::from_millis(300))
                    .await
                    .expect("drain"),
            );
        }
        got
    }
}

fn customer(id: &str, name: &str) -> OutgoingMessage {
    OutgoingMessage::cloudevent(id, "//crm", "customer.created", json!({"name": name}))
}

fn by_subject(results: &[PulledMessage]) -> BTreeMap<String, (String, Value)> {
    results
        .iter()
        .map(|m| {
            (
                m.attr("ce-subject").to_owned(),
                (
                    m.attr("ce-type").to_owned(),
                    m.json().expect("a result's data is JSON"),
                ),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_outcome_is_reported_with_what_the_target_answered() {
    let f = fleet(true).await;
    f.target.rule(|r| {
        r.body.contains("Ada").then(|| {
            Reply::status(201)
                .header("location", "/crm/customers/42")
                .body(r#"{"id":"cust-42","created":true}"#)
        })
    });
    f.target.rule(|r| {
        r.body
            .contains("Nobody")
            .then(|| Reply::status(400).body(r#"{"error":"name is reserved"}"#))
    });
    f.emulator
        .publish(
            "customers",
            &[
                customer("c-1", "Ada"),
                customer("c-2", "Grace"),
                customer("c-3", "Nobody"),
            ],
        )
        .await
        .expect("published");
    let mut worker = f.job().await;

    let results = f.collect("results-sub", 3, Duration::from_secs(60)).await;
    assert_eq!(
        results.len(),
        3,
        "one result per outcome: {results:?}\nworker log:\n{}",
        worker.logs().join("\n")
    );
    let ids: std::collections::BTreeSet<&str> = results.iter().map(|m| m.attr("ce-id")).collect();
    assert_eq!(ids.len(), 3, "each result its own id");
    let by = by_subject(&results);

    let (kind, ada) = &by["c-1"];
    assert_eq!(kind, "gluefleet.delivered");
    assert_eq!(ada["outcome"], "delivered");
    assert_eq!(ada["route"], "create-customer");
    assert_eq!(ada["connector"], "legacy-rest");
    assert_eq!(ada["answer"]["status"], 201);
    assert_eq!(ada["answer"]["location"], "/crm/customers/42");
    assert_eq!(ada["answer"]["body"]["id"], "cust-42");
    assert_eq!(ada["data"]["name"], "Ada", "the original data rides along");
    assert_eq!(ada["event"]["type"], "customer.created");
    assert_eq!(ada["replayed"], false);

    let (kind, grace) = &by["c-2"];
    assert_eq!(kind, "gluefleet.delivered");
    assert_eq!(grace["answer"]["status"], 201);

    let (kind, nobody) = &by["c-3"];
    assert_eq!(kind, "gluefleet.dead-lettered");
    assert_eq!(nobody["reason"], "permanent");
    assert_eq!(nobody["http_status"], 400);
    assert!(
        nobody["error"]
            .as_str()
            .is_some_and(|e| e.contains("name is reserved")),
        "the reason names the target's complaint: {nobody}"
    );
    assert_eq!(nobody["answer"], Value::Null);

    let dead = f.collect("dead-sub", 1, Duration::from_secs(10)).await;
    assert_eq!(
        dead.len(),
        1,
        "the 400 is dead-lettered as well as reported"
    );
    assert_eq!(f.target.requests().len(), 3, "one call per event");

    worker
        .wait_success(Duration::from_secs(60), 30)
        .await
        .expect("the job exits 0 once idle");
    let summary = worker.summary().expect("summary");
    assert_eq!(summary["results"], 3, "summary: {summary}");
    assert!(
        summary.get("result_failed").is_none(),
        "no failed result publish (the count is left out when zero): {summary}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_result_publish_nacks_and_the_redelivery_reports_it_without_a_second_call() {
    let f = fleet(false).await;
    f.target.rule(|_| {
        Some(
            Reply::status(201)
                .header("location", "/crm/customers/7")
                .body(r#"{"id":"cust-7"}"#),
        )
    });
    f.emulator
        .publish("customers", &[customer("c-7", "Edsger")])
        .await
        .expect("published");
    let worker = f.worker().await;

    // The results topic does not exist yet: the call is made, the result
    // cannot be published, and the original is nacked rather than acked.
    assert!(
        worker
            .wait_for_log(
                "Could not publish the result event",
                Duration::from_secs(60)
            )
            .await,
        "the failed result publish is reported; log:\n{}",
        worker.logs().join("\n")
    );
    assert_eq!(f.target.requests().len(), 1);

    results_topic(&f.emulator).await;
    let results = f.collect("results-sub", 1, Duration::from_secs(90)).await;
    assert_eq!(
        results.len(),
        1,
        "the redelivery publishes the result; log:\n{}",
        worker.logs().join("\n")
    );
    let data = results[0].json().expect("JSON");
    assert_eq!(results[0].attr("ce-type"), "gluefleet.delivered");
    assert_eq!(results[0].attr("ce-subject"), "c-7");
    assert_eq!(data["replayed"], true, "from the idempotency store: {data}");
    assert_eq!(data["reason"], "duplicate");
    assert_eq!(
        data["answer"]["body"]["id"], "cust-7",
        "the first call's answer, kept with its key"
    );
    assert_eq!(data["answer"]["location"], "/crm/customers/7");
    assert_eq!(
        f.target.requests().len(),
        1,
        "the target is not called again for the result"
    );
    let dead = f.collect("dead-sub", 1, Duration::from_secs(2)).await;
    assert!(dead.is_empty(), "nothing dead-lettered: {dead:?}");
}
