//! What every part of the demo does the same way: build its connector
//! (while its target starts), set up its Pub/Sub topics, write and show the
//! worker's config, publish the samples, run the worker as a job until the
//! subscription is idle, and read the dead letters back.

use super::report::DeadLetter;
use super::{Result, Stage};
use gluefleet_testkit::TestkitError;
use gluefleet_testkit::bin::{Profile, Worker, cargo_build};
use gluefleet_testkit::pubsub::{OutgoingMessage, PubsubEmulator, SubscriptionOptions};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The subscription's dead-letter policy (Pub/Sub's count of deliveries).
const MAX_DELIVERY_ATTEMPTS: u32 = 10;
/// The job exits once nothing arrived for this long.
const IDLE_EXIT: &str = "3s";
/// A worker still running after this is stuck.
const WORKER_TIMEOUT: Duration = Duration::from_secs(120);
/// Worker log lines quoted when the worker failed.
const LOG_TAIL: usize = 40;

/// What a part's worker left behind, whatever its target.
#[derive(Debug, Default)]
pub(crate) struct Run {
    /// The message id of each sample, in sample order.
    pub(crate) message_ids: Vec<String>,
    /// The dead letters.
    pub(crate) dead_letters: Vec<DeadLetter>,
    /// Where they were read from, for the report.
    pub(crate) dead_letter_place: String,
    /// The worker's output.
    pub(crate) worker_log: Vec<String>,
    /// The worker's `{"summary": …}` line.
    pub(crate) summary_line: Option<String>,
}

/// A part's Pub/Sub names: the topic the events go to, the worker's
/// subscription (with a dead-letter policy, as deployed), the dead-letter
/// topic, and a subscription to read the dead letters back.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Topics {
    pub(crate) topic: &'static str,
    pub(crate) subscription: &'static str,
    pub(crate) dead_letter_topic: &'static str,
    pub(crate) inspect: &'static str,
}

impl Topics {
    /// `topic orders → subscription orders-gluefleet, dead letters → …`.
    pub(crate) fn describe(&self) -> String {
        format!(
            "topic {} → subscription {}, dead letters → topic {} → subscription {}",
            self.topic, self.subscription, self.dead_letter_topic, self.inspect
        )
    }
}

/// One part of the demo: a connector and its topics.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Part {
    /// 1, 2, 3: parts after the first are set apart by a rule.
    pub(crate) number: usize,
    /// The connector it runs, `legacy-rest` for `gluefleet-legacy-rest`.
    pub(crate) connector: &'static str,
    pub(crate) topics: Topics,
}

impl Part {
    /// The part's heading.
    pub(crate) fn heading(&self, title: &str) {
        if self.number > 1 {
            println!("\n{}\n", "═".repeat(78));
        }
        println!("gluefleet demo, part {}: {title}\n", self.number);
    }

    /// Brings `gluefleet-<connector>` up to date and returns its path.
    pub(crate) async fn build(&self) -> Result<PathBuf> {
        let package = format!("gluefleet-{}", self.connector);
        Ok(
            tokio::task::spawn_blocking(move || cargo_build(&package, &package, Profile::Current))
                .await??,
        )
    }

    /// Builds the connector while `target` starts, since both take a while
    /// and need nothing from each other; a target that fails to start is
    /// reported with `hint`.
    pub(crate) async fn build_while<T>(
        &self,
        target: impl Future<Output = Result<T, TestkitError>>,
        hint: &str,
    ) -> Result<(PathBuf, T)> {
        let (binary, target) = tokio::join!(self.build(), target);
        let target = target.map_err(|e| format!("{e}\n({hint})"))?;
        Ok((binary?, target))
    }

    /// The Pub/Sub emulator an earlier part left in `stage`, or a new one,
    /// with this part's topics and subscriptions created.
    pub(crate) async fn pubsub(&self, stage: &mut Stage) -> Result<PubsubEmulator> {
        let pubsub = match stage.pubsub.take() {
            Some(p) => p,
            None => start_pubsub().await?,
        };
        let t = self.topics;
        pubsub.create_topic(t.topic).await?;
        pubsub.create_topic(t.dead_letter_topic).await?;
        let policy = SubscriptionOptions {
            dead_letter: Some((t.dead_letter_topic.to_owned(), MAX_DELIVERY_ATTEMPTS)),
            ..SubscriptionOptions::default()
        };
        pubsub
            .create_subscription(t.subscription, t.topic, policy)
            .await?;
        pubsub
            .create_subscription(
                t.inspect,
                t.dead_letter_topic,
                SubscriptionOptions::default(),
            )
            .await?;
        Ok(pubsub)
    }

    /// Writes the worker's config and shows it, indented.
    pub(crate) fn write_config(&self, stage: &Stage, toml: &str) -> Result<PathBuf> {
        let path = stage.tmp.write(&format!("{}.toml", self.connector), toml)?;
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
        Ok(path)
    }

    /// Publishes `messages` to the part's topic through `gluefleet-publish`
    /// ([`super::publish`]), runs the worker as a job
    /// (with `env` on top of the subscription's) until the subscription is
    /// idle, and reads the dead letters back.
    pub(crate) async fn run_job(
        &self,
        stage: &mut Stage,
        pubsub: &PubsubEmulator,
        binary: &Path,
        config: &Path,
        messages: &[OutgoingMessage],
        env: &[(&str, String)],
    ) -> Result<Run> {
        let t = self.topics;
        let message_ids = super::publish::publish(stage, pubsub, t.topic, messages).await?;
        let config_arg = config.display().to_string();
        let args = ["job", "--config", &config_arg, "--idle-exit", IDLE_EXIT];
        let mut envs = pubsub.worker_env(t.subscription, t.dead_letter_topic);
        envs.extend_from_slice(env);
        let (worker_log, summary_line) = run_worker(binary, &args, &envs).await?;
        let dead_letters = pubsub
            .drain(t.inspect, Duration::from_secs(1))
            .await?
            .into_iter()
            .map(DeadLetter::from)
            .collect();
        Ok(Run {
            message_ids,
            dead_letters,
            dead_letter_place: format!("read back from subscription {}", t.inspect),
            worker_log,
            summary_line,
        })
    }
}

/// Starts the Pub/Sub emulator.
pub(crate) async fn start_pubsub() -> Result<PubsubEmulator> {
    println!("• starting the Pub/Sub emulator (about 10 s)…");
    Ok(PubsubEmulator::start().await.map_err(|e| {
        format!("{e}\n(run `cargo xtask demo --no-emulator` to try without Pub/Sub)")
    })?)
}

/// Runs the worker to its end; returns its output and its summary line.
pub(crate) async fn run_worker(
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
    worker.wait_success(WORKER_TIMEOUT, LOG_TAIL).await?;
    let log = worker.logs();
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
