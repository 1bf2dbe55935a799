//! `cargo xtask bench firestore|salesforce`: target API calls per 1,000
//! events and events per second through a batching connector, on the Pub/Sub
//! emulator with the Firestore emulator or the Salesforce sandbox double. A
//! benchmark, not a test: it prints numbers and writes them to
//! docs/BENCHMARKS.md; it asserts nothing about speed.
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
use gluefleet_testkit::salesforce::{SalesforceConfig, SalesforceDouble, TEST_PRIVATE_KEY_PEM};
use serde_json::{Value, json};
use std::error::Error;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

type Result<T, E = Box<dyn Error + Send + Sync>> = std::result::Result<T, E>;

const IDLE_EXIT_MS: u64 = 2000;

/// Which connector is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// gluefleet-firestore on the Firestore emulator.
    Firestore,
    /// gluefleet-salesforce on the Salesforce sandbox double.
    Salesforce,
}

impl Target {
    fn package(self) -> &'static str {
        match self {
            Target::Firestore => "gluefleet-firestore",
            Target::Salesforce => "gluefleet-salesforce",
        }
    }
    fn title(self) -> &'static str {
        match self {
            Target::Firestore => "Firestore connector (`cargo xtask bench firestore`)",
            Target::Salesforce => "Salesforce connector (`cargo xtask bench salesforce`)",
        }
    }
    fn lingers(self) -> [u64; 2] {
        match self {
            Target::Firestore => [5, 250],
            Target::Salesforce => [20, 1000],
        }
    }
}

/// Where the connector writes. The Salesforce double is started afresh for
/// each run, so records of earlier runs never slow its lookups.
enum Sink {
    Firestore(Box<FirestoreEmulator>),
    Salesforce,
}

/// One measured run.
#[derive(Debug)]
struct Run {
    linger_ms: u64,
    events: u64,
    requests: u64,
    seconds: f64,
}

/// Runs the benchmark of `target` with `events` per run and `rounds` rounds.
pub(crate) fn run(target: Target, events: usize, rounds: usize) -> ExitCode {
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
    match runtime.block_on(run_all(target, events, rounds)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn build_release(package: &str) -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("• building {package} in release mode…");
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            package,
            "--bin",
            package,
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
    Ok(target.join("release").join(package))
}

async fn run_all(target: Target, events: usize, rounds: usize) -> Result<()> {
    let binary = build_release(target.package())?;
    eprintln!("• starting the Pub/Sub emulator and the target…");
    let pubsub = PubsubEmulator::start().await?;
    let sink = match target {
        Target::Firestore => Sink::Firestore(Box::new(FirestoreEmulator::start().await?)),
        Target::Salesforce => Sink::Salesforce,
    };
    let dir = std::env::temp_dir().join(format!("gluefleet-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut runs = Vec::new();
    let mut n = 0;
    for round in 0..rounds {
        for linger_ms in target.lingers() {
            n += 1;
            let run = one_run(&binary, &pubsub, &sink, &dir, n, events, linger_ms).await?;
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
    let table = report(target, &runs, events, rounds);
    println!("{table}");
    write_benchmarks(target.title(), &table)?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn one_run(
    binary: &Path,
    pubsub: &PubsubEmulator,
    sink: &Sink,
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
    let common = "[pubsub]\nconcurrency = 1000\nmax_outstanding_messages = 2000\n";
    let double = match sink {
        Sink::Salesforce => Some(
            SalesforceDouble::start(SalesforceConfig {
                daily_limit: 10_000_000,
                ..SalesforceConfig::default()
            })
            .await?,
        ),
        Sink::Firestore(_) => None,
    };
    let (text, mut env) = match (sink, &double) {
        (Sink::Firestore(fs), _) => (
            format!(
                r#"{common}
[target]
project = "{project}"
linger = "{linger_ms}ms"

[[routes]]
type = "account.upserted"
action = {{ operation = "set", document = "bench{n}/{{data.id}}" }}
"#,
                project = fs.project()
            ),
            vec![("FIRESTORE_EMULATOR_HOST", fs.host())],
        ),
        (Sink::Salesforce, Some(sf)) => {
            let d = SalesforceConfig::default();
            (
                format!(
                    r#"{common}
[auth]
kind = "jwt_bearer"
login_url = "{url}"
consumer_key = "{key}"
username = "{user}"
private_key = "${{SALESFORCE_PRIVATE_KEY}}"

[target]
linger = "{linger_ms}ms"

[[routes]]
type = "account.upserted"
action = {{ operation = "upsert", sobject = "Account", external_id_field = "External_Id__c", external_id = "{{data.id}}", fields = "{{Name: .data.id, Description: .data.note}}" }}
"#,
                    url = sf.url(),
                    key = d.consumer_key,
                    user = d.username
                ),
                vec![("SALESFORCE_PRIVATE_KEY", TEST_PRIVATE_KEY_PEM.to_owned())],
            )
        }
        (Sink::Salesforce, None) => return Err("the Salesforce double did not start".into()),
    };
    std::fs::write(&config, text)?;
    let config = config.display().to_string();
    let idle = format!("{IDLE_EXIT_MS}ms");
    env.extend([
        ("PUBSUB_EMULATOR_HOST", pubsub.host()),
        ("GOOGLE_CLOUD_PROJECT", pubsub.project().to_owned()),
        ("GLUEFLEET_SUBSCRIPTION", sub),
        ("GLUEFLEET_DEAD_LETTER_TOPIC", dead),
        ("PORT", gluefleet_testkit::free_port().to_string()),
        ("RUST_LOG", "warn".to_owned()),
    ]);
    let mut worker = Worker::spawn(
        binary,
        &["job", "--config", &config, "--idle-exit", &idle],
        &env,
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

fn report(target: Target, runs: &[Run], events: usize, rounds: usize) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "## {}\n", target.title());
    let _ = writeln!(t, "{}\n", machine());
    let _ = writeln!(
        t,
        "{events} events of about 1 KiB per run, {rounds} round(s), medians; the Pub/Sub emulator and the target ({}) on this machine, one stream, concurrency 1,000, release build. Events/s includes start-up, excludes the idle-exit wait. Token calls are not counted as API calls.\n",
        match target {
            Target::Firestore => "Firestore emulator",
            Target::Salesforce => "Salesforce sandbox double",
        }
    );
    let _ = writeln!(
        t,
        "| batch linger | API calls per 1,000 events | events/s |"
    );
    let _ = writeln!(t, "|---|---|---|");
    for linger in target.lingers() {
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

/// Replaces this connector's section of docs/BENCHMARKS.md (or adds it).
fn write_benchmarks(title: &str, section: &str) -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let path = root.join("docs/BENCHMARKS.md");
    let path = path.canonicalize().unwrap_or(path);
    let old = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        "# Benchmarks\n\nNumbers from `cargo xtask bench`; rerun to refresh.\n\n".into()
    });
    let start = old.find(&format!("## {title}"));
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
