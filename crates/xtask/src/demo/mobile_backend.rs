//! Part 2: a mobile app's backend publishes account events, and
//! gluefleet-firestore keeps one document per account in Firestore.
//!
//! Runs only with the emulators: there is no local stand-in for Firestore
//! worth showing. The Pub/Sub emulator is part 1's when it still runs.

use super::accounts::{self, COLLECTION};
use super::accounts_report::{self, Observed};
use super::{
    IDLE_EXIT, Result, TempDir, Topics, WORKER_LOG_FILTER, build_connector, print_verdict,
    run_worker, start_pubsub, write_config,
};
use gluefleet_testkit::firestore::FirestoreEmulator;
use gluefleet_testkit::pubsub::PubsubEmulator;
use std::path::Path;

/// The connector part 2 runs.
const CONNECTOR: &str = "firestore";
/// Part 2's topics and subscriptions.
const TOPICS: Topics = Topics {
    topic: "accounts",
    subscription: "accounts-gluefleet",
    dead_letter_topic: "accounts-dead-letter",
    inspect: "accounts-dead-letter-inspect",
};

/// Runs part 2; Ok(true) when everything happened as expected. Hands the
/// Pub/Sub emulator back for part 3.
pub(crate) async fn run(
    pubsub: Option<PubsubEmulator>,
    tmp: &TempDir,
) -> Result<(bool, PubsubEmulator)> {
    println!("\n{}\n", "═".repeat(78));
    println!(
        "gluefleet demo, part 2: a mobile backend's account events kept as Firestore documents\n"
    );
    // Both take a while and need nothing from each other.
    println!("• building gluefleet-{CONNECTOR} and starting the Firestore emulator (about 10 s)…");
    let (binary, firestore) = tokio::join!(
        tokio::task::spawn_blocking(|| build_connector(CONNECTOR)),
        FirestoreEmulator::start(),
    );
    let binary = binary??;
    let firestore = firestore.map_err(|e| {
        format!(
            "{e}\n(the Firestore emulator is gcloud's cloud-firestore-emulator component; \
             `cargo xtask demo --no-emulator` skips this part)"
        )
    })?;
    let pubsub = match pubsub {
        Some(p) => p,
        None => start_pubsub().await?,
    };
    seed(&firestore).await?;
    TOPICS.create(&pubsub).await?;
    println!(
        "  Firestore emulator on {} (project {}); Pub/Sub emulator on {} (project {}): {}",
        firestore.host(),
        firestore.project(),
        pubsub.host(),
        pubsub.project(),
        TOPICS.describe(),
    );

    let config = tmp.path().join(format!("{CONNECTOR}.toml"));
    write_config(&config, &config_toml(firestore.project()))?;

    let samples = accounts::samples();
    let messages: Vec<_> = samples.iter().map(|s| s.message.clone()).collect();
    let message_ids = pubsub.publish(TOPICS.topic, &messages).await?;
    println!(
        "• published {} events to topic {}",
        message_ids.len(),
        TOPICS.topic
    );

    let (worker_log, summary_line) = run_job(&binary, &config, &pubsub, &firestore).await?;
    let observed = Observed {
        message_ids,
        documents: firestore.list(COLLECTION).await?,
        dead_letters: TOPICS.dead_letters(&pubsub).await?,
        dead_letter_place: TOPICS.dead_letter_place(),
        worker_log,
        summary_line,
    };
    let problems = accounts_report::print(&samples, &observed);
    print_verdict(&problems, &observed.worker_log);
    Ok((problems.is_empty(), pubsub))
}

/// Writes the accounts that exist before the worker runs.
async fn seed(firestore: &FirestoreEmulator) -> Result<()> {
    let seeds = accounts::seeds();
    for s in &seeds {
        firestore
            .put(&format!("{COLLECTION}/{}", s.account), s.rest_fields())
            .await?;
    }
    let ids: Vec<&str> = seeds.iter().map(|s| s.account).collect();
    println!(
        "• seeded the accounts that existed before: {COLLECTION}/{}",
        ids.join(", ")
    );
    Ok(())
}

/// The connector's config. Pub/Sub settings and the Firestore emulator's
/// address come from the environment, as on Cloud Run; the project is
/// spelled out because the two emulators have projects of their own.
fn config_toml(firestore_project: &str) -> String {
    format!(
        r#"# [pubsub] project, subscription and dead_letter_topic come from the
# environment here: GOOGLE_CLOUD_PROJECT, GLUEFLEET_SUBSCRIPTION,
# GLUEFLEET_DEAD_LETTER_TOPIC (and PUBSUB_EMULATOR_HOST); the worker
# finds the Firestore emulator through FIRESTORE_EMULATOR_HOST.

[target]
project = "{firestore_project}"   # the Firestore emulator's project
linger = "10ms"       # a write waits this long for others to share its batchWrite (default 5ms)

[[routes]]
type = "account.created"
[routes.action]
operation = "create"                          # exists already: done, left as is
document = "accounts/{{data.accountId}}"
fields = "{{name: .data.name, email: .data.email, plan: .data.plan}}"
transforms = {{ createdAt = "server_timestamp" }}

[[routes]]
type = "account.updated"
[routes.action]
operation = "update"                          # missing: dead letter (NOT_FOUND)
document = "accounts/{{data.accountId}}"
fields = "{{plan: .data.plan}}"
transforms = {{ visits = {{ increment = 1 }} }}

[[routes]]
type = "account.deleted"
[routes.action]
operation = "delete"
document = "accounts/{{data.accountId}}"
"#
    )
}

/// Runs the worker as a job between the two emulators until the
/// subscription is idle; returns its output and its summary line.
async fn run_job(
    binary: &Path,
    config: &Path,
    pubsub: &PubsubEmulator,
    firestore: &FirestoreEmulator,
) -> Result<(Vec<String>, Option<String>)> {
    let config_arg = config.display().to_string();
    let args = ["job", "--config", &config_arg, "--idle-exit", IDLE_EXIT];
    let mut envs = TOPICS.envs(pubsub);
    envs.extend([
        ("FIRESTORE_EMULATOR_HOST", firestore.host()),
        ("RUST_LOG", WORKER_LOG_FILTER.to_owned()),
    ]);
    run_worker(binary, &args, &envs).await
}
