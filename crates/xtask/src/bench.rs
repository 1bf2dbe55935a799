//! `cargo xtask bench firestore`: Firestore API calls per 1,000 events and
//! events per second through `gluefleet-firestore`, on the Pub/Sub and
//! Firestore emulators. A benchmark, not a test: it prints numbers and writes
//! them to docs/BENCHMARKS.md; it asserts nothing about speed.
//!
//! Each run: a fresh topic and subscription, N events of about 1 KiB
//! published first, then the release binary in `job` mode; the job's summary
//! gives the Firestore requests it sent and its elapsed time (less the
//! idle-exit wait). Runs are repeated with a short and a long batch linger,
//! because the emulator hands out at most 100 messages per 50 ms, so how many
//! events share a `batchWrite` depends on how long the first one waits.

use gluefleet_testkit::bin::Worker;
use gluefleet_testkit::firestore::FirestoreEmulator;
use gluefleet_testkit::pubsub::{OutgoingMessage, PubsubEmulator, SubscriptionOptions};
use serde_json::{Value, json};
use std::error::Error;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

type Result<T, E = Box<dyn Error + Send + Sync>> = std::result::Result<T, E>;

const IDLE_EXIT_MS: u64 = 2000;

/// One measured run.
#[derive(Debug)]
struct Run {
    linger_ms: u64,
    events: u64,
    requests: u64,
    seconds: f64,
}

/// Runs the Firestore benchmark with `events` per run and `rounds` rounds.
pub(crate) fn firestore(events: usize, rounds: usize) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bench: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run_all(events, rounds)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn build_release() -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("• building gluefleet-firestore in release mode…");
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "gluefleet-firestore",
            "--bin",
            "gluefleet-firestore",
        ])
        .stdin(Stdio::null())
        .status()?;
    if !status.success() {
        return Err(format!("release build failed ({status})").into());
    }
    // target/<profile>/xtask → target/release/gluefleet-firestore
    let exe = std::env::current_exe()?;
    let target = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("cannot find the target directory from the xtask binary")?;
    Ok(target.join("release").join("gluefleet-firestore"))
}

async fn run_all(events: usize, rounds: usize) -> Result<()> {
    let binary = build_release()?;
    eprintln!("• starting the Pub/Sub and Firestore emulators…");
    let (pubsub, firestore) = tokio::join!(PubsubEmulator::start(), FirestoreEmulator::start());
    let (pubsub, firestore) = (pubsub?, firestore?);
    let dir = std::env::temp_dir().join(format!("gluefleet-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut runs = Vec::new();
    let mut n = 0;
    for round in 0..rounds {
        for linger_ms in [5u64, 250] {
            n += 1;
            let run = one_run(&binary, &pubsub, &firestore, &dir, n, events, linger_ms).await?;
            eprintln!(
                "  round {} linger {linger_ms} ms: {} requests for {} events, {:.0} events/s",
                round + 1,
                run.requests,
                run.events,
                run.events as f64 / run.seconds
            );
            runs.push(run);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let table = report(&runs, events, rounds);
    println!("{table}");
    write_benchmarks(&table)?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn one_run(
    binary: &Path,
    pubsub: &PubsubEmulator,
    firestore: &FirestoreEmulator,
    dir: &Path,
    n: usize,
    events: usize,
    linger_ms: u64,
) -> Result<Run> {
    let topic = format!("bench-{n}");
    let sub = format!("bench-{n}-sub");
    let dead = format!("bench-{n}-dead");
    pubsub.create_topic(&topic).await?;
    pubsub.create_topic(&dead).await?;
    pubsub
        .create_subscription(
            &sub,
            &topic,
            SubscriptionOptions {
                ack_deadline_secs: 60,
                dead_letter: Some((dead.clone(), 10)),
            },
        )
        .await?;
    let filler = "x".repeat(900);
    let msgs: Vec<OutgoingMessage> = (0..events)
        .map(|i| {
            OutgoingMessage::json(&json!({"specversion": "1.0", "id": format!("r{n}-{i}"), "source": "//bench",
                "type": "account.upserted", "data": {"id": format!("r{n}-{i}"), "note": filler, "n": i}}))
        })
        .collect();
    pubsub.publish(&topic, &msgs).await?;
    let config = dir.join(format!("run-{n}.toml"));
    std::fs::write(
        &config,
        format!(
            r#"[pubsub]
concurrency = 1000
max_outstanding_messages = 2000

[target]
project = "{project}"
linger = "{linger_ms}ms"

[[routes]]
type = "account.upserted"
action = {{ operation = "set", document = "bench{n}/{{data.id}}" }}
"#,
            project = firestore.project()
        ),
    )?;
    let config = config.display().to_string();
    let idle = format!("{IDLE_EXIT_MS}ms");
    let mut worker = Worker::spawn(
        binary,
        &["job", "--config", &config, "--idle-exit", &idle],
        &[
            ("PUBSUB_EMULATOR_HOST", pubsub.host()),
            ("FIRESTORE_EMULATOR_HOST", firestore.host()),
            ("GOOGLE_CLOUD_PROJECT", pubsub.project().to_owned()),
            ("GLUEFLEET_SUBSCRIPTION", sub),
            ("GLUEFLEET_DEAD_LETTER_TOPIC", dead),
            ("PORT", gluefleet_testkit::free_port().to_string()),
            ("RUST_LOG", "warn".to_owned()),
        ],
    )
    .await?;
    let status = worker
        .wait(Duration::from_secs(600))
        .await
        .ok_or("the job did not finish in 10 min")?;
    if !status.success() {
        return Err(format!("the job failed ({status}):\n{}", worker.logs().join("\n")).into());
    }
    let summary: Value = worker
        .logs()
        .iter()
        .find_map(|l| {
            serde_json::from_str::<Value>(l)
                .ok()
                .filter(|v| v.get("summary").is_some())
        })
        .ok_or("the job printed no summary")?;
    let s = &summary["summary"];
    let acked = s["acked"].as_u64().unwrap_or(0);
    if acked < events as u64 {
        return Err(format!("only {acked} of {events} events were acked: {s}").into());
    }
    let elapsed_ms = s["elapsed_ms"]
        .as_u64()
        .unwrap_or(0)
        .saturating_sub(IDLE_EXIT_MS)
        .max(1);
    Ok(Run {
        linger_ms,
        events: acked,
        requests: s["target_requests"].as_u64().unwrap_or(0),
        seconds: elapsed_ms as f64 / 1000.0,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn report(runs: &[Run], events: usize, rounds: usize) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "## Firestore connector (`cargo xtask bench firestore`)\n"
    );
    let _ = writeln!(t, "{}\n", machine());
    let _ = writeln!(
        t,
        "{events} events of about 1 KiB per run, {rounds} round(s), medians; Pub/Sub and Firestore emulators on this machine, one stream, concurrency 1,000, release build. Events/s includes start-up, excludes the idle-exit wait.\n"
    );
    let _ = writeln!(
        t,
        "| batch linger | Firestore requests per 1,000 events | events/s |"
    );
    let _ = writeln!(t, "|---|---|---|");
    for linger in [5u64, 250] {
        let mine: Vec<&Run> = runs.iter().filter(|r| r.linger_ms == linger).collect();
        let per_k = median(
            mine.iter()
                .map(|r| r.requests as f64 * 1000.0 / r.events as f64)
                .collect(),
        );
        let eps = median(mine.iter().map(|r| r.events as f64 / r.seconds).collect());
        let _ = writeln!(t, "| {linger} ms | {per_k:.1} | {eps:.0} |");
    }
    t
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!("Machine: {cores} cores, {cpu}.")
}

/// Replaces the Firestore section of docs/BENCHMARKS.md (or creates it).
fn write_benchmarks(section: &str) -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let path = root.join("docs/BENCHMARKS.md");
    let old = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        "# Benchmarks\n\nNumbers from `cargo xtask bench`; rerun to refresh.\n\n".into()
    });
    let start = old.find("## Firestore connector");
    let new = match start {
        Some(i) => {
            let end = old[i + 2..]
                .find("\n## ")
                .map(|j| i + 2 + j + 1)
                .unwrap_or(old.len());
            format!("{}{}\n{}", &old[..i], section.trim_end(), &old[end..])
        }
        None => format!("{}{}\n", old, section.trim_end()),
    };
    std::fs::write(&path, new)?;
    eprintln!("• wrote {}", path.display());
    Ok(())
}
