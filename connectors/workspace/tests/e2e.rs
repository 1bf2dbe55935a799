//! End to end: the `gluefleet-workspace` binary between the real Pub/Sub
//! emulator and the Workspace double, signing in by domain-wide delegation
//! as against a real domain (a service-account key, or keyless through IAM
//! `signJwt`), every request checked against Google's Discovery documents.

mod common;

use gluefleet_testkit::TempDir;
use gluefleet_testkit::bin::Worker;
use gluefleet_testkit::pubsub::{OutgoingMessage, PubsubEmulator};
use gluefleet_testkit::workspace::WorkspaceDouble;
use serde_json::json;
use std::collections::HashSet;
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_gluefleet-workspace");

const ROUTES: &str = r#"
[[routes]]
type = "order.created"
subject = "alice@example.com"
action = { operation = "sheets_append", spreadsheet = "orders-2026", range = "Orders!A:C", row = "[.data.id, .data.customer, .data.total]", key_column = "A", value_input = "RAW" }
"#;

fn config(dir: &TempDir, head: &str, auth: &str) -> String {
    dir.write("workspace.toml", format!("{head}\n{auth}\n{ROUTES}"))
        .expect("config")
        .display()
        .to_string()
}

fn orders(n: usize) -> Vec<OutgoingMessage> {
    (0..n)
        .map(|i| {
            OutgoingMessage::cloudevent(
                &format!("o{i}"),
                "//shop",
                "order.created",
                json!({"id": format!("A-{i:04}"), "customer": "ACME", "total": i}),
            )
        })
        .collect()
}

/// The emulator with `n` orders published to `orders` (subscription
/// `orders-sub`, dead letters to `dead`) and the double with the orders
/// spreadsheet.
async fn published(n: usize, ack_deadline_secs: u32) -> (PubsubEmulator, WorkspaceDouble) {
    let pubsub = PubsubEmulator::start()
        .await
        .expect("Pub/Sub emulator starts");
    let double = common::double().await;
    double.create_spreadsheet("orders-2026", &["Orders"]);
    pubsub
        .create_worker_subscription("orders", "orders-sub", "dead", ack_deadline_secs)
        .await
        .expect("topic and subscription");
    pubsub
        .publish("orders", &orders(n))
        .await
        .expect("published");
    (pubsub, double)
}

async fn rows_reach(double: &WorkspaceDouble, n: usize, limit: Duration) -> bool {
    let until = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < until {
        if double.rows("orders-2026", "Orders").len() >= n {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_appends_survive_a_kill_9_with_no_row_lost_or_doubled() {
    let (pubsub, double) = published(1000, 20).await;
    let dir = TempDir::new("ws-e2e").expect("temp dir");
    // Small batches held 300 ms after they are applied, so the kill lands
    // while appends are in flight and their answers are lost.
    let head = format!(
        "[pubsub]\nconcurrency = 200\n\n[target]\napi_root = \"{}\"\nmax_batch = 50\ncheck_as = [\"alice@example.com\"]\n",
        double.url()
    );
    let config = config(&dir, &head, &common::auth_toml(&double, None));
    let env = pubsub.worker_env("orders-sub", "dead");

    let mut check = Worker::spawn(Path::new(BIN), &["check", "--config", &config], &env)
        .await
        .expect("check starts");
    let checked = check
        .wait(Duration::from_secs(60))
        .await
        .expect("check ends");
    let logs = check.logs().join("\n");
    assert!(checked.success(), "{logs}");
    assert!(
        logs.contains("credential as alice@example.com: obtained") && logs.contains("Sheets"),
        "{logs}"
    );

    double.hold_all(Duration::from_millis(300));
    let mut first = Worker::spawn(Path::new(BIN), &["run", "--config", &config], &env)
        .await
        .expect("worker starts");
    assert!(
        rows_reach(&double, 200, Duration::from_secs(120)).await,
        "200 rows before the kill\n{}",
        first.logs().join("\n")
    );
    first.kill_hard();
    let status = first
        .wait(Duration::from_secs(10))
        .await
        .expect("a killed worker exits");
    assert_eq!(status.signal(), Some(9));
    let at_kill = double.rows("orders-2026", "Orders").len();
    assert!(at_kill < 1000, "the kill came mid-run ({at_kill} rows)");
    double.hold_all(Duration::ZERO);

    // The emulator keeps feeding the dead worker's stream for a while: many
    // streams give the new worker most of each share.
    let head = head.replace("[pubsub]\n", "[pubsub]\nstreams = 32\n");
    let config = dir
        .write(
            "workspace-2.toml",
            format!("{head}\n{}\n{ROUTES}", common::auth_toml(&double, None)),
        )
        .expect("config")
        .display()
        .to_string();
    let mut second = Worker::spawn(Path::new(BIN), &["run", "--config", &config], &env)
        .await
        .expect("worker restarts");
    let all = rows_reach(&double, 1000, Duration::from_secs(240)).await;
    second.signal_term();
    let _ = second.wait(Duration::from_secs(20)).await;
    let rows = double.rows("orders-2026", "Orders");
    assert!(all, "{} rows\n{}", rows.len(), second.logs().join("\n"));
    let keys: HashSet<String> = rows
        .iter()
        .filter_map(|r| r.first().and_then(|c| c.as_str()).map(str::to_owned))
        .collect();
    assert_eq!(keys.len(), 1000, "every order once");
    assert_eq!(rows.len(), 1000, "no order twice");
    let appends = double.calls("sheets.spreadsheets.values.append");
    assert!(appends <= 60, "1,000 rows in {appends} appends");
    assert!(double.violations().is_empty(), "{:?}", double.violations());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_delegation_signs_through_iam_and_a_job_appends_everything() {
    let (pubsub, double) = published(300, 60).await;
    let dir = TempDir::new("ws-keyless").expect("temp dir");
    let head = format!(
        "[pubsub]\nconcurrency = 500\n\n[target]\napi_root = \"{}\"\nlinger = \"500ms\"\n",
        double.url()
    );
    // No key anywhere: the worker's own token asks IAM to sign.
    let auth = format!(
        "[auth]\nkind = \"google_delegated\"\nservice_account = \"{sa}\"\niam_url = \"{url}\"\ntoken_url = \"{token}\"\nscopes = {scopes}\n",
        sa = double.service_account(),
        url = double.url(),
        token = double.token_url(),
        scopes = common::SCOPES,
    );
    let config = config(&dir, &head, &auth);
    let mut env = pubsub.worker_env("orders-sub", "dead");
    env.push((
        "GOOGLE_OAUTH_ACCESS_TOKEN",
        double.runtime_token().to_owned(),
    ));
    let mut job = Worker::spawn(
        Path::new(BIN),
        &["job", "--config", &config, "--idle-exit", "3s"],
        &env,
    )
    .await
    .expect("job starts");
    let status = job.wait(Duration::from_secs(180)).await.expect("job ends");
    assert!(status.success(), "{}", job.logs().join("\n"));
    assert_eq!(double.rows("orders-2026", "Orders").len(), 300);
    assert_eq!(
        double.sign_jwt_calls(),
        1,
        "one signature for alice's token"
    );
    assert_eq!(double.token_calls_for("alice@example.com"), 1);
    let summary = job.summary().expect("summary printed");
    assert_eq!(summary["acked"].as_u64(), Some(300), "{summary}");
    let requests = summary["target_requests"].as_u64().unwrap_or(u64::MAX);
    assert!(
        requests <= 10,
        "300 rows in {requests} requests (reads included)"
    );
    assert!(double.violations().is_empty(), "{:?}", double.violations());
}
