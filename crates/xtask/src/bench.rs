//! `cargo xtask bench firestore|salesforce|sap-odata`: target API calls per
//! 1,000 events and events per second through a batching connector, on the
//! Pub/Sub emulator with the Firestore emulator, the Salesforce sandbox double
//! or a real SAP CAP server. A benchmark, not a test: it prints numbers and
//! writes them to docs/BENCHMARKS.md; it asserts nothing about speed.
//!
//! Each run: a fresh topic and subscription, N events published first, then
//! the release binary in `job` mode; the job's summary gives the requests it
//! sent (for SAP the CAP server's own count is used) and its elapsed time
//! (less the idle-exit wait). Each target has two kinds of run, the table's
//! rows: Firestore and Salesforce run with a short and a long batch linger,
//! because the emulator hands out at most 100 messages per 50 ms, so how many
//! events share a batch depends on how long the first one waits; SAP runs
//! OData V4 (JSON `$batch`) and V2 (multipart `$batch`) with the same linger.

use gluefleet_testkit::bin::Worker;
use gluefleet_testkit::firestore::FirestoreEmulator;
use gluefleet_testkit::pubsub::{OutgoingMessage, PubsubEmulator, SubscriptionOptions};
use gluefleet_testkit::salesforce::{SalesforceConfig, SalesforceDouble, TEST_PRIVATE_KEY_PEM};
use gluefleet_testkit::sap::SapCap;
use serde_json::{Value, json};
use std::error::Error;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

pub(crate) type Result<T, E = Box<dyn Error + Send + Sync>> = std::result::Result<T, E>;

const IDLE_EXIT_MS: u64 = 2000;
/// The SAP connector's batch linger in both of its runs.
const SAP_LINGER_MS: u64 = 1000;
/// `BusinessPartners.ID` is `String(10)` in the CAP sandbox.
const SAP_KEY_MAX: usize = 10;

/// Which connector is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// gluefleet-firestore on the Firestore emulator.
    Firestore,
    /// gluefleet-salesforce on the Salesforce sandbox double.
    Salesforce,
    /// gluefleet-sap-odata on the SAP CAP sandbox, V4 and V2.
    SapOdata,
}

/// What differs between a target's runs: one row of the table each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    /// A batch linger, in ms.
    Linger(u64),
    /// An OData version (`v4`, `v2`), with [`SAP_LINGER_MS`].
    Odata(&'static str),
}

impl Variant {
    fn linger_ms(self) -> u64 {
        match self {
            Variant::Linger(ms) => ms,
            Variant::Odata(_) => SAP_LINGER_MS,
        }
    }
    fn label(self) -> String {
        match self {
            Variant::Linger(ms) => format!("{ms} ms"),
            Variant::Odata(v) => format!("{} with $batch", v.to_uppercase()),
        }
    }
}

impl Target {
    fn package(self) -> &'static str {
        match self {
            Target::Firestore => "gluefleet-firestore",
            Target::Salesforce => "gluefleet-salesforce",
            Target::SapOdata => "gluefleet-sap-odata",
        }
    }
    fn title(self) -> &'static str {
        match self {
            Target::Firestore => "Firestore connector (`cargo xtask bench firestore`)",
            Target::Salesforce => "Salesforce connector (`cargo xtask bench salesforce`)",
            Target::SapOdata => "SAP OData connector (`cargo xtask bench sap-odata`)",
        }
    }
    fn variants(self) -> [Variant; 2] {
        match self {
            Target::Firestore => [Variant::Linger(5), Variant::Linger(250)],
            Target::Salesforce => [Variant::Linger(20), Variant::Linger(1000)],
            Target::SapOdata => [Variant::Odata("v4"), Variant::Odata("v2")],
        }
    }
}

/// Where the connector writes. The Salesforce double and the SAP CAP server
/// are started afresh for each run (see [`Fresh`]), so records of earlier
/// runs never slow their lookups.
enum Sink {
    Firestore(Box<FirestoreEmulator>),
    Salesforce,
    SapOdata,
}

/// A target server of one run only, stopped when the run ends.
enum Fresh {
    None,
    Salesforce(SalesforceDouble),
    Sap(SapCap),
}

/// One measured run.
#[derive(Debug)]
struct Run {
    variant: Variant,
    events: u64,
    /// As the target counted them (the SAP CAP server), else as the worker did.
    requests: u64,
    /// The worker's own count (`target_requests`), to compare.
    worker_requests: u64,
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

/// `cargo xtask bench core`: runs the core crate's criterion benchmarks and
/// writes their medians to docs/BENCHMARKS.md.
pub(crate) fn core() -> ExitCode {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    match Command::new(cargo)
        .args(["bench", "-p", "gluefleet-core", "--bench", "core_path"])
        .status()
    {
        Ok(s) if s.success() => {}
        Ok(s) => {
            eprintln!("bench: cargo bench failed ({s})");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("bench: cannot run cargo: {e}");
            return ExitCode::FAILURE;
        }
    }
    match core_report() {
        Ok(table) => {
            println!("{table}");
            match write_benchmarks(CORE_TITLE, &table) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("bench: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("bench: reading criterion's results: {e}");
            ExitCode::FAILURE
        }
    }
}

const CORE_TITLE: &str = "Core path micro-benchmarks (`cargo xtask bench core`)";

/// The medians criterion left in `target/criterion/<group>/<bench>/new/`.
fn core_report() -> Result<String> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("cannot find the target directory from the xtask binary")?
        .join("criterion");
    let mut rows = Vec::new();
    let mut groups: Vec<_> = std::fs::read_dir(&dir)?.flatten().collect();
    groups.sort_by_key(std::fs::DirEntry::file_name);
    for group in groups {
        let mut benches: Vec<_> = std::fs::read_dir(group.path())?.flatten().collect();
        benches.sort_by_key(std::fs::DirEntry::file_name);
        for bench in benches {
            let path = bench.path().join("new/estimates.json");
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let v: Value = serde_json::from_str(&text)?;
            let ns = v["median"]["point_estimate"]
                .as_f64()
                .ok_or_else(|| format!("no median in {}", path.display()))?;
            rows.push(format!(
                "| {}/{} | {} |",
                group.file_name().to_string_lossy(),
                bench.file_name().to_string_lossy(),
                if ns >= 1000.0 {
                    format!("{:.2} µs", ns / 1000.0)
                } else {
                    format!("{ns:.0} ns")
                }
            ));
        }
    }
    let mut t = String::new();
    let _ = writeln!(t, "## {CORE_TITLE}\n");
    let _ = writeln!(t, "{}\n", machine());
    let _ = writeln!(
        t,
        "Criterion medians per message, from `crates/core/benches/core_path.rs`: \
         decoding each accepted shape (about 1 KiB) and poison, a route lookup in a \
         table of 50 routes, and `Pipeline::process` to an outcome with a connector \
         that succeeds at once (in-memory idempotency store on, no rate limit).\n"
    );
    let _ = writeln!(t, "| benchmark | median |");
    let _ = writeln!(t, "|---|---|");
    for row in rows {
        let _ = writeln!(t, "{row}");
    }
    Ok(t)
}

/// Builds binary `bin` of `package` in release mode; its path.
pub(crate) fn build_release(package: &str, bin: &str) -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("• building {bin} in release mode…");
    let status = Command::new(cargo)
        .args(["build", "--release", "--quiet", "-p", package, "--bin", bin])
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
    Ok(target.join("release").join(bin))
}

async fn run_all(target: Target, events: usize, rounds: usize) -> Result<()> {
    let binary = build_release(target.package(), target.package())?;
    eprintln!("• starting the Pub/Sub emulator and the target…");
    let pubsub = PubsubEmulator::start().await?;
    let sink = match target {
        Target::Firestore => Sink::Firestore(Box::new(FirestoreEmulator::start().await?)),
        Target::Salesforce => Sink::Salesforce,
        Target::SapOdata => Sink::SapOdata,
    };
    let dir = std::env::temp_dir().join(format!("gluefleet-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut runs = Vec::new();
    let mut n = 0;
    for round in 0..rounds {
        for variant in target.variants() {
            n += 1;
            let run = one_run(&binary, &pubsub, &sink, &dir, n, events, variant).await?;
            eprintln!(
                "  round {} {}: {} requests for {} events (the worker counted {}), {:.0} events/s",
                round + 1,
                variant.label(),
                run.requests,
                run.events,
                run.worker_requests,
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
    variant: Variant,
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
    pubsub.publish(&topic, &messages(sink, n, events)?).await?;
    let fresh = match sink {
        Sink::Salesforce => Fresh::Salesforce(
            SalesforceDouble::start(SalesforceConfig {
                daily_limit: 10_000_000,
                ..SalesforceConfig::default()
            })
            .await?,
        ),
        Sink::SapOdata => Fresh::Sap(SapCap::start().await?),
        Sink::Firestore(_) => Fresh::None,
    };
    let config = dir.join(format!("run-{n}.toml"));
    let (text, mut env) = config_toml(sink, &fresh, n, variant)?;
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
    let worker_requests = s["target_requests"].as_u64().unwrap_or(0);
    let requests = match &fresh {
        // Every request under /odata/ the server got: the CSRF token fetch
        // and any refused one included.
        Fresh::Sap(cap) => cap.stats().await?["requests"]
            .as_u64()
            .ok_or("the SAP CAP server's stats have no request count")?,
        Fresh::Salesforce(_) | Fresh::None => worker_requests,
    };
    Ok(Run {
        variant,
        events: acked,
        requests,
        worker_requests,
        seconds: elapsed_ms as f64 / 1000.0,
    })
}

/// The events of run `n`, published before the worker starts.
fn messages(sink: &Sink, n: usize, events: usize) -> Result<Vec<OutgoingMessage>> {
    let filler = "x".repeat(900);
    (0..events)
        .map(|i| {
            let id = format!("r{n}-{i}");
            let (event_type, data) = match sink {
                Sink::SapOdata => {
                    let key = format!("R{n}{i:05}");
                    if key.len() > SAP_KEY_MAX {
                        return Err(format!(
                            "partner key {key} is longer than {SAP_KEY_MAX} characters: \
                             use fewer events or rounds"
                        )
                        .into());
                    }
                    (
                        "partner.created",
                        json!({"id": key, "name": format!("Bench Partner {n}-{i}"), "city": "Walldorf"}),
                    )
                }
                Sink::Firestore(_) | Sink::Salesforce => (
                    "account.upserted",
                    json!({"id": id, "note": filler, "n": i}),
                ),
            };
            Ok(OutgoingMessage::json(&json!({"specversion": "1.0", "id": id,
                "source": "//bench", "type": event_type, "data": data})))
        })
        .collect()
}

/// The worker's config for run `n` and the environment it needs.
fn config_toml(
    sink: &Sink,
    fresh: &Fresh,
    n: usize,
    variant: Variant,
) -> Result<(String, Vec<(&'static str, String)>)> {
    let common = "[pubsub]\nconcurrency = 1000\nmax_outstanding_messages = 2000\n";
    let linger = duration_text(variant.linger_ms());
    Ok(match (sink, fresh, variant) {
        (Sink::Firestore(fs), _, _) => (
            format!(
                r#"{common}
[target]
project = "{project}"
linger = "{linger}"

[[routes]]
type = "account.upserted"
action = {{ operation = "set", document = "bench{n}/{{data.id}}" }}
"#,
                project = fs.project()
            ),
            vec![("FIRESTORE_EMULATOR_HOST", fs.host())],
        ),
        (Sink::Salesforce, Fresh::Salesforce(sf), _) => {
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
linger = "{linger}"

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
        (Sink::SapOdata, Fresh::Sap(cap), Variant::Odata(version)) => {
            let service_url = match version {
                "v2" => cap.v2_service(),
                _ => cap.v4_service(),
            };
            (
                format!(
                    r#"{common}
[target]
service_url = "{service_url}"
version = "{version}"
allow_insecure_http = true
linger = "{linger}"
max_batch = 100

[[routes]]
type = "partner.created"
action = {{ operation = "create", entity_set = "BusinessPartners", key = {{ ID = "{{data.id}}" }}, fields = "{{name: .data.name, city: .data.city}}" }}
"#
                ),
                Vec::new(),
            )
        }
        (Sink::Salesforce | Sink::SapOdata, _, _) => {
            return Err("the target server of this run did not start".into());
        }
    })
}

/// `250ms`, `1s`: a duration as the configs spell it.
pub(crate) fn duration_text(ms: u64) -> String {
    if ms >= 1000 && ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn report(target: Target, runs: &[Run], events: usize, rounds: usize) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "## {}\n", target.title());
    let _ = writeln!(t, "{}\n", machine());
    let common = format!(
        "{rounds} round(s), medians; one stream, concurrency 1,000, release build. Events/s \
         includes start-up, excludes the idle-exit wait."
    );
    let (row, calls) = match target {
        Target::Firestore | Target::Salesforce => {
            let _ = writeln!(
                t,
                "{events} events of about 1 KiB per run, {common} The Pub/Sub emulator and the \
                 target ({}) on this machine. Token calls are not counted as API calls.\n",
                if target == Target::Firestore {
                    "Firestore emulator"
                } else {
                    "Salesforce sandbox double"
                }
            );
            ("batch linger", "API calls per 1,000 events")
        }
        Target::SapOdata => {
            let _ = writeln!(
                t,
                "{events} `partner.created` events (id, name, city: about 150 bytes) per run, \
                 {common} The Pub/Sub emulator and a fresh SAP CAP server per run (the sandbox \
                 in tests/sandboxes/sap-cap: cds 9, SQLite in memory) on this machine; each \
                 event creates a `BusinessPartners` entity, `linger = \"{}\"`, \
                 `max_batch = 100`. Requests are the CAP server's count (`/__admin/stats` \
                 `requests`: every request under `/odata/`, the CSRF token fetch included).\n",
                duration_text(SAP_LINGER_MS)
            );
            ("OData version", "OData requests per 1,000 events")
        }
    };
    let _ = writeln!(t, "| {row} | {calls} | events/s |");
    let _ = writeln!(t, "|---|---|---|");
    for variant in target.variants() {
        let mine: Vec<&Run> = runs.iter().filter(|r| r.variant == variant).collect();
        let per_k = median(
            mine.iter()
                .map(|r| r.requests as f64 * 1000.0 / r.events as f64)
                .collect(),
        );
        let eps = median(mine.iter().map(|r| r.events as f64 / r.seconds).collect());
        let _ = writeln!(t, "| {} | {per_k:.1} | {eps:.0} |", variant.label());
    }
    if target == Target::SapOdata {
        let differ: Vec<String> = runs
            .iter()
            .filter(|r| r.requests != r.worker_requests)
            .map(|r| {
                format!(
                    "{}: server {}, worker {}",
                    r.variant.label(),
                    r.requests,
                    r.worker_requests
                )
            })
            .collect();
        if differ.is_empty() {
            let _ = writeln!(
                t,
                "\nThe worker's own count (`target_requests` in its summary) agreed in every run."
            );
        } else {
            let _ = writeln!(
                t,
                "\nThe worker's own count (`target_requests`) differed: {}.",
                differ.join("; ")
            );
        }
    }
    t
}

pub(crate) fn machine() -> String {
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
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map(|kib| format!(", {:.0} GiB RAM", kib as f64 / 1024.0 / 1024.0))
        .unwrap_or_default();
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| format!(", {}", v.trim_matches('"')))
        })
        .unwrap_or_default();
    format!("Machine: {cores} cores, {cpu}{memory}{os}.")
}

/// Replaces this connector's section of docs/BENCHMARKS.md (or adds it).
pub(crate) fn write_benchmarks(title: &str, section: &str) -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let path = root.join("docs/BENCHMARKS.md");
    let path = path.canonicalize().unwrap_or(path);
    let old = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        "# Benchmarks\n\nNumbers from `cargo xtask bench`; rerun to refresh.\n\n".into()
    });
    let start = old.find(&format!("## {title}"));
    // Sections are a blank line apart.
    let new = match start {
        Some(i) => {
            let end = old[i + 2..]
                .find("\n## ")
                .map(|j| i + 2 + j + 1)
                .unwrap_or(old.len());
            let rest = &old[end..];
            let gap = if rest.is_empty() { "" } else { "\n" };
            format!("{}{}\n{gap}{rest}", &old[..i], section.trim_end())
        }
        None => format!("{}\n\n{}\n", old.trim_end(), section.trim_end()),
    };
    std::fs::write(&path, new)?;
    eprintln!("• wrote {}", path.display());
    Ok(())
}
