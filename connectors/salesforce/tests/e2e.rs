//! End to end: the `gluefleet-salesforce` binary between the real Pub/Sub
//! emulator and the Salesforce sandbox double, signing in with the JWT
//! bearer flow as against a real org.

use gluefleet_testkit::TempDir;
use gluefleet_testkit::bin::Worker;
use gluefleet_testkit::pubsub::{OutgoingMessage, PubsubEmulator};
use gluefleet_testkit::salesforce::{SalesforceConfig, SalesforceDouble};
use serde_json::json;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_gluefleet-salesforce");

/// Writes a config (`head`, the double's `[auth]`, `[target]` with `target`,
/// one upsert route) into `dir`; returns its path and the environment a
/// worker on `customers-sub` needs.
fn worker_setup(
    dir: &TempDir,
    pubsub: &PubsubEmulator,
    double: &SalesforceDouble,
    head: &str,
    target: &str,
) -> (String, Vec<(&'static str, String)>) {
    let config = dir
        .write(
            "salesforce.toml",
            format!(
                r#"
{head}
{auth}
[target]
{target}

[[routes]]
type = "customer.upserted"
action = {{ operation = "upsert", sobject = "Account", external_id_field = "External_Id__c", external_id = "{{data.customerId}}", fields = "{{Name: .data.name}}" }}
"#,
                auth = double.jwt_auth_toml(),
            ),
        )
        .expect("config");
    let mut env = pubsub.worker_env("customers-sub", "dead");
    env.push(SalesforceDouble::private_key_env());
    (config.display().to_string(), env)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_upserts_through_pubsub() {
    let pubsub = PubsubEmulator::start()
        .await
        .expect("Pub/Sub emulator starts");
    let double = SalesforceDouble::start(SalesforceConfig::default())
        .await
        .expect("double");
    pubsub
        .create_worker_subscription("customers", "customers-sub", "dead", 60)
        .await
        .expect("topic and subscription");
    let msgs: Vec<OutgoingMessage> = (0..1000)
        .map(|i| {
            OutgoingMessage::cloudevent(
                &format!("c{i}"),
                "//erp",
                "customer.upserted",
                json!({"customerId": format!("K-{i:04}"), "name": format!("Customer {i}")}),
            )
        })
        .collect();
    pubsub.publish("customers", &msgs).await.expect("published");

    let dir = TempDir::new("sf-e2e").expect("temp dir");
    let (config, env) = worker_setup(
        &dir,
        &pubsub,
        &double,
        "[pubsub]\nconcurrency = 1000\nmax_outstanding_messages = 2000\n",
        // Wait for a full Collections call: the emulator hands out 100
        // messages per 50 ms.
        "linger = \"1s\"",
    );
    let mut check = Worker::spawn(
        std::path::Path::new(BIN),
        &["check", "--config", &config],
        &env,
    )
    .await
    .expect("check starts");
    let checked = check
        .wait(Duration::from_secs(60))
        .await
        .expect("check ends");
    assert!(checked.success(), "{}", check.logs().join("\n"));

    let before = double.api_calls();
    let mut job = Worker::spawn(
        std::path::Path::new(BIN),
        &["job", "--config", &config, "--idle-exit", "3s"],
        &env,
    )
    .await
    .expect("job starts");
    let status = job
        .wait(Duration::from_secs(180))
        .await
        .expect("job ends when idle");
    assert!(status.success(), "{}", job.logs().join("\n"));
    assert_eq!(double.record_count("Account"), 1000);
    let summary = job.summary().expect("summary printed");
    let s = &summary;
    assert_eq!(s["acked"].as_u64(), Some(1000));
    let calls = double.api_calls() - before;
    assert_eq!(s["target_requests"].as_u64(), Some(calls));
    assert!(calls <= 6, "1,000 upserts in {calls} Collections calls");
    assert_eq!(
        s["api_usage"].as_u64(),
        Some(before + calls),
        "usage as the org reported it"
    );
    // One token for the job, one for `check`.
    assert_eq!(double.token_calls(), 2);
}

/// True once the double holds `n` accounts, false if `limit` passes first.
async fn accounts_reach(double: &SalesforceDouble, n: usize, limit: Duration) -> bool {
    tokio::time::timeout(limit, async {
        while double.record_count("Account") < n {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .is_ok()
}

/// The org's header reads `api-usage=96/100; api-bursts=1/750` (the current
/// documented form) after the first call: the binary makes no further call
/// for `limit_backoff`, dead-letters nothing, and applies every waiting
/// record once the usage has fallen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_96_of_100_the_binary_waits_out_the_limit_and_then_applies_everything() {
    let pubsub = PubsubEmulator::start()
        .await
        .expect("Pub/Sub emulator starts");
    let double = SalesforceDouble::start(SalesforceConfig {
        daily_limit: 100,
        // The first call makes it 96/100: past the hard limit (95%).
        initial_usage: 95,
        ..SalesforceConfig::default()
    })
    .await
    .expect("double");
    pubsub
        .create_worker_subscription("customers", "customers-sub", "dead", 60)
        .await
        .expect("topic and subscription");
    pubsub
        .create_subscription("dead-sub", "dead", Default::default())
        .await
        .expect("dead-letter inspection subscription");
    let customer = |i: usize| {
        OutgoingMessage::cloudevent(
            &format!("c{i}"),
            "//erp",
            "customer.upserted",
            json!({"customerId": format!("K-{i:04}"), "name": format!("Customer {i}")}),
        )
    };
    let dir = TempDir::new("sf-limit").expect("temp dir");
    let (config, env) = worker_setup(
        &dir,
        &pubsub,
        &double,
        "",
        "linger = \"200ms\"\nlimit_backoff = \"10s\"",
    );
    let mut job = Worker::spawn(
        std::path::Path::new(BIN),
        &["job", "--config", &config, "--idle-exit", "20s"],
        &env,
    )
    .await
    .expect("job starts");

    pubsub
        .publish("customers", &[customer(0)])
        .await
        .expect("published");
    assert!(
        accounts_reach(&double, 1, Duration::from_secs(60)).await,
        "the first record is applied: {}",
        job.logs().join("\n")
    );
    let calls_at_limit = double.api_calls();

    // The gate is closed for 10 s from that call: twenty more records wait.
    let more: Vec<OutgoingMessage> = (1..=20).map(customer).collect();
    pubsub.publish("customers", &more).await.expect("published");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        double.api_calls(),
        calls_at_limit,
        "no call while the org's usage is at 96/100"
    );
    assert_eq!(double.record_count("Account"), 1);

    // A new day: usage falls; after limit_backoff one call looks again.
    double.set_usage(10);
    assert!(
        accounts_reach(&double, 21, Duration::from_secs(90)).await,
        "every waiting record is applied: {}",
        job.logs().join("\n")
    );
    job.signal_term();
    let status = job.wait(Duration::from_secs(60)).await.expect("job ends");
    assert!(status.success(), "{}", job.logs().join("\n"));
    let summary = job.summary().expect("summary printed");
    assert_eq!(summary["dead_lettered"].as_u64(), Some(0), "{summary}");
    assert_eq!(summary["acked"].as_u64(), Some(21), "{summary}");
    let usage = summary["api_usage"].as_u64().unwrap_or(u64::MAX);
    assert!(usage < 96, "the summary shows the fallen usage: {summary}");
    assert_eq!(summary["api_limit"].as_u64(), Some(100), "{summary}");
    let dead = pubsub.pull("dead-sub", 10).await.expect("pull");
    assert!(dead.is_empty(), "nothing dead-lettered: {dead:?}");
}

/// The shipped example's cases pass through the real binary, with no
/// network: the Collections request is built as Salesforce documents it.
#[test]
fn the_example_cases_pass_with_no_network() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let out = std::process::Command::new(BIN)
        .arg("test")
        .arg("--config")
        .arg(examples.join("salesforce.toml"))
        .arg("--cases")
        .arg(examples.join("cases.toml"))
        .output()
        .expect("the binary runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("3 passed, 0 failed"), "{text}");
}
