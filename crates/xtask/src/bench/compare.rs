//! `cargo xtask bench`: gluefleet workers side by side with the least a
//! Pub/Sub worker can do. A benchmark, not a test: it prints a table and
//! writes it to docs/BENCHMARKS.md; it asserts nothing about speed.
//!
//! The yardstick is `raw-subscriber` (src/bin/raw-subscriber.rs): the
//! official `google-cloud-pubsub` client receiving, parsing JSON and acking.
//! The same loop with `--post-to` also POSTs each message to the sink
//! through hyper-util's client before acking it: the floor under any worker
//! that delivers over HTTP, which the report sets beside the yardstick.
//! Against it run `gluefleet-legacy-rest` (every event a real HTTP request to
//! a local sink that answers at once, in-memory idempotency store on, no rate
//! limit) and the batching connectors (Firestore on its emulator, Salesforce
//! on the sandbox double), all release builds.
//!
//! Each round publishes one backlog to a topic that has a fresh subscription
//! per (worker, stream count), so every worker drains the same messages from
//! a subscription nobody pulled before; the order of the workers alternates
//! between rounds. The emulator hands out at most 100 messages per 50 ms per
//! streaming pull, so throughput only compares at equal stream counts (1 and
//! 5). Every worker reports its own CPU time and peak RSS from `getrusage`,
//! split at the first message (a gluefleet job's summary `resources`, the
//! yardstick's one line), so start-up is left out the same way for all.
//! Separate idle runs (`run` mode, empty subscription) give the time from
//! process start to `/readyz` = 200 and the resident memory 2 s later.

pub(crate) mod link_order;

use super::{
    Result, SinkProcess, block_on, build_release, machine, median, memory, mib,
    reaped_children_cpu, run_job, summary_at_exit, write_benchmarks,
};
use gluefleet_testkit::TempDir;
use gluefleet_testkit::bin::Worker;
use gluefleet_testkit::firestore::FirestoreEmulator;
use gluefleet_testkit::pubsub::{OutgoingMessage, PubsubEmulator, SubscriptionOptions};
use gluefleet_testkit::salesforce::{SalesforceConfig, SalesforceDouble};
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Stream counts every worker runs at.
const STREAMS: [usize; 2] = [1, 5];
/// A job ends after this long without a message (not counted anywhere).
const IDLE_EXIT: &str = "2s";
/// How long an idle worker sits before its resident memory is read.
const IDLE_SETTLE: Duration = Duration::from_secs(2);
/// Flow control per stream, the same for every worker (gluefleet's default).
const MAX_OUTSTANDING: i64 = 1000;
/// The event's `data.note`, padding each message to about 1 KiB.
const NOTE_LEN: usize = 880;

/// The issue's goals for gluefleet-legacy-rest, checked in the report.
const GOAL_THROUGHPUT_RATIO: f64 = 0.9;
/// Whole-process CPU per message at most this many times the raw loop's.
const GOAL_CPU_RATIO: f64 = 2.0;
/// Whole-process CPU s per 10k messages at one stream.
const GOAL_CPU_S_PER_10K: f64 = 0.24;
const GOAL_PEAK_RSS_MIB: f64 = 16.0;
const GOAL_IDLE_RSS_MIB: f64 = 15.0;
const GOAL_READY_MS: f64 = 100.0;

/// A worker under measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Subject {
    /// The yardstick: receive, parse JSON, ack.
    Raw,
    /// The yardstick, also POSTing each message to the HTTP sink.
    RawHttp,
    /// gluefleet-legacy-rest to a local HTTP sink.
    LegacyRest,
    /// gluefleet-firestore to the Firestore emulator.
    Firestore,
    /// gluefleet-salesforce to the sandbox double.
    Salesforce,
}

impl Subject {
    const ALL: [Subject; 5] = [
        Subject::Raw,
        Subject::RawHttp,
        Subject::LegacyRest,
        Subject::Firestore,
        Subject::Salesforce,
    ];

    fn label(self) -> &'static str {
        match self {
            Subject::Raw => "raw google-cloud-pubsub loop",
            Subject::RawHttp => "raw loop + one HTTP POST each (hyper-util)",
            Subject::LegacyRest => "gluefleet-legacy-rest → HTTP sink",
            Subject::Firestore => "gluefleet-firestore → emulator",
            Subject::Salesforce => "gluefleet-salesforce → double",
        }
    }

    /// As `--workers` names it.
    fn name(self) -> &'static str {
        match self {
            Subject::Raw => "raw",
            Subject::RawHttp => "raw-http",
            Subject::LegacyRest => "legacy-rest",
            Subject::Firestore => "firestore",
            Subject::Salesforce => "salesforce",
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Subject::Raw => "raw",
            Subject::RawHttp => "rawh",
            Subject::LegacyRest => "rest",
            Subject::Firestore => "fs",
            Subject::Salesforce => "sf",
        }
    }

    /// (package, binary).
    fn binary(self) -> (&'static str, &'static str) {
        match self {
            Subject::Raw | Subject::RawHttp => ("xtask", "raw-subscriber"),
            Subject::LegacyRest => ("gluefleet-legacy-rest", "gluefleet-legacy-rest"),
            Subject::Firestore => ("gluefleet-firestore", "gluefleet-firestore"),
            Subject::Salesforce => ("gluefleet-salesforce", "gluefleet-salesforce"),
        }
    }
}

/// One drained backlog.
#[derive(Debug)]
struct Load {
    subject: Subject,
    streams: usize,
    acked: u64,
    busy_ms: u64,
    busy_cpu_ms: u64,
    /// The whole process, start to exit, as the kernel counted it.
    process_cpu_ms: u64,
    peak_rss_kib: u64,
    /// Target API calls (None for the bare yardstick).
    calls: Option<u64>,
    /// TCP connections the HTTP sink accepted (legacy-rest only).
    connections: Option<u64>,
}

/// One idle run.
#[derive(Debug)]
struct Idle {
    subject: Subject,
    /// Process start to `/readyz` = 200 (None for the yardstick: no probe).
    ready_ms: Option<f64>,
    rss_kib: u64,
}

/// Where each worker sends its effects.
struct Targets {
    sink: SinkProcess,
    sink_url: String,
    firestore: FirestoreEmulator,
}

impl Targets {
    /// The Pub/Sub emulator (with the dead-letter topic every config names)
    /// and every worker's target, started.
    async fn start() -> Result<(PubsubEmulator, Targets)> {
        eprintln!("• starting the Pub/Sub and Firestore emulators and the HTTP sink…");
        let pubsub = PubsubEmulator::start().await?;
        let firestore = FirestoreEmulator::start().await?;
        let sink = SinkProcess::start().await?;
        let sink_url = sink.url().to_owned();
        pubsub.create_topic("bench-dead").await?;
        Ok((
            pubsub,
            Targets {
                sink,
                sink_url,
                firestore,
            },
        ))
    }
}

/// Runs the comparison: `events` per backlog, `rounds` rounds.
///
/// The HTTP sink and the Salesforce double run inside this process, so an
/// unoptimised build (what `cargo xtask` runs) would measure them, not the
/// workers: the double alone then saturated a core at about 6,000 events/s.
/// A debug build therefore runs itself again in release mode.
pub(crate) fn run(events: usize, rounds: usize, only: &[String]) -> ExitCode {
    if cfg!(debug_assertions) {
        return rerun_in_release();
    }
    let mut subjects = vec![Subject::Raw, Subject::RawHttp];
    for name in only {
        match Subject::ALL.iter().find(|s| s.name() == name) {
            Some(s) if !subjects.contains(s) => subjects.push(*s),
            Some(_) => {}
            None => {
                eprintln!(
                    "bench: unknown worker {name:?} (known: legacy-rest, firestore, salesforce)"
                );
                return ExitCode::FAILURE;
            }
        }
    }
    if only.is_empty() {
        subjects = Subject::ALL.to_vec();
    }
    block_on(run_all(&subjects, events, rounds))
}

/// `cargo run --release -p xtask -- <the same arguments>`.
fn rerun_in_release() -> ExitCode {
    eprintln!("• running the benchmark from a release build of xtask…");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args([
            "run",
            "--quiet",
            "--release",
            "-p",
            "xtask",
            "--bin",
            "xtask",
            "--",
        ])
        .args(std::env::args_os().skip(1))
        .status();
    match status {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(s) => {
            eprintln!("bench: the release run failed ({s})");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("bench: cannot run cargo: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run_all(subjects: &[Subject], events: usize, rounds: usize) -> Result<()> {
    let mut binaries: Vec<(Subject, PathBuf)> = Vec::new();
    for &subject in subjects {
        let (package, bin) = subject.binary();
        let built = match binaries.iter().find(|(s, _)| s.binary() == (package, bin)) {
            Some((_, path)) => path.clone(),
            None => build_release(package, bin)?,
        };
        binaries.push((subject, built));
    }
    // Whether each binary was linked in the order its list gives (the
    // names go stale as dependencies change; see gluefleet-build).
    let mut orders = Vec::new();
    for (subject, path) in &binaries {
        if matches!(subject, Subject::Raw | Subject::RawHttp) {
            continue;
        }
        let found = link_order::coverage(*subject, path)?;
        if let Some((found, of)) = found {
            eprintln!(
                "  {}: link order {found} of {of} functions found",
                subject.label()
            );
        }
        orders.push((*subject, found));
    }
    let binary = |s: Subject| -> Result<&PathBuf> {
        binaries
            .iter()
            .find(|(b, _)| *b == s)
            .map(|(_, p)| p)
            .ok_or_else(|| "binary not built".into())
    };
    let (pubsub, targets) = Targets::start().await?;
    let dir = TempDir::new("compare")?;

    let mut loads = Vec::new();
    let mut idles = Vec::new();
    for round in 0..rounds {
        let topic = format!("bench-r{round}");
        pubsub.create_topic(&topic).await?;
        let mut order: Vec<(Subject, usize)> = subjects
            .iter()
            .flat_map(|s| STREAMS.iter().map(move |n| (*s, *n)))
            .collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for (subject, streams) in &order {
            pubsub
                .create_subscription(
                    &sub_id(round, *subject, *streams),
                    &topic,
                    SubscriptionOptions {
                        ack_deadline_secs: 60,
                        dead_letter: None,
                        push_endpoint: None,
                    },
                )
                .await?;
        }
        eprintln!("• round {}: publishing {events} messages…", round + 1);
        pubsub.publish(&topic, &backlog(round, events)).await?;
        for (subject, streams) in order {
            let load = one_load(
                binary(subject)?,
                &pubsub,
                &targets,
                &dir,
                round,
                subject,
                streams,
                events,
            )
            .await?;
            eprintln!(
                "  {} × {streams}: {:.0} msg/s, {:.3} CPU s/10k busy, {:.3} whole process, peak {:.1} MiB{}{}",
                subject.label(),
                throughput(&load),
                cpu_per_10k(&load),
                process_cpu_per_10k(&load),
                mib(load.peak_rss_kib),
                load.calls
                    .map(|c| format!(", {:.1} calls/1000", per_k(c, load.acked)))
                    .unwrap_or_default(),
                load.connections
                    .map(|c| format!(", {c} connection(s)"))
                    .unwrap_or_default()
            );
            loads.push(load);
        }
        let idle_topic = format!("bench-idle-r{round}");
        pubsub.create_topic(&idle_topic).await?;
        // The HTTP yardstick is the same binary as the bare one at idle.
        let mut idle_order: Vec<Subject> = subjects
            .iter()
            .copied()
            .filter(|s| *s != Subject::RawHttp)
            .collect();
        if round % 2 == 1 {
            idle_order.reverse();
        }
        for subject in idle_order {
            let sub = format!("bench-idle-r{round}-{}", subject.slug());
            pubsub
                .create_subscription(&sub, &idle_topic, SubscriptionOptions::default())
                .await?;
            let idle = one_idle(binary(subject)?, &pubsub, &targets, &dir, subject, &sub).await?;
            eprintln!(
                "  {} idle: ready {}, {:.1} MiB",
                subject.label(),
                idle.ready_ms
                    .map(|ms| format!("{ms:.0} ms"))
                    .unwrap_or_else(|| "—".into()),
                mib(idle.rss_kib)
            );
            idles.push(idle);
        }
    }
    drop(dir);
    let table = report(&loads, &idles, &orders, events, rounds);
    println!("{table}");
    // What one large event costs gluefleet-legacy-rest, beside what a
    // backlog of small ones does.
    let memory = if subjects.contains(&Subject::LegacyRest) {
        eprintln!("• peak memory for one large event (gluefleet-legacy-rest, file source)…");
        let section = memory::measure().await?;
        println!("{section}");
        Some(section)
    } else {
        None
    };
    if subjects.len() == Subject::ALL.len() {
        write_benchmarks(TITLE, &table)?;
        if let Some(section) = memory {
            write_benchmarks(memory::TITLE, &section)?;
        }
    } else {
        eprintln!("• not all workers ran: docs/BENCHMARKS.md left as it was");
    }
    Ok(())
}

const TITLE: &str = "Side by side with the raw client (`cargo xtask bench`)";

fn sub_id(round: usize, subject: Subject, streams: usize) -> String {
    format!("bench-r{round}-{}-{streams}", subject.slug())
}

/// `events` CloudEvents of about 1 KiB, ids unique per round.
fn backlog(round: usize, events: usize) -> Vec<OutgoingMessage> {
    let note = "x".repeat(NOTE_LEN);
    (0..events)
        .map(|i| {
            let id = format!("b{round}-{i:06}");
            let data = json!({"id": id, "name": format!("Bench account {i}"), "note": note});
            OutgoingMessage::cloudevent(&id, "//bench", "bench.event", data)
        })
        .collect()
}

/// The config of a gluefleet worker and the environment it needs.
fn config(
    subject: Subject,
    targets: &Targets,
    salesforce: Option<&SalesforceDouble>,
    streams: usize,
    collection: &str,
) -> Result<(String, Vec<(&'static str, String)>)> {
    let pubsub =
        format!("[pubsub]\nstreams = {streams}\nmax_outstanding_messages = {MAX_OUTSTANDING}\n");
    Ok(match subject {
        Subject::Raw | Subject::RawHttp => return Err("the yardstick takes no config".into()),
        // Defaults otherwise: concurrency 64, in-memory idempotency store.
        Subject::LegacyRest => (
            format!(
                r#"{pubsub}
[target]
base_url = "{url}"
allow_insecure_http = true

[[routes]]
type = "bench.event"
action = {{ path = "/accounts/{{data.id}}", body = ".data" }}
"#,
                url = targets.sink_url
            ),
            Vec::new(),
        ),
        // Batching needs events waiting at once: the concurrency the
        // connector's README recommends (up to one full batch of 500).
        Subject::Firestore => (
            format!(
                r#"{pubsub}concurrency = 500

[target]
project = "{project}"

[[routes]]
type = "bench.event"
action = {{ operation = "set", document = "{collection}/{{data.id}}" }}
"#,
                project = targets.firestore.project()
            ),
            vec![("FIRESTORE_EMULATOR_HOST", targets.firestore.host())],
        ),
        Subject::Salesforce => {
            let sf = salesforce.ok_or("the Salesforce double did not start")?;
            // The README's concurrency: two calls of 200 records in flight.
            (
                format!(
                    r#"{pubsub}concurrency = 400

{auth}
[target]

[[routes]]
type = "bench.event"
action = {{ operation = "upsert", sobject = "Account", external_id_field = "External_Id__c", external_id = "{{data.id}}", fields = "{{Name: .data.name, Description: .data.note}}" }}
"#,
                    auth = sf.jwt_auth_toml()
                ),
                vec![SalesforceDouble::private_key_env()],
            )
        }
    })
}

/// A Salesforce double for one run, so earlier runs' records never slow it.
async fn salesforce_for(subject: Subject) -> Result<Option<SalesforceDouble>> {
    Ok(match subject {
        Subject::Salesforce => Some(
            SalesforceDouble::start(SalesforceConfig {
                daily_limit: 10_000_000,
                ..SalesforceConfig::default()
            })
            .await?,
        ),
        _ => None,
    })
}

/// A worker's environment on subscription `sub`: the emulator's, and the
/// default log level (`info`, a line per acked message), since that is what
/// a deployed worker pays for.
fn base_env(pubsub: &PubsubEmulator, sub: &str) -> Vec<(&'static str, String)> {
    let mut env = pubsub.worker_env(sub, "bench-dead");
    env.push(("RUST_LOG", "info".to_owned()));
    env
}

#[allow(clippy::too_many_arguments)]
async fn one_load(
    binary: &Path,
    pubsub: &PubsubEmulator,
    targets: &Targets,
    dir: &TempDir,
    round: usize,
    subject: Subject,
    streams: usize,
    events: usize,
) -> Result<Load> {
    let sub = sub_id(round, subject, streams);
    let full_sub = format!("projects/{}/subscriptions/{sub}", pubsub.project());
    targets.sink.take().await?;
    let salesforce = salesforce_for(subject).await?;
    let what = format!("{} × {streams}", subject.label());
    let cpu_before = reaped_children_cpu();
    let summary = match subject {
        Subject::Raw | Subject::RawHttp => {
            let streams = streams.to_string();
            let events = events.to_string();
            let outstanding = MAX_OUTSTANDING.to_string();
            let mut args = vec![
                "--subscription",
                &full_sub,
                "--streams",
                &streams,
                "--messages",
                &events,
                "--max-outstanding",
                &outstanding,
                "--idle-exit",
                IDLE_EXIT,
            ];
            if subject == Subject::RawHttp {
                args.extend(["--post-to", &targets.sink_url]);
            }
            let worker =
                Worker::spawn(binary, &args, &[("PUBSUB_EMULATOR_HOST", pubsub.host())]).await?;
            summary_at_exit(worker, &what).await?
        }
        _ => {
            let (text, mut env) = config(
                subject,
                targets,
                salesforce.as_ref(),
                streams,
                &format!("bench-r{round}-{streams}"),
            )?;
            let path = dir.write(&format!("{sub}.toml"), text)?;
            env.extend(base_env(pubsub, &sub));
            run_job(binary, &path, IDLE_EXIT, &env, &what).await?
        }
    };
    let process_cpu = reaped_children_cpu().saturating_sub(cpu_before);
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let r = &summary["resources"];
    let acked = n(&summary["acked"]);
    if acked < events as u64 {
        return Err(format!(
            "{} × {streams} acked {acked} of {events}: {summary}",
            subject.label()
        )
        .into());
    }
    let mut connections = None;
    if n(&summary["failed_posts"]) > 0 {
        return Err(format!("{what}: POSTs without a 2xx answer: {summary}").into());
    }
    let calls = match subject {
        Subject::Raw => None,
        Subject::RawHttp | Subject::LegacyRest => {
            let counts = targets.sink.take().await?;
            if counts.distinct_keys != events as u64 {
                return Err(format!(
                    "the sink saw {} distinct events of {events}",
                    counts.distinct_keys
                )
                .into());
            }
            connections = Some(counts.connections);
            Some(counts.requests)
        }
        Subject::Firestore | Subject::Salesforce => Some(n(&summary["target_requests"])),
    };
    Ok(Load {
        subject,
        streams,
        acked,
        busy_ms: n(&r["busy_ms"]).max(1),
        busy_cpu_ms: n(&r["busy_cpu_ms"]),
        process_cpu_ms: u64::try_from(process_cpu.as_millis()).unwrap_or(u64::MAX),
        peak_rss_kib: n(&r["peak_rss_kib"]),
        calls,
        connections,
    })
}

async fn one_idle(
    binary: &Path,
    pubsub: &PubsubEmulator,
    targets: &Targets,
    dir: &TempDir,
    subject: Subject,
    sub: &str,
) -> Result<Idle> {
    let salesforce = salesforce_for(subject).await?;
    let http = reqwest::Client::new();
    let (mut worker, ready_ms) = match subject {
        Subject::Raw | Subject::RawHttp => {
            let full_sub = format!("projects/{}/subscriptions/{sub}", pubsub.project());
            let w = Worker::spawn(
                binary,
                &["--subscription", &full_sub, "--idle-exit", "0s"],
                &[("PUBSUB_EMULATOR_HOST", pubsub.host())],
            )
            .await?;
            (w, None)
        }
        _ => {
            let (text, mut env) = config(subject, targets, salesforce.as_ref(), 1, "bench-idle")?;
            let path = dir.write(&format!("{sub}.toml"), text)?;
            env.extend(base_env(pubsub, sub));
            let port = env
                .iter()
                .find(|(k, _)| *k == "PORT")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            let path = path.display().to_string();
            let url = format!("http://127.0.0.1:{port}/readyz");
            let started = Instant::now();
            let w = Worker::spawn(binary, &["run", "--config", &path], &env).await?;
            let ready = loop {
                if let Ok(r) = http.get(&url).send().await
                    && r.status() == reqwest::StatusCode::OK
                {
                    break started.elapsed();
                }
                if started.elapsed() > Duration::from_secs(30) {
                    return Err(format!(
                        "{} not ready after 30 s:\n{}",
                        subject.label(),
                        w.logs().join("\n")
                    )
                    .into());
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            };
            (w, Some(ready.as_secs_f64() * 1000.0))
        }
    };
    tokio::time::sleep(IDLE_SETTLE).await;
    let pid = worker.pid().ok_or("the idle worker already exited")?;
    let rss_kib = vm_rss_kib(pid)?;
    worker.signal_term();
    let _ = worker.wait(Duration::from_secs(15)).await;
    Ok(Idle {
        subject,
        ready_ms,
        rss_kib,
    })
}

/// `VmRSS` of process `pid`, KiB.
fn vm_rss_kib(pid: u32) -> Result<u64> {
    gluefleet_runtime::usage::status_kib(&pid.to_string(), "VmRSS")
        .ok_or_else(|| format!("no VmRSS in /proc/{pid}/status").into())
}

fn throughput(l: &Load) -> f64 {
    l.acked as f64 * 1000.0 / l.busy_ms as f64
}

fn cpu_per_10k(l: &Load) -> f64 {
    l.busy_cpu_ms as f64 / 1000.0 * 10_000.0 / l.acked as f64
}

fn process_cpu_per_10k(l: &Load) -> f64 {
    l.process_cpu_ms as f64 / 1000.0 * 10_000.0 / l.acked as f64
}

fn per_k(calls: u64, events: u64) -> f64 {
    calls as f64 * 1000.0 / events.max(1) as f64
}

/// Medians of one (worker, streams) cell.
#[derive(Debug, Clone, Copy)]
struct Cell {
    rate: f64,
    cpu: f64,
    process_cpu: f64,
    peak_mib: f64,
    calls: Option<f64>,
    connections: Option<f64>,
}

fn cell(loads: &[Load], subject: Subject, streams: usize) -> Option<Cell> {
    let mine: Vec<&Load> = loads
        .iter()
        .filter(|l| l.subject == subject && l.streams == streams)
        .collect();
    if mine.is_empty() {
        return None;
    }
    let calls: Vec<f64> = mine
        .iter()
        .filter_map(|l| l.calls.map(|c| per_k(c, l.acked)))
        .collect();
    let connections: Vec<f64> = mine
        .iter()
        .filter_map(|l| l.connections.map(|c| c as f64))
        .collect();
    Some(Cell {
        rate: median(mine.iter().map(|l| throughput(l)).collect()),
        cpu: median(mine.iter().map(|l| cpu_per_10k(l)).collect()),
        process_cpu: median(mine.iter().map(|l| process_cpu_per_10k(l)).collect()),
        peak_mib: median(mine.iter().map(|l| mib(l.peak_rss_kib)).collect()),
        calls: (!calls.is_empty()).then(|| median(calls)),
        connections: (!connections.is_empty()).then(|| median(connections)),
    })
}

fn report(
    loads: &[Load],
    idles: &[Idle],
    orders: &[(Subject, Option<(usize, usize)>)],
    events: usize,
    rounds: usize,
) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "## {TITLE}\n");
    let _ = writeln!(t, "{}\n", machine());
    let _ = writeln!(
        t,
        "{events} messages of about 1 KiB (structured CloudEvents) per backlog, {rounds} \
         rounds, medians; every worker on a fresh subscription of the same backlog, the \
         order alternating between rounds; release builds; flow control \
         {MAX_OUTSTANDING} messages per stream for all. The Pub/Sub emulator, the \
         Firestore emulator, the HTTP sink, the Salesforce double and the worker share \
         this machine's cores. The raw loop is the official `google-cloud-pubsub` client \
         receiving, parsing JSON and acking (`crates/xtask/src/bin/raw-subscriber.rs`); \
         the raw loop + HTTP is the same loop also POSTing each message to the sink \
         through hyper-util's pooled client, 64 in flight, before acking it: the least \
         a worker delivering over HTTP can cost here; \
         gluefleet-legacy-rest makes one real HTTP request per event to a sink in a \
         process of its own on one thread (`crates/xtask/src/bin/http-sink.rs`, its CPU \
         not counted) that answers 200 at once, with the in-memory idempotency store on \
         and no rate limit, logging at the default level (`info`: a line per acked \
         message); the batching connectors run with the `concurrency` their \
         READMEs recommend (Firestore 500, one full `batchWrite`; Salesforce 400, two \
         Collections calls of 200 in flight) and their defaults otherwise (linger 5 ms \
         and 1 s).\n"
    );
    let _ = writeln!(
        t,
        "**Whole process** is the CPU the kernel billed the worker from exec to exit \
         (`getrusage(RUSAGE_CHILDREN)` across its run): start-up, the 2 s idle wait \
         before a job exits and shutdown included, as a user's bill counts it. msg/s \
         and **busy** CPU are measured from the first message to the last one settled \
         (`resources` in the job summary, `getrusage`), so start-up is excluded for \
         all. Idle RSS: `VmRSS` 2 s after start on an empty subscription (`run` mode); \
         ready: process start to the first `/readyz` = 200. Connections: TCP \
         connections the sink accepted for the whole backlog.\n"
    );
    let _ = writeln!(
        t,
        "| worker | streams | msg/s | × raw | CPU s / 10k msgs, whole process | × raw | busy CPU s / 10k | × raw | peak RSS MiB | idle RSS MiB | ready ms | target calls / 1,000 events | connections |"
    );
    let _ = writeln!(t, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for subject in Subject::ALL {
        let idle: Vec<&Idle> = idles.iter().filter(|i| i.subject == subject).collect();
        let idle_mib = if idle.is_empty() {
            "—".to_owned()
        } else {
            format!(
                "{:.1}",
                median(idle.iter().map(|i| mib(i.rss_kib)).collect())
            )
        };
        let ready: Vec<f64> = idle.iter().filter_map(|i| i.ready_ms).collect();
        let ready = if ready.is_empty() {
            "—".to_owned()
        } else {
            format!("{:.0}", median(ready))
        };
        for streams in STREAMS {
            let (Some(c), Some(raw)) = (
                cell(loads, subject, streams),
                cell(loads, Subject::Raw, streams),
            ) else {
                continue;
            };
            let dash = |v: Option<f64>, digits: usize| {
                v.map(|k| format!("{k:.digits$}"))
                    .unwrap_or_else(|| "—".into())
            };
            let _ = writeln!(
                t,
                "| {} | {streams} | {:.0} | {:.2} | {:.3} | {:.2} | {:.3} | {:.2} | {:.1} | {idle_mib} | {ready} | {} | {} |",
                subject.label(),
                c.rate,
                c.rate / raw.rate,
                c.process_cpu,
                c.process_cpu / raw.process_cpu,
                c.cpu,
                c.cpu / raw.cpu,
                c.peak_mib,
                dash(c.calls, 1),
                dash(c.connections, 0),
            );
        }
    }
    let _ = writeln!(
        t,
        "\nLink order (the functions a worker runs laid out together, from \
         `connectors/<name>/link-order.txt`; see the gluefleet-build crate): "
    );
    for (subject, found) in orders {
        let line = match found {
            Some((found, of)) => {
                format!("{found} of the list's {of} functions found in the binary")
            }
            None => "no list: linked in the linker's own order".to_owned(),
        };
        let _ = writeln!(t, "- {}: {line}", subject.label());
    }
    goals(&mut t, loads, idles);
    t
}

/// The goals for gluefleet-legacy-rest, met or not.
fn goals(t: &mut String, loads: &[Load], idles: &[Idle]) {
    let _ = writeln!(
        t,
        "\nGoals for gluefleet-legacy-rest (delivering over HTTP, idempotency store on):\n"
    );
    let mark = |ok: bool| if ok { "met" } else { "**missed**" };
    for streams in STREAMS {
        if let (Some(c), Some(raw)) = (
            cell(loads, Subject::LegacyRest, streams),
            cell(loads, Subject::Raw, streams),
        ) {
            let ratio = c.rate / raw.rate;
            let _ = writeln!(
                t,
                "- throughput ≥ {GOAL_THROUGHPUT_RATIO}× raw at {streams} stream(s): {ratio:.2}× ({})",
                mark(ratio >= GOAL_THROUGHPUT_RATIO)
            );
            let cpu_ratio = c.process_cpu / raw.process_cpu;
            let _ = writeln!(
                t,
                "- whole-process CPU ≤ {GOAL_CPU_RATIO}× raw at {streams} stream(s): {cpu_ratio:.2}× ({})",
                mark(cpu_ratio <= GOAL_CPU_RATIO)
            );
            if let Some(floor) = cell(loads, Subject::RawHttp, streams) {
                let _ = writeln!(
                    t,
                    "  - for scale: the raw loop + HTTP costs {:.2}× raw ({:.3} CPU s/10k) \
                     at {streams} stream(s), and gluefleet-legacy-rest {:.2}× that",
                    floor.process_cpu / raw.process_cpu,
                    floor.process_cpu,
                    c.process_cpu / floor.process_cpu
                );
            }
            if streams == 1 {
                let _ = writeln!(
                    t,
                    "- ≤ {GOAL_CPU_S_PER_10K} CPU s per 10k messages (whole process) at 1 stream: {:.3} ({})",
                    c.process_cpu,
                    mark(c.process_cpu <= GOAL_CPU_S_PER_10K)
                );
            }
            let _ = writeln!(
                t,
                "- peak RSS ≤ {GOAL_PEAK_RSS_MIB} MiB at {streams} stream(s): {:.1} MiB ({})",
                c.peak_mib,
                mark(c.peak_mib <= GOAL_PEAK_RSS_MIB)
            );
        }
    }
    let idle: Vec<&Idle> = idles
        .iter()
        .filter(|i| i.subject == Subject::LegacyRest)
        .collect();
    if !idle.is_empty() {
        let rss = median(idle.iter().map(|i| mib(i.rss_kib)).collect());
        let ready = median(idle.iter().filter_map(|i| i.ready_ms).collect());
        let _ = writeln!(
            t,
            "- idle RSS ≤ {GOAL_IDLE_RSS_MIB} MiB: {rss:.1} MiB ({})",
            mark(rss <= GOAL_IDLE_RSS_MIB)
        );
        let _ = writeln!(
            t,
            "- ready ≤ {GOAL_READY_MS} ms: {ready:.0} ms ({})",
            mark(ready <= GOAL_READY_MS)
        );
    }
}
