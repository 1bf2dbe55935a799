//! Part 1: order events to a pretend legacy order system, through
//! gluefleet-legacy-rest.
//!
//! The only part that also runs without gcloud: the worker then reads the
//! same events from a local JSONL file (`--source file:`) and writes its
//! dead letters to another.

mod events;
mod order_system;
pub(crate) use order_system::{BASE_PATH as ORDER_SYSTEM_PATH, start as order_system_start};
pub(crate) mod push;
mod report;

use super::part::{Part, Run, Topics, run_worker};
use super::report::DeadLetter;
use super::{Result, Stage};
use gluefleet_testkit::file_source;
use gluefleet_testkit::pubsub::PubsubEmulator;
use std::fmt::Write as _;
use std::path::Path;

const PART: Part = Part {
    number: 1,
    connector: "legacy-rest",
    topics: Topics {
        topic: "orders",
        subscription: "orders-gluefleet",
        dead_letter_topic: "orders-dead-letter",
        inspect: "orders-dead-letter-inspect",
    },
};

/// Runs part 1; Ok(true) when everything happened as expected. Leaves the
/// Pub/Sub emulator, if it ran, in `stage` for the next parts.
pub(crate) async fn run(stage: &mut Stage) -> Result<bool> {
    PART.heading("a Pub/Sub worker delivering order events to a legacy REST API");
    println!(
        "• building gluefleet-{} (first time takes a few minutes)…",
        PART.connector
    );
    let binary = PART.build().await?;

    let target = order_system::start().await?;
    let base_url = format!("{}{}", target.url(), order_system::BASE_PATH);
    println!("• the pretend order system listens on {base_url}");

    let use_emulator = if stage.no_emulator {
        println!("• --no-emulator: the worker reads the events from a local file");
        false
    } else if PubsubEmulator::available() {
        true
    } else {
        println!(
            "• gcloud is not installed, so no Pub/Sub emulator: the worker reads the events \
             from a local file instead\n  (install google-cloud-cli with the pubsub-emulator \
             component to see the Pub/Sub path)"
        );
        false
    };

    let samples = events::samples();
    let config = PART.write_config(stage, &config_toml(&base_url, use_emulator))?;
    let messages: Vec<_> = samples.iter().map(|s| s.message.clone()).collect();
    let run = if use_emulator {
        let pubsub = PART.pubsub(stage).await?;
        println!(
            "  emulator on {} (project {}): {}",
            pubsub.host(),
            pubsub.project(),
            PART.topics.describe()
        );
        let run = PART
            .run_job(stage, &pubsub, &binary, &config, &messages, &[])
            .await?;
        stage.pubsub = Some(pubsub);
        run
    } else {
        via_file(&binary, &config, &messages, stage).await?
    };
    let observed = report::Observed {
        requests: target.requests(),
        effects: target.effects(),
        run,
    };
    Ok(report::print(&samples, &observed))
}

/// The connector's config. Pub/Sub settings come from the environment, as
/// on Cloud Run.
fn config_toml(base_url: &str, emulator: bool) -> String {
    let mut toml = String::new();
    if emulator {
        toml.push_str(
            "# [pubsub] project, subscription and dead_letter_topic come from the\n\
             # environment here: GOOGLE_CLOUD_PROJECT, GLUEFLEET_SUBSCRIPTION,\n\
             # GLUEFLEET_DEAD_LETTER_TOPIC (and PUBSUB_EMULATOR_HOST).\n\n",
        );
    } else {
        toml.push_str("# Run with --source file:PATH: no Pub/Sub settings needed.\n\n");
    }
    let _ = write!(
        toml,
        r#"[target]
base_url = "{base_url}"
allow_insecure_http = true        # a local stand-in; real targets use https

[delivery.retry]
initial_backoff = "100ms"         # keeps the demo quick (default 200ms)

[[routes]]
type = "order.created"
[routes.action]
method = "POST"
path = "/orders/{{data.orderId}}"
body = "{{id: .data.orderId, customer: .data.customer, total: .data.total}}"

[[routes]]
type = "order.paid"
[routes.action]
method = "POST"
path = "/orders/{{data.orderId}}/payments"   # body: the event's data
"#
    );
    toml
}

/// Writes the messages to a JSONL file and runs the worker on it.
async fn via_file(
    binary: &Path,
    config: &Path,
    messages: &[gluefleet_testkit::pubsub::OutgoingMessage],
    stage: &Stage,
) -> Result<Run> {
    let (jsonl, message_ids) = file_source::events_jsonl(messages);
    let source = stage.tmp.write("events.jsonl", jsonl)?;
    let dead_letter_file = stage.tmp.path().join("dead-letters.jsonl");
    println!(
        "• wrote {} events to {}",
        message_ids.len(),
        source.display()
    );

    let config_arg = config.display().to_string();
    let source_arg = format!("file:{}", source.display());
    let dead_letter_arg = dead_letter_file.display().to_string();
    let args = [
        "run",
        "--config",
        &config_arg,
        "--source",
        &source_arg,
        "--dead-letters",
        &dead_letter_arg,
    ];
    // `run` also serves health probes; keep them off port 8080.
    let envs = [("PORT", gluefleet_testkit::free_port().to_string())];
    let (worker_log, summary_line) = run_worker(binary, &args, &envs).await?;

    let dead_letters = file_source::read_dead_letters(&dead_letter_file)?
        .into_iter()
        .map(DeadLetter::from)
        .collect();
    Ok(Run {
        message_ids,
        dead_letters,
        dead_letter_place: format!("read back from {}", dead_letter_file.display()),
        worker_log,
        summary_line,
    })
}
