//! `redrive`, end to end on the Pub/Sub emulator: 100 dead letters of three
//! classes, in the shapes the worker writes them; `--class permanent` moves
//! exactly those back to the topic their subscription reads, even when the
//! first run is killed with SIGKILL halfway; `gluefleet-legacy-rest` then
//! delivers each of them exactly once, and the dead-letter subscription
//! keeps the others.

use gluefleet_core::RawMessage;
use gluefleet_core::outcome::DeadLetter;
use gluefleet_runtime::dead_letter::{Origin, letter};
use gluefleet_testkit::TempDir;
use gluefleet_testkit::bin::{Worker, connector_binary};
use gluefleet_testkit::http_target::HttpTarget;
use gluefleet_testkit::pubsub::{OutgoingMessage, PubsubEmulator, SubscriptionOptions};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

const TAIL: usize = 40;

/// The class of dead letter `i`: half permanent, the rest split.
fn class(i: usize) -> &'static str {
    match i % 4 {
        0 | 1 => "permanent",
        2 => "poison",
        _ => "max-attempts",
    }
}

/// Event ids the table says were moved.
fn moved_ids(worker: &Worker) -> BTreeSet<String> {
    worker
        .logs()
        .iter()
        .filter(|l| l.contains("moved: "))
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_owned))
        .collect()
}

fn redrive_summary(worker: &Worker) -> Option<serde_json::Value> {
    worker.logs().iter().find_map(|l| {
        serde_json::from_str::<serde_json::Value>(l)
            .ok()
            .and_then(|v| v.get("redrive").cloned())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selected_dead_letters_go_back_once_even_through_a_crash() {
    let (pubsub, target) = tokio::join!(PubsubEmulator::start(), HttpTarget::start());
    let pubsub = pubsub.expect("Pub/Sub emulator starts");
    let target = target.expect("HTTP target starts");
    pubsub.create_topic("orders").await.expect("topic");
    pubsub
        .create_topic("dead")
        .await
        .expect("dead-letter topic");
    pubsub
        .create_subscription(
            "orders-sub",
            "orders",
            SubscriptionOptions {
                ack_deadline_secs: 30,
                dead_letter: Some(("dead".into(), 10)),
                push_endpoint: None,
            },
        )
        .await
        .expect("worker subscription");
    // A second subscription on the dead-letter topic for the dry run: the
    // emulator keeps a message a finished run released until its lease
    // runs out (10 s), which the runs below need not wait for.
    pubsub
        .create_subscription("dead-dry", "dead", SubscriptionOptions::default())
        .await
        .expect("dry-run subscription");
    // The subscription the first run reads, one per run after the kill,
    // and one for the check at the end, each given the ack state of the one
    // before (see `copy_ack_state`): on the emulator, a stream whose client
    // was killed goes on taking what its subscription hands out.
    let later: Vec<String> = (1..=3)
        .map(|i| format!("dead-rerun-{i}"))
        .chain(["dead-final".to_owned()])
        .collect();
    for sub in std::iter::once("dead-inspect").chain(later.iter().map(String::as_str)) {
        pubsub
            .create_subscription(
                sub,
                "dead",
                SubscriptionOptions {
                    ack_deadline_secs: 10,
                    dead_letter: None,
                    push_endpoint: None,
                },
            )
            .await
            .expect("dead-letter subscription");
    }

    // 100 dead letters as the worker writes them, from orders-sub.
    let origin = Origin {
        connector: "legacy-rest".into(),
        subscription: format!("projects/{}/subscriptions/orders-sub", pubsub.project()),
    };
    let letters: Vec<OutgoingMessage> = (0..100)
        .map(|i| {
            let original = OutgoingMessage::binary_cloudevent(
                &format!("e-{i:03}"),
                "//shop",
                "order.created",
                &json!({"order": i}),
            )
            .with_attr("tenant", "eu");
            let raw = RawMessage {
                data: original.data,
                attributes: original.attributes,
                message_id: format!("{i}"),
                ..RawMessage::default()
            };
            let dl = DeadLetter {
                class: class(i).into(),
                error: "HTTP 400: the customer does not exist yet".into(),
                http_status: Some(400),
                route: "create-order".into(),
                attempts: 1,
            };
            let l = letter(&raw, &dl, &origin, SystemTime::now());
            OutgoingMessage {
                data: l.data,
                attributes: l.attributes,
            }
        })
        .collect();
    pubsub
        .publish("dead", &letters)
        .await
        .expect("dead letters published");
    let selected: BTreeSet<String> = (0..100)
        .filter(|i| class(*i) == "permanent")
        .map(|i| format!("e-{i:03}"))
        .collect();
    assert_eq!(selected.len(), 50);

    let dir = TempDir::new("redrive").expect("temp dir");
    let config = dir
        .write(
            "legacy-rest.toml",
            format!(
                r#"
[target]
base_url = "{url}/api"
allow_insecure_http = true

[[routes]]
name = "create-order"
type = "order.created"
action = {{ path = "/orders", body = "{{order: .data.order}}" }}
"#,
                url = target.url()
            ),
        )
        .expect("config")
        .display()
        .to_string();
    let binary = connector_binary("legacy-rest").expect("connector binary");
    let env = pubsub.worker_env("orders-sub", "dead");

    // A dry run moves nothing and says what would move.
    let mut dry = Worker::spawn(
        &binary,
        &[
            "redrive",
            "--config",
            &config,
            "--from",
            "dead-dry",
            "--class",
            "permanent",
            "--dry-run",
            "--idle",
            "2s",
        ],
        &env,
    )
    .await
    .expect("redrive starts");
    dry.wait_success(Duration::from_secs(60), TAIL)
        .await
        .expect("the dry run exits 0");
    let s = redrive_summary(&dry).expect("a summary line");
    assert_eq!(s["scanned"], 100, "{s}");
    assert_eq!(s["moved"], 50, "would move the permanent ones: {s}");
    assert_eq!(s["left"], 50, "{s}");
    assert!(
        dry.logs()
            .iter()
            .any(|l| l.contains("would move to") && l.contains("/topics/orders")),
        "each goes back to the topic orders-sub reads"
    );

    // First run, paced, killed with SIGKILL once some have moved.
    let mut first = Worker::spawn(
        &binary,
        &[
            "redrive",
            "--config",
            &config,
            "--from",
            "dead-inspect",
            "--class",
            "permanent",
            "--rate",
            "10",
        ],
        &env,
    )
    .await
    .expect("redrive starts");
    let mut some_moved = false;
    for _ in 0..300 {
        if moved_ids(&first).len() >= 8 {
            some_moved = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        some_moved,
        "the paced run moves some; log:\n{}",
        first.logs().join("\n")
    );
    first.kill_hard();
    let _ = first.wait(Duration::from_secs(5)).await;
    let mut moved = moved_ids(&first);
    let moved_before_the_kill = moved.len();
    let mut reruns = 0;
    assert!(
        moved.len() < 50,
        "killed halfway, not after the end: {} moved",
        moved.len()
    );

    // Runs again until everything selected moved: what an operator does.
    // Each run reads a subscription with the ack state the one before left
    // (real Pub/Sub hands the killed run's messages out again once their
    // leases run out); a dead letter acked before its copy was republished
    // would be missing from it.
    let mut current = "dead-inspect";
    for sub in &later[..3] {
        if moved.is_superset(&selected) {
            break;
        }
        pubsub
            .copy_ack_state(current, sub)
            .await
            .expect("ack state copied");
        current = sub;
        reruns += 1;
        let mut again = Worker::spawn(
            &binary,
            &[
                "redrive",
                "--config",
                &config,
                "--from",
                current,
                "--class",
                "permanent",
                "--idle",
                "5s",
            ],
            &env,
        )
        .await
        .expect("redrive starts");
        again
            .wait_success(Duration::from_secs(90), TAIL)
            .await
            .expect("redrive exits 0");
        let s = redrive_summary(&again).expect("a summary line");
        assert_eq!(s["failed"], 0, "{s}");
        eprintln!("redrive: run {reruns} after the kill: {s}");
        moved.extend(moved_ids(&again));
    }
    assert_eq!(moved, selected, "exactly the permanent ones moved");

    // The worker delivers each once: a copy republished twice (its ack lost
    // with the killed process) has the same event id and is dropped by it.
    let mut job = Worker::spawn(
        &binary,
        &["job", "--config", &config, "--idle-exit", "3s"],
        &env,
    )
    .await
    .expect("job starts");
    job.wait_success(Duration::from_secs(120), TAIL)
        .await
        .expect("the job exits 0 once idle");
    let s = job.summary().expect("summary");
    assert!(s["received"].as_u64() >= Some(50), "{s}");
    eprintln!(
        "redrive: {moved_before_the_kill} moved before SIGKILL, {reruns} run(s) after it; the worker received {} and delivered 50",
        s["received"]
    );
    assert_eq!(s["dead_lettered"], 0, "{s}");
    let delivered: BTreeMap<String, usize> =
        target.requests().iter().fold(BTreeMap::new(), |mut m, r| {
            let order = r.json().map(|j| j["order"].to_string()).unwrap_or_default();
            *m.entry(order).or_default() += 1;
            m
        });
    assert_eq!(delivered.len(), 50, "{delivered:?}");
    assert!(
        delivered.values().all(|n| *n == 1),
        "no order delivered twice: {delivered:?}"
    );
    for r in target.requests() {
        let order = r.json().and_then(|j| j["order"].as_u64()).unwrap_or(999);
        assert_eq!(class(usize::try_from(order).unwrap_or(999)), "permanent");
    }

    // The others are still on the dead-letter subscription, reasons intact.
    pubsub
        .copy_ack_state(current, "dead-final")
        .await
        .expect("ack state copied");
    let rest = pubsub
        .drain("dead-final", Duration::from_secs(2))
        .await
        .expect("drain");
    let mut classes: BTreeMap<String, usize> = BTreeMap::new();
    for m in &rest {
        *classes
            .entry(m.attr("gluefleet-error-class").to_owned())
            .or_default() += 1;
    }
    assert_eq!(
        classes,
        BTreeMap::from([("poison".to_owned(), 25), ("max-attempts".to_owned(), 25)]),
        "left where they were"
    );
}
