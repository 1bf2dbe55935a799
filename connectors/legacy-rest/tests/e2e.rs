//! End to end: the real `gluefleet-legacy-rest` binary, the real Pub/Sub
//! emulator, a real HTTP target. Every assertion reads what the target and
//! the dead-letter topic actually saw.

use gluefleet_testkit::bin::Worker;
use gluefleet_testkit::file_source;
use gluefleet_testkit::http_target::{HttpTarget, Reply};
use gluefleet_testkit::pubsub::{OutgoingMessage, PubsubEmulator, SubscriptionOptions};
use gluefleet_testkit::{TempDir, free_port};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_gluefleet-legacy-rest");

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PUBLISHER_SPAN: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

struct Fleet {
    emulator: PubsubEmulator,
    target: HttpTarget,
    config: PathBuf,
    /// Holds the config; removed with the fleet.
    _dir: TempDir,
}

/// Topics `orders` and `dead`, subscription `orders-sub` (dead-letter policy
/// after 10 attempts, so attempts are counted) and `dead-sub` to inspect.
async fn fleet(extra_config: &str, ack_deadline_secs: u32) -> Fleet {
    let emulator = PubsubEmulator::start()
        .await
        .expect("Pub/Sub emulator starts");
    emulator.create_topic("orders").await.expect("topic");
    emulator
        .create_topic("dead")
        .await
        .expect("dead-letter topic");
    emulator
        .create_subscription(
            "orders-sub",
            "orders",
            SubscriptionOptions {
                ack_deadline_secs,
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
    let target = HttpTarget::start().await.expect("HTTP target");
    let dir = TempDir::new("e2e").expect("temp dir");
    let text = format!(
        r#"
[pubsub]
concurrency = 64
lease_extension = "10s"

[delivery.retry]
initial_backoff = "100ms"
max_backoff = "1s"

[target]
base_url = "{url}/erp"
allow_insecure_http = true

[[routes]]
type = "order.*"
action = {{ path = "/orders/{{data.orderId}}", body = "{{id: .data.orderId, total: .data.total}}" }}
{extra_config}
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

impl Fleet {
    async fn worker(&self, mode: &str) -> (Worker, u16) {
        let port = free_port();
        let config = self.config.display().to_string();
        let mut env = self.emulator.worker_env("orders-sub", "dead");
        // The health probes on a port this test knows (the last value wins).
        env.push(("PORT", port.to_string()));
        env.push(("RUST_LOG", "info".into()));
        let w = Worker::spawn(
            std::path::Path::new(BIN),
            &[mode, "--config", &config, "--idle-exit", "3s"],
            &env,
        )
        .await
        .expect("worker starts");
        (w, port)
    }
}

fn order(id: &str, total: serde_json::Value) -> OutgoingMessage {
    OutgoingMessage::cloudevent(
        &format!("ev-{id}"),
        "//erp/orders",
        "order.created",
        json!({"orderId": id, "total": total}),
    )
}

fn body_has(r: &gluefleet_testkit::http_target::LoggedRequest, needle: &str) -> bool {
    r.body.contains(needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_exactly_once_retries_and_dead_letters_with_reasons() {
    let f = fleet("", 30).await;
    // 503 twice, then the default 201, for order T-503.
    let n503 = Arc::new(AtomicUsize::new(0));
    let c = n503.clone();
    f.target.rule(move |r| {
        (body_has(r, "T-503") && c.fetch_add(1, Ordering::SeqCst) < 2).then(|| Reply::status(503))
    });
    // 429 with Retry-After: 2 once, for order T-429.
    let n429 = Arc::new(AtomicUsize::new(0));
    let c = n429.clone();
    f.target.rule(move |r| {
        (body_has(r, "T-429") && c.fetch_add(1, Ordering::SeqCst) == 0)
            .then(|| Reply::status(429).header("retry-after", "2"))
    });
    // 400 for order T-400: a validation error.
    f.target.rule(|r| {
        body_has(r, "T-400")
            .then(|| Reply::status(400).body(r#"{"error":"total must be positive"}"#))
    });

    let mut msgs: Vec<OutgoingMessage> = (0..1000)
        .map(|i| order(&format!("N-{i:04}"), json!(i)))
        .collect();
    // One publisher traces: its span is the parent of the worker's, and the
    // target is called within the same trace.
    msgs[7] = msgs[7].clone().with_attr("traceparent", PUBLISHER_SPAN);
    msgs.push(order("T-503", json!(1)));
    msgs.push(order("T-429", json!(1)));
    msgs.push(order("T-400", json!(-1)));
    msgs.push(order("DUP", json!(1)));
    msgs.push(order("DUP", json!(1))); // same CloudEvents id, second message
    msgs.push(
        OutgoingMessage {
            data: b"{not json".to_vec(),
            attributes: BTreeMap::new(),
        }
        .with_attr("origin", "legacy"),
    );
    let ids = f
        .emulator
        .publish("orders", &msgs)
        .await
        .expect("published");
    assert_eq!(ids.len(), 1006);

    let (mut worker, port) = f.worker("run").await;
    let delivered = f
        .target
        .wait_for_successes(1003, Duration::from_secs(120))
        .await;
    assert!(
        delivered,
        "1,003 effects within 2 min; worker log:\n{}",
        worker.logs().join("\n")
    );

    let ready = reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
        .await
        .map(|r| r.status().as_u16());
    assert_eq!(ready.ok(), Some(200), "/readyz");

    // Dead letters: the 400 and the malformed message, with their reasons.
    let mut dead = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while dead.len() < 2 && Instant::now() < deadline {
        dead.extend(
            f.emulator
                .drain("dead-sub", Duration::from_millis(500))
                .await
                .expect("drain dead letters"),
        );
    }
    assert_eq!(dead.len(), 2, "exactly two dead letters: {dead:?}");
    let by_class: BTreeMap<String, _> = dead
        .iter()
        .map(|m| (m.attr("gluefleet-error-class").to_owned(), m))
        .collect();
    let bad = by_class
        .get("permanent")
        .expect("the 400 is dead-lettered as permanent");
    assert_eq!(
        bad.attributes
            .get("gluefleet-http-status")
            .map(String::as_str),
        Some("400")
    );
    assert!(
        bad.attributes
            .get("gluefleet-error")
            .is_some_and(|e| e.contains("total must be positive"))
    );
    assert_eq!(
        bad.attributes.get("gluefleet-route").map(String::as_str),
        Some("order.*")
    );
    assert_eq!(
        bad.attributes
            .get("gluefleet-connector")
            .map(String::as_str),
        Some("legacy-rest")
    );
    assert_eq!(
        bad.attributes.get("gluefleet-attempts").map(String::as_str),
        Some("1")
    );
    assert!(
        bad.attributes
            .get("gluefleet-original-subscription")
            .is_some_and(|s| s.ends_with("/subscriptions/orders-sub"))
    );
    assert!(bad.attributes.contains_key("gluefleet-failed-at"));
    assert!(bad.attributes.contains_key("gluefleet-original-message-id"));
    assert_eq!(
        bad.json()
            .and_then(|v| v["data"]["orderId"].as_str().map(str::to_owned))
            .as_deref(),
        Some("T-400"),
        "original data kept"
    );
    let poison = by_class
        .get("poison")
        .expect("the malformed message is dead-lettered as poison");
    assert_eq!(poison.data, b"{not json");
    assert_eq!(
        poison.attributes.get("origin").map(String::as_str),
        Some("legacy"),
        "original attributes kept"
    );

    // Exactly one effect per event, each with its Idempotency-Key.
    let effects = f.target.effects();
    for i in 0..1000 {
        let key = format!("ce://erp/orders/ev-N-{i:04}");
        assert_eq!(effects.get(&key), Some(&1), "{key}");
    }
    assert_eq!(
        effects.get("ce://erp/orders/ev-DUP"),
        Some(&1),
        "same CloudEvents id twice → one effect"
    );
    assert_eq!(effects.get("ce://erp/orders/ev-T-503"), Some(&1));
    assert_eq!(n503.load(Ordering::SeqCst), 3, "503, 503, then 201");
    let reqs = f.target.requests();
    let t429: Vec<_> = reqs.iter().filter(|r| body_has(r, "T-429")).collect();
    assert_eq!(t429.len(), 2);
    assert!(
        t429[1].at.duration_since(t429[0].at) >= Duration::from_secs(2),
        "Retry-After: 2 honoured"
    );
    assert!(reqs.iter().all(|r| r.path.starts_with("/erp/orders/")));

    // The trace joined: publisher → worker → target.
    let traced: Vec<_> = reqs
        .iter()
        .filter_map(|r| r.headers.get("traceparent"))
        .collect();
    assert_eq!(
        traced.len(),
        1,
        "only the traced event sends one: {traced:?}"
    );
    let sent = gluefleet_core::trace::TraceContext::child_of(traced[0]).expect("valid traceparent");
    assert_eq!(sent.trace_id(), TRACE_ID, "the publisher's trace");
    let worker_span = sent.parent_id().to_owned();
    assert_ne!(worker_span, "00f067aa0ba902b7", "the worker's own span");
    let logs = worker.logs();
    let acked = logs
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["logging.googleapis.com/spanId"] == worker_span.as_str())
        .unwrap_or_else(|| panic!("a line in the worker's span; log:\n{}", logs.join("\n")));
    assert_eq!(acked["message"], "Acked.");
    assert_eq!(acked["logging.googleapis.com/trace_sampled"], true);
    assert!(
        acked["logging.googleapis.com/trace"]
            .as_str()
            .is_some_and(|t| t.ends_with(&format!("/traces/{TRACE_ID}"))),
        "{acked}"
    );
    assert_eq!(acked["route"], "order.*");
    assert_eq!(acked["reason"], "delivered");
    assert!(acked["logging.googleapis.com/sourceLocation"]["file"].is_string());

    // The metrics say what the target and the dead-letter topic saw.
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("scraped")
        .text()
        .await
        .expect("text");
    let series = |s: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(s)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{s} in\n{text}"))
    };
    let c = r#"connector="legacy-rest""#;
    let settled = |route: &str, outcome: &str, reason: &str| {
        series(&format!(
            r#"gluefleet_messages_settled_total{{{c},route="{route}",outcome="{outcome}",reason="{reason}"}}"#
        ))
    };
    assert_eq!(settled("order.*", "acked", "delivered"), 1003.0);
    assert_eq!(settled("order.*", "dead-lettered", "permanent"), 1.0);
    assert_eq!(settled("", "dead-lettered", "poison"), 1.0);
    assert_eq!(
        series(&format!(
            r#"gluefleet_retries_total{{{c},route="order.*",class="transient"}}"#
        )),
        2.0
    );
    assert_eq!(
        series(&format!(
            r#"gluefleet_target_call_duration_seconds_count{{{c},route="order.*",status_class="5xx",result="transient"}}"#
        )),
        2.0
    );
    assert_eq!(series(&format!("gluefleet_in_flight_messages{{{c}}}")), 0.0);
    assert!(series(&format!("gluefleet_messages_received_total{{{c}}}")) >= 1006.0);
    assert!(
        series(&format!(
            r#"gluefleet_connector_stat{{{c},name="target_requests"}}"#
        )) >= 1007.0
    );

    worker.signal_term();
    let status = worker
        .wait(Duration::from_secs(10))
        .await
        .expect("exits after SIGTERM");
    assert!(status.success(), "{status:?}");
    // Everything was acked: nothing is redelivered.
    let left = f
        .emulator
        .drain("orders-sub", Duration::from_secs(2))
        .await
        .expect("drain");
    assert!(left.is_empty(), "{} messages were not acked", left.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_drains_and_a_restart_leaves_one_effect_each() {
    let f = fleet("", 10).await;
    f.target.set_delay(Duration::from_millis(400));
    let msgs: Vec<OutgoingMessage> = (0..600)
        .map(|i| order(&format!("S-{i:04}"), json!(i)))
        .collect();
    f.emulator
        .publish("orders", &msgs)
        .await
        .expect("published");

    let (mut worker, _) = f.worker("run").await;
    let busy = f
        .target
        .wait_for(|r| r.len() >= 200, Duration::from_secs(60))
        .await;
    assert!(busy, "200 requests reached the target");
    let stop = Instant::now();
    worker.signal_term();
    let status = worker
        .wait(Duration::from_secs(12))
        .await
        .expect("exits after SIGTERM");
    let took = stop.elapsed();
    assert!(status.success(), "{status:?}\n{}", worker.logs().join("\n"));
    assert!(
        took < Duration::from_millis(9500),
        "drained within the 8 s drain timeout, took {took:?}"
    );

    // Messages nacked at shutdown come back to the restarted worker; ones
    // whose nack was lost come back when their ack deadline passes.
    let (mut again, _) = f.worker("run").await;
    let all = f
        .target
        .wait_for(
            |reqs| {
                let done: std::collections::BTreeSet<_> = reqs
                    .iter()
                    .filter(|r| (200..300).contains(&r.status))
                    .filter_map(|r| r.idempotency_key())
                    .collect();
                done.len() >= 600
            },
            Duration::from_secs(120),
        )
        .await;
    assert!(
        all,
        "every event delivered after the restart\n{}",
        again.logs().join("\n")
    );
    // Let late redeliveries, if any, show up before counting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let effects = f.target.effects();
    for i in 0..600 {
        let key = format!("ce://erp/orders/ev-S-{i:04}");
        assert_eq!(
            effects.get(&key),
            Some(&1),
            "{key}: one effect across the restart"
        );
    }
    again.signal_term();
    let done = again
        .wait(Duration::from_secs(12))
        .await
        .expect("exits after SIGTERM");
    assert!(done.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_each_part_and_bad_config_exits_64() {
    let f = fleet("", 30).await;
    let (mut w, _) = f.worker("check").await;
    let status = w
        .wait(Duration::from_secs(60))
        .await
        .expect("check finishes");
    let logs = w.logs().join("\n");
    assert!(status.success(), "{logs}");
    assert!(logs.contains("ok   subscription projects/"), "{logs}");
    assert!(logs.contains("ok   dead-letter topic"), "{logs}");
    assert!(logs.contains("ok   target:"), "{logs}");
    assert!(!logs.contains("warn "), "policy and config agree: {logs}");

    // A subscription whose dead-letter policy stops at 5 attempts, against
    // the config's 10: a warning naming both, and still a passing check.
    f.emulator
        .create_subscription(
            "orders-sub5",
            "orders",
            SubscriptionOptions {
                ack_deadline_secs: 30,
                dead_letter: Some(("dead".into(), 5)),
                push_endpoint: None,
            },
        )
        .await
        .expect("subscription");
    let mut env = f.emulator.worker_env("orders-sub5", "dead");
    env.push(("RUST_LOG", "info".into()));
    let config = f.config.display().to_string();
    let mut w = Worker::spawn(
        std::path::Path::new(BIN),
        &["check", "--config", &config],
        &env,
    )
    .await
    .expect("spawn");
    let status = w.wait(Duration::from_secs(60)).await.expect("exits");
    let logs = w.logs().join("\n");
    assert!(
        status.success(),
        "a mismatch warns, it does not fail: {logs}"
    );
    assert!(
        logs.contains("warn subscription")
            && logs.contains("after 5 attempts")
            && logs.contains("= 10"),
        "{logs}"
    );

    let bad = f.config.with_file_name("bad.toml");
    std::fs::write(&bad, "[target]\nbase_url = \"http://x.example\"\n[[routes]]\ntype = \"a\"\naction = { path = \"/x\" }\n").expect("write");
    let mut w = Worker::spawn(
        std::path::Path::new(BIN),
        &["check", "--config", &bad.display().to_string()],
        &[],
    )
    .await
    .expect("spawn");
    let status = w.wait(Duration::from_secs(30)).await.expect("exits");
    assert_eq!(status.code(), Some(64));
    assert!(
        w.logs().join("\n").contains("allow_insecure_http"),
        "the error names the field"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_source_runs_without_gcp_and_writes_dead_letters_to_a_file() {
    let target = HttpTarget::start().await.expect("HTTP target");
    let dir = TempDir::new("file").expect("temp dir");
    let config = dir
        .write(
            "c.toml",
            format!(
            "[target]\nbase_url = \"{}\"\nallow_insecure_http = true\n[[routes]]\ntype = \"order.created\"\naction = {{ path = \"/orders/{{data.orderId}}\" }}\n",
            target.url()
        ),
    )
    .expect("config");
    let events = dir
        .write(
            "events.jsonl",
        "{\"type\":\"order.created\",\"id\":\"o1\",\"data\":{\"orderId\":\"1\"}}\n{\"type\":\"order.created\",\"id\":\"o1\",\"data\":{\"orderId\":\"1\"}}\n{\"type\":\"nope\",\"data\":{}}\n",
    )
    .expect("events");
    let dead = dir.path().join("dead.jsonl");
    let source = format!("file:{}", events.display());
    let args = [
        "run",
        "--config",
        &config.display().to_string(),
        "--source",
        &source,
        "--dead-letters",
        &dead.display().to_string(),
    ];
    let mut w = Worker::spawn(
        std::path::Path::new(BIN),
        &args,
        &[("PORT", free_port().to_string())],
    )
    .await
    .expect("spawn");
    let status = w
        .wait(Duration::from_secs(30))
        .await
        .expect("a file run ends by itself");
    assert!(status.success(), "{}", w.logs().join("\n"));
    assert_eq!(
        target.effects().values().sum::<usize>(),
        1,
        "the duplicate had no effect"
    );
    let dead = file_source::read_dead_letters(&dead).expect("dead-letter file readable");
    assert_eq!(dead.len(), 1, "one dead letter: {dead:?}");
    assert_eq!(dead[0].attributes["gluefleet-error-class"], "unroutable");
    let summary = w
        .logs()
        .into_iter()
        .find(|l| l.starts_with("{\"summary\""))
        .expect("summary printed");
    let s: serde_json::Value = serde_json::from_str(&summary).expect("summary is JSON");
    // The copy that arrived while the first was in flight is handed back, then
    // acked as a duplicate once the first is done: 4 receptions, 1 effect.
    let count = |k: &str| s["summary"][k].as_u64();
    assert_eq!(
        (count("acked"), count("duplicates"), count("dead_lettered")),
        (Some(1), Some(1), Some(1)),
        "{summary}"
    );
}

/// A real Prometheus scrapes the worker while it delivers, and PromQL
/// returns exactly what the test published: 1,000 delivered, two
/// dead-lettered as permanent and one as poison.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_counts_what_was_published() {
    let f = fleet("", 30).await;
    f.target
        .rule(|r| body_has(r, "BAD-").then(|| Reply::status(400).body(r#"{"error":"rejected"}"#)));
    let mut msgs: Vec<OutgoingMessage> = (0..1000)
        .map(|i| order(&format!("P-{i:04}"), json!(i)))
        .collect();
    msgs.push(order("BAD-1", json!(1)));
    msgs.push(order("BAD-2", json!(1)));
    msgs.push(OutgoingMessage {
        data: b"not json at all".to_vec(),
        attributes: BTreeMap::new(),
    });
    let (worker, port) = f.worker("run").await;
    let prometheus =
        gluefleet_testkit::prometheus::Prometheus::start(&[format!("127.0.0.1:{port}")])
            .await
            .expect("Prometheus starts");
    f.emulator
        .publish("orders", &msgs)
        .await
        .expect("published");
    let c = r#"connector="legacy-rest""#;
    let delivered = format!(
        r#"sum(gluefleet_messages_settled_total{{{c},outcome="acked",reason="delivered"}})"#
    );
    let counted = prometheus
        .wait_for(&delivered, 1000.0, Duration::from_secs(120))
        .await;
    assert!(
        counted,
        "{delivered} = {:?}; worker log:\n{}\nprometheus:\n{}",
        prometheus.query(&delivered).await,
        worker.logs().join("\n"),
        prometheus.logs().join("\n")
    );
    let dead = |class: &str| {
        format!(
            r#"sum(gluefleet_messages_settled_total{{{c},outcome="dead-lettered",reason="{class}"}})"#
        )
    };
    assert!(
        prometheus
            .wait_for(&dead("permanent"), 2.0, Duration::from_secs(30))
            .await,
        "two permanent: {:?}",
        prometheus.query(&dead("permanent")).await
    );
    assert!(
        prometheus
            .wait_for(&dead("poison"), 1.0, Duration::from_secs(30))
            .await,
        "one poison: {:?}",
        prometheus.query(&dead("poison")).await
    );
    let q = |promql: String| {
        let p = &prometheus;
        async move { p.query(&promql).await.expect("query") }
    };
    assert_eq!(
        q(format!(
            r#"sum(gluefleet_target_call_duration_seconds_count{{{c},status_class="2xx",result="ok"}})"#
        ))
        .await,
        Some(1000.0)
    );
    assert_eq!(
        q(format!(
            r#"sum(gluefleet_target_call_duration_seconds_count{{{c},status_class="4xx",result="permanent"}})"#
        ))
        .await,
        Some(2.0)
    );
    assert_eq!(
        q(format!(r#"sum(gluefleet_messages_received_total{{{c}}})"#)).await,
        Some(1003.0),
        "each message received once"
    );
    let p99 = q(format!(
        r#"histogram_quantile(0.99, sum by (le) (gluefleet_target_call_duration_seconds_bucket{{{c}}}))"#
    ))
    .await
    .expect("a latency quantile");
    assert!(p99 > 0.0 && p99 < 33.0, "p99 {p99}");
    assert!(
        q(format!(r#"process_resident_memory_bytes{{{c}}}"#))
            .await
            .is_some_and(|b| b > 1e6),
        "RSS scraped"
    );
    assert_eq!(
        q(r#"up{job="gluefleet"}"#.to_owned()).await,
        Some(1.0),
        "the target is up"
    );
    assert_eq!(f.target.effects().len(), 1000, "one effect per event");
}

/// Spans reach an OpenTelemetry collector (the testkit's OTLP receiver) in
/// the publisher's trace: one per sampled, traced message, a child of the
/// publisher's span, with the id the target saw as its parent and the log
/// lines carry; nothing for unsampled or untraced messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_an_otlp_collector_in_the_publishers_trace() {
    let collector = gluefleet_testkit::otlp::OtlpReceiver::start()
        .await
        .expect("OTLP receiver");
    let f = fleet(
        &format!("\n[telemetry]\notlp_endpoint = \"{}\"\n", collector.url()),
        30,
    )
    .await;
    f.target
        .rule(|r| body_has(r, "SBAD-").then(|| Reply::status(400).body(r#"{"error":"no"}"#)));
    let trace = |i: usize| {
        format!(
            "{:032x}",
            0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_0000_u128 + i as u128
        )
    };
    let parent = |i: usize| format!("{:016x}", 0x00f0_67aa_0ba9_0000_u64 + i as u64);
    let mut msgs: Vec<OutgoingMessage> = (0..20)
        .map(|i| {
            order(&format!("S-{i:02}"), json!(i))
                .with_attr("traceparent", format!("00-{}-{}-01", trace(i), parent(i)))
        })
        .collect();
    // Google's client libraries put it here instead.
    msgs.push(order("SBAD-1", json!(1)).with_attr(
        "googclient_traceparent",
        format!("00-{}-{}-01", trace(20), parent(20)),
    ));
    msgs.push(
        order("U-1", json!(1))
            .with_attr("traceparent", format!("00-{}-{}-00", trace(21), parent(21))),
    );
    msgs.extend((0..10).map(|i| order(&format!("Q-{i}"), json!(i))));
    let ids = f
        .emulator
        .publish("orders", &msgs)
        .await
        .expect("published");
    let (mut worker, _) = f.worker("run").await;
    assert!(
        f.target
            .wait_for_successes(31, Duration::from_secs(60))
            .await,
        "31 effects; worker log:\n{}",
        worker.logs().join("\n")
    );
    assert!(
        worker
            .wait_for_log("Dead-lettered.", Duration::from_secs(30))
            .await,
        "the 400 is dead-lettered"
    );
    // SIGTERM: the spans still batched are sent before the worker exits.
    worker.signal_term();
    let status = worker.wait(Duration::from_secs(15)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "clean exit: {status:?}"
    );
    let spans = collector.spans();
    assert_eq!(collector.rejected(), 0, "every export decoded");
    assert_eq!(
        spans.len(),
        21,
        "20 sampled orders and the dead letter, not the unsampled or untraced: {spans:#?}"
    );
    let reqs = f.target.requests();
    let logs = worker.logs();
    for (i, id) in ids.iter().enumerate().take(21) {
        let span = spans
            .iter()
            .find(|s| s.trace_id == trace(i))
            .unwrap_or_else(|| panic!("a span in trace {i}: {spans:#?}"));
        assert_eq!(
            span.parent_span_id,
            parent(i),
            "a child of the publisher's span"
        );
        assert_eq!(span.service, "gluefleet-legacy-rest");
        assert_eq!(span.name, "process orders-sub");
        assert_eq!(span.kind, 5, "a consumer span");
        assert_eq!(span.attr("messaging.system"), Some("gcp_pubsub"));
        assert_eq!(span.attr("messaging.operation.type"), Some("process"));
        assert_eq!(span.attr("messaging.message.id"), Some(id.as_str()));
        assert_eq!(span.attr("gluefleet.route"), Some("order.*"));
        assert_eq!(span.attr("gluefleet.attempts"), Some("1"));
        // The target saw this span as its parent.
        let key = if i == 20 {
            "SBAD-1".to_owned()
        } else {
            format!("S-{i:02}")
        };
        let sent = reqs
            .iter()
            .find(|r| body_has(r, &key))
            .and_then(|r| r.headers.get("traceparent"))
            .unwrap_or_else(|| panic!("{key} sent a traceparent"));
        assert_eq!(sent, &format!("00-{}-{}-01", trace(i), span.span_id));
        if i == 20 {
            assert_eq!(span.attr("gluefleet.outcome"), Some("dead-lettered"));
            assert_eq!(span.attr("error.type"), Some("permanent"));
            assert_eq!(span.attr("http.response.status_code"), Some("400"));
            assert_eq!(span.status_code, 2, "an error span");
        } else {
            assert_eq!(span.attr("gluefleet.outcome"), Some("acked"));
            assert_eq!(span.attr("gluefleet.reason"), Some("delivered"));
            assert_eq!(span.status_code, 0);
        }
        // And the log lines name the same span.
        assert!(
            logs.iter()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .any(|l| l["logging.googleapis.com/spanId"] == span.span_id.as_str()),
            "a log line in span {}",
            span.span_id
        );
    }
    // The unsampled trace is still carried on to the target, unsampled.
    let unsampled = reqs
        .iter()
        .find(|r| body_has(r, "U-1"))
        .and_then(|r| r.headers.get("traceparent"))
        .expect("U-1 sent a traceparent");
    assert!(
        unsampled.starts_with(&format!("00-{}-", trace(21))) && unsampled.ends_with("-00"),
        "{unsampled}"
    );
}
