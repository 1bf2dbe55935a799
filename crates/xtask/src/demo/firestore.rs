//! Part 2: a mobile app's backend publishes account events, and
//! gluefleet-firestore keeps one document per account in Firestore.
//!
//! Runs only with the emulators: there is no local stand-in for Firestore
//! worth showing. The Pub/Sub emulator is part 1's when it still runs.

mod accounts;
mod report;

use super::part::{Part, Topics};
use super::{Result, Stage, WORKER_LOG_FILTER};
use accounts::COLLECTION;
use gluefleet_testkit::firestore::FirestoreEmulator;

const PART: Part = Part {
    number: 2,
    connector: "firestore",
    topics: Topics {
        topic: "accounts",
        subscription: "accounts-gluefleet",
        dead_letter_topic: "accounts-dead-letter",
        inspect: "accounts-dead-letter-inspect",
    },
};

/// Runs part 2; Ok(true) when everything happened as expected. Leaves the
/// Pub/Sub emulator in `stage` for part 3.
pub(crate) async fn run(stage: &mut Stage) -> Result<bool> {
    PART.heading("a mobile backend's account events kept as Firestore documents");
    println!(
        "• building gluefleet-{} and starting the Firestore emulator (about 10 s)…",
        PART.connector
    );
    let (binary, firestore) = PART
        .build_while(
            FirestoreEmulator::start(),
            "the Firestore emulator is gcloud's cloud-firestore-emulator component; \
             `cargo xtask demo --no-emulator` skips this part",
        )
        .await?;
    let pubsub = PART.pubsub(stage).await?;
    seed(&firestore).await?;
    println!(
        "  Firestore emulator on {} (project {}); Pub/Sub emulator on {} (project {}): {}",
        firestore.host(),
        firestore.project(),
        pubsub.host(),
        pubsub.project(),
        PART.topics.describe(),
    );

    let config = PART.write_config(stage, &config_toml(firestore.project()))?;
    let samples = accounts::samples();
    let messages: Vec<_> = samples.iter().map(|s| s.message.clone()).collect();
    let env = [
        ("FIRESTORE_EMULATOR_HOST", firestore.host()),
        ("RUST_LOG", WORKER_LOG_FILTER.to_owned()),
    ];
    let run = PART
        .run_job(stage, &pubsub, &binary, &config, &messages, &env)
        .await?;
    let observed = report::Observed {
        documents: firestore.list(COLLECTION).await?,
        run,
    };
    stage.pubsub = Some(pubsub);
    Ok(report::print(&samples, &observed))
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
