//! `cargo xtask demo`: gluefleet workers, end to end, on this machine.
//!
//! Part 1, a legacy REST API:
//!
//! ```text
//! sample events ──▶ Pub/Sub emulator (topic orders) ──▶ gluefleet-legacy-rest job
//!                   (or a local JSONL file)                │            │
//!                                                          ▼            ▼
//!                                  pretend order system (HTTP)   dead-letter topic
//! ```
//!
//! Part 2, only with the emulators (see [`mobile_backend`]):
//!
//! ```text
//! account events ──▶ Pub/Sub emulator (topic accounts) ──▶ gluefleet-firestore job
//!                                                            │           │
//!                                                            ▼           ▼
//!                                    Firestore emulator (accounts/…)   dead-letter topic
//! ```
//!
//! Part 3, only with the Pub/Sub emulator and Node.js (see [`sap_partners`]):
//!
//! ```text
//! partner events ──▶ Pub/Sub emulator (topic partners) ──▶ gluefleet-sap-odata job
//!                                                            │           │
//!                                                            ▼           ▼
//!                      SAP CAP server (OData V4, BusinessPartners)   dead-letter topic
//! ```
//!
//! Everything runs locally: the order system is an in-process HTTP server,
//! the emulators, the SAP CAP server and the workers are child processes
//! that the testkit stops when the demo ends (or is interrupted), and the
//! temporary files are removed.

mod accounts;
mod accounts_report;
mod events;
mod mobile_backend;
mod order_system;
mod partners;
mod partners_report;
mod report;
mod sap_partners;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use gluefleet_testkit::bin::{Worker, connector_binary};
use gluefleet_testkit::firestore::FirestoreEmulator;
use gluefleet_testkit::pubsub::{PubsubEmulator, SubscriptionOptions};
use gluefleet_testkit::sap::SapCap;
use report::{DeadLetter, Observed};
use std::collections::BTreeMap;
use std::error::Error;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

type Result<T, E = Box<dyn Error + Send + Sync>> = std::result::Result<T, E>;

/// The connector part 1 runs.
const CONNECTOR: &str = "legacy-rest";
/// Part 1's topics and subscriptions.
const TOPICS: Topics = Topics {
    topic: "orders",
    subscription: "orders-gluefleet",
    dead_letter_topic: "orders-dead-letter",
    inspect: "orders-dead-letter-inspect",
};
/// The subscription's dead-letter policy (Pub/Sub's count of deliveries).
const MAX_DELIVERY_ATTEMPTS: u32 = 10;
/// The job exits once nothing arrived for this long.
const IDLE_EXIT: &str = "3s";
/// A worker still running after this is stuck.
const WORKER_TIMEOUT: Duration = Duration::from_secs(120);
/// Worker log lines shown when something went wrong.
const LOG_TAIL: usize = 40;
/// The worker logs each message's outcome (`Acked.` with its reason) at
/// debug level; that is how parts 2 and 3 tell a suppressed duplicate from
/// a create that found its entity existing, which look the same in the
/// target.
const WORKER_LOG_FILTER: &str = "info,gluefleet_runtime::worker=debug";

/// Runs the demo; the exit code says whether everything went as expected.
pub(crate) fn main(no_emulator: bool) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("demo: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        tokio::select! {
            r = demo(no_emulator) => r,
            // Dropping `demo` stops the worker and the emulator: they run in
            // process groups of their own, so Ctrl-C does not reach them.
            _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
        }
    });
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("\ndemo failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Ok(true) when everything happened as expected.
async fn demo(no_emulator: bool) -> Result<bool> {
    let tmp = TempDir::new()?;
    let (legacy_ok, pubsub) = legacy_rest(no_emulator, &tmp).await?;
    // Parts 2 and 3 have no file-source variant: their point is the
    // target, and the worker settles them through the emulator.
    let (firestore_ok, pubsub) = if no_emulator {
        println!(
            "\n• part 2 (mobile backend → Firestore) skipped: it needs the Pub/Sub and \
             Firestore emulators (--no-emulator)"
        );
        (true, pubsub)
    } else if !FirestoreEmulator::available() {
        println!(
            "\n• part 2 (mobile backend → Firestore) skipped: gcloud is not installed \
             (it needs the pubsub-emulator and cloud-firestore-emulator components)"
        );
        (true, pubsub)
    } else {
        let (ok, pubsub) = mobile_backend::run(pubsub, &tmp).await?;
        (ok, Some(pubsub))
    };
    let sap_ok = if no_emulator {
        println!(
            "\n• part 3 (order system → SAP) skipped: it needs the Pub/Sub emulator \
             (--no-emulator)"
        );
        true
    } else if !PubsubEmulator::available() {
        println!(
            "\n• part 3 (order system → SAP) skipped: gcloud is not installed (it needs the \
             pubsub-emulator component)"
        );
        true
    } else if !SapCap::available() {
        println!(
            "\n• part 3 (order system → SAP) skipped: it needs Node.js 20 and npm for the SAP \
             CAP server (tests/sandboxes/sap-cap)"
        );
        true
    } else {
        sap_partners::run(pubsub, &tmp).await?
    };
    println!("\nNext: cargo test --workspace");
    Ok(legacy_ok && firestore_ok && sap_ok)
}

/// Part 1: order events to the pretend order system. Ok(true) when
/// everything happened as expected; also hands back the Pub/Sub emulator,
/// if it ran, so part 2 need not wait for another one.
async fn legacy_rest(no_emulator: bool, tmp: &TempDir) -> Result<(bool, Option<PubsubEmulator>)> {
    println!(
        "gluefleet demo, part 1: a Pub/Sub worker delivering order events to a legacy REST API\n"
    );
    println!("• building gluefleet-{CONNECTOR} (first time takes a few minutes)…");
    let binary = tokio::task::spawn_blocking(|| build_connector(CONNECTOR)).await??;

    let target = order_system::start().await?;
    let base_url = format!("{}{}", target.url(), order_system::BASE_PATH);
    println!("• the pretend order system listens on {base_url}");

    let use_emulator = if no_emulator {
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
    let config = tmp.path().join(format!("{CONNECTOR}.toml"));
    write_config(&config, &config_toml(&base_url, use_emulator))?;

    let (observed, pubsub) = if use_emulator {
        let emulator = start_pubsub().await?;
        let observed = via_emulator(&emulator, &binary, &config, &samples).await?;
        (observed, Some(emulator))
    } else {
        (via_file(&binary, &config, &samples, tmp).await?, None)
    };
    let observed = Observed {
        requests: target.requests(),
        effects: target.effects(),
        ..observed
    };
    let problems = report::print(&samples, &observed);

    if let Some(line) = &observed.summary_line {
        println!("\nworker summary: {line}");
        println!(
            "  (received counts redeliveries too; retried = handed back to Pub/Sub for \
             redelivery, e.g. a copy\n   that arrived while the same event was in flight; \
             retries within one delivery, like the one after the 503, are not counted)"
        );
    }
    print_verdict(&problems, &observed.worker_log);
    Ok((problems.is_empty(), pubsub))
}

/// Writes a worker's config and shows it, indented.
fn write_config(path: &Path, toml: &str) -> Result<()> {
    std::fs::write(path, toml)?;
    println!(
        "• the worker's config ({}, removed at the end):\n",
        path.display()
    );
    for line in toml.lines() {
        if line.is_empty() {
            println!();
        } else {
            println!("    {line}");
        }
    }
    println!();
    Ok(())
}

/// The closing lines of a part: all well, or each problem and the end of
/// the worker's log to find out why.
fn print_verdict(problems: &[String], worker_log: &[String]) {
    if problems.is_empty() {
        println!("\n✓ everything happened as expected.");
    } else {
        println!("\n✗ {} unexpected result(s):", problems.len());
        for p in problems {
            println!("  - {p}");
        }
        println!("\nlast lines of the worker's log:");
        for line in tail(worker_log, LOG_TAIL) {
            println!("  {line}");
        }
    }
}

/// Brings binary `gluefleet-<connector>` up to date and returns its path.
///
/// `connector_binary` builds only a missing binary, so a demo on a checkout
/// with local changes would run the stale one; `cargo build` first is a
/// no-op when nothing changed.
fn build_connector(connector: &str) -> Result<PathBuf> {
    let package = format!("gluefleet-{connector}");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.args(["build", "--quiet", "-p", &package, "--bin", &package]);
    // Same profile as this xtask, where `connector_binary` looks.
    let exe = std::env::current_exe()?;
    if exe
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|p| p == "release")
    {
        command.arg("--release");
    }
    let status = command.stdin(Stdio::null()).status()?;
    if !status.success() {
        return Err(
            format!("building {package} failed ({status}); see cargo's output above").into(),
        );
    }
    Ok(connector_binary(connector)?)
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

/// Starts the Pub/Sub emulator.
async fn start_pubsub() -> Result<PubsubEmulator> {
    println!("• starting the Pub/Sub emulator (about 10 s)…");
    Ok(PubsubEmulator::start().await.map_err(|e| {
        format!("{e}\n(run `cargo xtask demo --no-emulator` to try without Pub/Sub)")
    })?)
}

/// Publishes the samples to the emulator, runs the worker as a job until
/// the subscription is idle, and reads the dead letters back.
async fn via_emulator(
    emulator: &PubsubEmulator,
    binary: &Path,
    config: &Path,
    samples: &[events::Sample],
) -> Result<Observed> {
    TOPICS.create(emulator).await?;
    println!(
        "  emulator on {} (project {}): {}",
        emulator.host(),
        emulator.project(),
        TOPICS.describe()
    );

    let messages: Vec<_> = samples.iter().map(|s| s.message.clone()).collect();
    let message_ids = emulator.publish(TOPICS.topic, &messages).await?;
    println!(
        "• published {} events to topic {}",
        message_ids.len(),
        TOPICS.topic
    );

    let config_arg = config.display().to_string();
    let args = ["job", "--config", &config_arg, "--idle-exit", IDLE_EXIT];
    let (worker_log, summary_line) = run_worker(binary, &args, &TOPICS.envs(emulator)).await?;

    Ok(Observed {
        message_ids,
        dead_letters: TOPICS.dead_letters(emulator).await?,
        dead_letter_place: TOPICS.dead_letter_place(),
        worker_log,
        summary_line,
        ..Observed::default()
    })
}

/// Writes the samples to a JSONL file and runs the worker on it.
async fn via_file(
    binary: &Path,
    config: &Path,
    samples: &[events::Sample],
    tmp: &TempDir,
) -> Result<Observed> {
    let source = tmp.path().join("events.jsonl");
    let dead_letter_file = tmp.path().join("dead-letters.jsonl");
    // Each line in Pub/Sub's REST shape, so attributes (CloudEvents binary
    // mode) and message ids survive.
    let message_ids: Vec<String> = (1..=samples.len()).map(|n| format!("local-{n}")).collect();
    let mut jsonl = String::new();
    for (sample, id) in samples.iter().zip(&message_ids) {
        let line = serde_json::json!({
            "messageId": id,
            "data": B64.encode(&sample.message.data),
            "attributes": sample.message.attributes,
        });
        jsonl.push_str(&line.to_string());
        jsonl.push('\n');
    }
    std::fs::write(&source, jsonl)?;
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

    let text = match std::fs::read_to_string(&dead_letter_file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("reading {}: {e}", dead_letter_file.display()).into()),
    };
    let mut dead_letters = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        dead_letters.push(parse_dead_letter_line(line)?);
    }
    Ok(Observed {
        message_ids,
        dead_letters,
        dead_letter_place: format!("read back from {}", dead_letter_file.display()),
        worker_log,
        summary_line,
        ..Observed::default()
    })
}

/// A line of a local dead-letter file: `{"messageId","data"(base64),"attributes"}`.
fn parse_dead_letter_line(line: &str) -> Result<DeadLetter> {
    let bad = |why: &str| format!("dead-letter line {line:?}: {why}");
    let v: serde_json::Value = serde_json::from_str(line).map_err(|e| bad(&e.to_string()))?;
    let data = v
        .get("data")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| bad("no data string"))?;
    let data = B64.decode(data).map_err(|e| bad(&e.to_string()))?;
    let attributes: BTreeMap<String, String> = v
        .get("attributes")
        .and_then(serde_json::Value::as_object)
        .ok_or_else(|| bad("no attributes object"))?
        .iter()
        .map(|(k, v)| {
            let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            (k.clone(), v)
        })
        .collect();
    Ok(DeadLetter { data, attributes })
}

/// Runs the worker to its end; returns its output and its summary line.
async fn run_worker(
    binary: &Path,
    args: &[&str],
    envs: &[(&str, String)],
) -> Result<(Vec<String>, Option<String>)> {
    let name = binary.file_name().map_or_else(
        || binary.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    println!("• running: {name} {}", args.join(" "));
    let started = Instant::now();
    let mut worker = Worker::spawn(binary, args, envs).await?;
    let Some(status) = worker.wait(WORKER_TIMEOUT).await else {
        let log = worker.logs();
        return Err(format!(
            "the worker was still running after {WORKER_TIMEOUT:?}; last log lines:\n{}",
            tail(&log, LOG_TAIL).join("\n")
        )
        .into());
    };
    let log = worker.logs();
    if !status.success() {
        return Err(format!(
            "the worker exited with {status}; last log lines:\n{}",
            tail(&log, LOG_TAIL).join("\n")
        )
        .into());
    }
    println!(
        "  it handled everything and exited 0 after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // The summary is the one stdout line that is `{"summary": …}`; the
    // log (stderr) is JSON lines of another shape.
    let summary = log
        .iter()
        .find(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .is_ok_and(|v| v.get("summary").is_some_and(serde_json::Value::is_object))
        })
        .cloned();
    Ok((log, summary))
}

/// A part's Pub/Sub names: the topic the events go to, the worker's
/// subscription (with a dead-letter policy, as deployed), the dead-letter
/// topic, and a subscription to read the dead letters back.
#[derive(Clone, Copy, Debug)]
struct Topics {
    topic: &'static str,
    subscription: &'static str,
    dead_letter_topic: &'static str,
    inspect: &'static str,
}

impl Topics {
    /// Creates the topics and subscriptions.
    async fn create(&self, pubsub: &PubsubEmulator) -> Result<()> {
        pubsub.create_topic(self.topic).await?;
        pubsub.create_topic(self.dead_letter_topic).await?;
        pubsub
            .create_subscription(
                self.subscription,
                self.topic,
                SubscriptionOptions {
                    dead_letter: Some((self.dead_letter_topic.to_owned(), MAX_DELIVERY_ATTEMPTS)),
                    ..SubscriptionOptions::default()
                },
            )
            .await?;
        pubsub
            .create_subscription(
                self.inspect,
                self.dead_letter_topic,
                SubscriptionOptions::default(),
            )
            .await?;
        Ok(())
    }

    /// `topic orders → subscription orders-gluefleet, dead letters → …`.
    fn describe(&self) -> String {
        format!(
            "topic {} → subscription {}, dead letters → topic {} → subscription {}",
            self.topic, self.subscription, self.dead_letter_topic, self.inspect
        )
    }

    /// The environment a worker on these needs, as on Cloud Run.
    fn envs(&self, pubsub: &PubsubEmulator) -> Vec<(&'static str, String)> {
        vec![
            ("PUBSUB_EMULATOR_HOST", pubsub.host()),
            ("GOOGLE_CLOUD_PROJECT", pubsub.project().to_owned()),
            ("GLUEFLEET_SUBSCRIPTION", self.subscription.to_owned()),
            (
                "GLUEFLEET_DEAD_LETTER_TOPIC",
                self.dead_letter_topic.to_owned(),
            ),
            // Health probes off port 8080.
            ("PORT", gluefleet_testkit::free_port().to_string()),
        ]
    }

    /// Reads back (and acks) the dead letters.
    async fn dead_letters(&self, pubsub: &PubsubEmulator) -> Result<Vec<DeadLetter>> {
        Ok(pubsub
            .drain(self.inspect, Duration::from_secs(1))
            .await?
            .into_iter()
            .map(|m| DeadLetter {
                data: m.data,
                attributes: m.attributes,
            })
            .collect())
    }

    /// Where [`Self::dead_letters`] come from, for the report.
    fn dead_letter_place(&self) -> String {
        format!("read back from subscription {}", self.inspect)
    }
}

fn tail(lines: &[String], n: usize) -> &[String] {
    &lines[lines.len().saturating_sub(n)..]
}

/// A directory of our own under the system temp dir, removed on drop.
#[derive(Debug)]
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> std::io::Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path =
            std::env::temp_dir().join(format!("gluefleet-demo-{}-{nanos:09}", std::process::id()));
        std::fs::create_dir(&path)?;
        Ok(Self(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
