//! `cargo xtask run <connector>`: one connector, its example config and
//! events, against its local double or a real sandbox tenant, in one
//! command. It builds the binary, reads the env file (so secrets stay out
//! of the shell's history), starts the Pub/Sub emulator with the topic, the
//! subscription and the dead-letter topic when asked (otherwise the worker
//! reads the events from a file), runs `check`, publishes the events with
//! `gluefleet-publish`, runs the worker as a job until idle, prints what
//! happened to each event, and stops everything.
//!
//! The demo's machinery ([`Part`]) does the work, so what `run` shows is
//! what the demo shows.

use super::part::{Part, Run, Topics, run_worker};
use super::report::{DeadLetter, logged};
use super::{Result, Stage, WORKER_LOG_FILTER};
use gluefleet_testkit::TempDir;
use gluefleet_testkit::file_source;
use gluefleet_testkit::pubsub::OutgoingMessage;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// What `cargo xtask run` was asked.
#[derive(Debug, Clone)]
pub(crate) struct Args {
    /// `legacy-rest`, `salesforce`, ...
    pub(crate) connector: String,
    /// `KEY=VALUE` lines; default the connector's `examples/sandbox.env`,
    /// else its template `sandbox.env.example`.
    pub(crate) env: Option<PathBuf>,
    /// Through the Pub/Sub emulator instead of a file source.
    pub(crate) emulator: bool,
    /// The events (JSON Lines, one CloudEvent each); default the
    /// connector's `examples/events.jsonl`.
    pub(crate) events: Option<PathBuf>,
    /// The config; default the connector's `examples/<connector>.toml`.
    pub(crate) config: Option<PathBuf>,
}

const PART: Part = Part {
    number: 1,
    connector: "",
    topics: Topics {
        topic: "events",
        subscription: "events-gluefleet",
        dead_letter_topic: "events-dead-letter",
        inspect: "events-dead-letter-inspect",
    },
};

/// Runs it; the exit code says whether every event was settled.
pub(crate) fn main(args: Args) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("run: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        tokio::select! {
            r = run(args) => r,
            _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
        }
    });
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("\nrun failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `KEY=VALUE` lines: `#` comments, blank lines and an `export ` prefix
/// allowed, values optionally quoted (`"…\n…"` for a newline). An error
/// names the line.
pub(crate) fn read_env(path: &Path) -> Result<Vec<(String, String)>> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("--env {}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((k, v)) = line.split_once('=') else {
            return Err(format!("{}:{}: not KEY=VALUE", path.display(), i + 1).into());
        };
        let k = k.trim();
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(
                format!("{}:{}: {k:?} is not a variable name", path.display(), i + 1).into(),
            );
        }
        let v = v.trim();
        // Double quotes take `\n` for a newline (a PEM key on one line), as
        // dotenv files do; single quotes take everything as written.
        let v = if let Some(q) = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            q.replace("\\n", "\n")
        } else {
            v.strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .unwrap_or(v)
                .to_owned()
        };
        out.push((k.to_owned(), v));
    }
    Ok(out)
}

/// The local stand-in for the connector's system, started when the env
/// file does not point at a real one; sets the variables the example
/// config reads. Kept alive by the caller until the end.
enum Double {
    None,
    Http(gluefleet_testkit::http_target::HttpTarget),
    Salesforce(gluefleet_testkit::salesforce::SalesforceDouble),
    Firestore(gluefleet_testkit::firestore::FirestoreEmulator),
    Sap(gluefleet_testkit::sap::SapCap),
}

impl Double {
    /// What the double saw, for the last lines.
    fn describe(&self) -> Option<String> {
        match self {
            Double::None => None,
            Double::Http(t) => Some(format!(
                "the stand-in order system took {} requests",
                t.requests().len()
            )),
            Double::Firestore(f) => Some(format!(
                "the Firestore emulator (project {}) holds the documents; it stops now",
                f.project()
            )),
            Double::Sap(cap) => Some(format!(
                "the SAP CAP server ({}) stops now",
                cap.v4_service()
            )),
            Double::Salesforce(sf) => Some(format!(
                "the Salesforce double took {} API calls and {} sign-ins; it holds {} accounts",
                sf.api_calls(),
                sf.token_calls(),
                sf.record_count("Account")
            )),
        }
    }
}

async fn double(connector: &str, env: &mut Vec<(String, String)>) -> Result<Double> {
    let has = |env: &[(String, String)], k: &str| env.iter().any(|(n, _)| n == k);
    match connector {
        "legacy-rest" if !has(env, "ORDERS_BASE_URL") => {
            let target = super::legacy_rest::order_system_start().await?;
            let url = format!("{}{}", target.url(), super::legacy_rest::ORDER_SYSTEM_PATH);
            println!("• no ORDERS_BASE_URL: the local stand-in order system listens on {url}");
            env.push(("ORDERS_BASE_URL".into(), url));
            Ok(Double::Http(target))
        }
        "salesforce" if !has(env, "SALESFORCE_LOGIN_URL") => {
            let (sf, vars) = super::salesforce::double().await?;
            println!(
                "• no SALESFORCE_LOGIN_URL: the testkit's Salesforce double (its documented REST and OAuth contract) listens on {}",
                sf.url()
            );
            env.extend(vars);
            Ok(Double::Salesforce(sf))
        }
        "firestore" if !has(env, "FIRESTORE_PROJECT") => {
            println!("• no FIRESTORE_PROJECT: starting the Firestore emulator (about 10 s)…");
            let f = gluefleet_testkit::firestore::FirestoreEmulator::start().await?;
            env.push(("FIRESTORE_PROJECT".into(), f.project().to_owned()));
            env.push(("FIRESTORE_EMULATOR_HOST".into(), f.host()));
            Ok(Double::Firestore(f))
        }
        "sap-odata" if !has(env, "SAP_SERVICE_URL") => {
            println!(
                "• no SAP_SERVICE_URL: starting the SAP CAP server (tests/sandboxes/sap-cap; npm install the first time)…"
            );
            let cap = gluefleet_testkit::sap::SapCap::start().await?;
            env.push(("SAP_SERVICE_URL".into(), cap.v4_service()));
            Ok(Double::Sap(cap))
        }
        _ => Ok(Double::None),
    }
}

async fn run(args: Args) -> Result<bool> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let crate_dir = root.join("connectors").join(&args.connector);
    if !crate_dir.join("Cargo.toml").is_file() {
        return Err(format!(
            "no connector {:?} (connectors/{0}/Cargo.toml)",
            args.connector
        )
        .into());
    }
    let examples = crate_dir.join("examples");
    let config = args
        .config
        .clone()
        .unwrap_or_else(|| examples.join(format!("{}.toml", args.connector)));
    let events = args
        .events
        .clone()
        .unwrap_or_else(|| examples.join("events.jsonl"));
    let env_file = match &args.env {
        Some(p) => p.clone(),
        None if examples.join("sandbox.env").is_file() => examples.join("sandbox.env"),
        None => examples.join("sandbox.env.example"),
    };
    println!(
        "gluefleet run: gluefleet-{} against its sandbox\n",
        args.connector
    );
    let mut env = read_env(&env_file)?;
    let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
    println!(
        "• env from {}: {} (values not shown)",
        env_file.display(),
        if names.is_empty() {
            "nothing".to_owned()
        } else {
            names.join(", ")
        }
    );
    let part = Part {
        connector: Box::leak(args.connector.clone().into_boxed_str()),
        ..PART
    };
    println!(
        "• building gluefleet-{} (first time takes a few minutes)…",
        args.connector
    );
    let (binary, double) = tokio::join!(part.build(), double(&args.connector, &mut env));
    let (binary, double) = (binary?, double?);
    env.push(("RUST_LOG".into(), WORKER_LOG_FILTER.into()));

    let text = std::fs::read_to_string(&events)
        .map_err(|e| format!("--events {}: {e}", events.display()))?;
    let mut messages = Vec::new();
    let mut labels = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| format!("{}:{}: not JSON: {e}", events.display(), i + 1))?;
        let field = |k: &str| {
            v.get(k)
                .and_then(serde_json::Value::as_str)
                .unwrap_or("?")
                .to_owned()
        };
        labels.push(format!("{} {}", field("type"), field("id")));
        messages.push(OutgoingMessage::json(&v));
    }
    println!("• {} events from {}", messages.len(), events.display());

    let mut stage = Stage {
        tmp: TempDir::new("run")?,
        pubsub: None,
        publisher: None,
        no_emulator: !args.emulator,
    };
    let config_arg = config.display().to_string();
    let envs: Vec<(&str, String)> = env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let run = if args.emulator {
        let pubsub = part.pubsub(&mut stage).await?;
        println!(
            "  emulator on {} (project {}): {}",
            pubsub.host(),
            pubsub.project(),
            part.topics.describe()
        );
        let mut check_env =
            pubsub.worker_env(part.topics.subscription, part.topics.dead_letter_topic);
        check_env.extend(envs.iter().cloned());
        if !check(&binary, &["check", "--config", &config_arg], &check_env).await? {
            return Ok(false);
        }
        part.run_job(&mut stage, &pubsub, &binary, &config, &messages, &envs)
            .await?
    } else {
        let (jsonl, message_ids) = file_source::events_jsonl(&messages);
        let source = stage.tmp.write("events.jsonl", jsonl)?;
        let source_arg = format!("file:{}", source.display());
        if !check(
            &binary,
            &["check", "--config", &config_arg, "--source", &source_arg],
            &envs,
        )
        .await?
        {
            return Ok(false);
        }
        let dead = stage.tmp.path().join("dead-letters.jsonl");
        let dead_arg = dead.display().to_string();
        println!("• no --emulator: the worker reads the events from a file");
        let (worker_log, summary_line) = run_worker(
            &binary,
            &[
                "job",
                "--config",
                &config_arg,
                "--source",
                &source_arg,
                "--dead-letters",
                &dead_arg,
            ],
            &envs,
        )
        .await?;
        Run {
            message_ids,
            dead_letters: file_source::read_dead_letters(&dead)?
                .into_iter()
                .map(DeadLetter::from)
                .collect(),
            dead_letter_place: format!("read back from {}", dead.display()),
            worker_log,
            summary_line,
        }
    };
    let settled = print(&labels, &run);
    if let Some(d) = double.describe() {
        println!("  {d}");
    }
    Ok(settled)
}

/// Runs `check` and shows its lines; false when it failed.
async fn check(binary: &Path, args: &[&str], envs: &[(&str, String)]) -> Result<bool> {
    let name = binary
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    println!("• {name} {}", args.join(" "));
    let mut worker = gluefleet_testkit::bin::Worker::spawn(binary, args, envs).await?;
    let status = worker.wait(std::time::Duration::from_secs(60)).await;
    for line in worker.logs() {
        if line.starts_with("ok") || line.starts_with("FAIL") || line.starts_with("warn") {
            println!("    {line}");
        }
    }
    match status {
        Some(s) if s.success() => Ok(true),
        _ => {
            println!("\n✗ check failed: fix the config or the env file above, then run again");
            Ok(false)
        }
    }
}

/// The per-event table: what the worker did with each event.
pub(crate) fn print(labels: &[String], run: &Run) -> bool {
    let log = logged(&run.worker_log);
    let mut settled = true;
    println!("\n  #  event                                      outcome");
    for (i, (label, id)) in labels.iter().zip(&run.message_ids).enumerate() {
        let dead = run
            .dead_letters
            .iter()
            .find(|d| d.attr("gluefleet-original-message-id") == *id);
        let outcome = match (log.get(id).and_then(|l| l.acked.clone()), dead) {
            (_, Some(d)) => {
                // A vendor's error can run over lines (the Firestore
                // emulator's does): the table keeps the first.
                let error = d.attr("gluefleet-error");
                let mut lines = error.lines();
                let first = lines.next().unwrap_or_default().trim_end();
                let more = if lines.next().is_some() { " …" } else { "" };
                format!(
                    "dead-lettered ({}): {first}{more}",
                    d.attr("gluefleet-error-class")
                )
            }
            (Some(reason), None) => format!("acked: {reason}"),
            (None, None) => {
                settled = false;
                "✗ not settled".to_owned()
            }
        };
        println!("{:>3}  {label:<42} {outcome}", i + 1);
    }
    println!(
        "\n  dead letters: {} ({})",
        run.dead_letters.len(),
        run.dead_letter_place
    );
    if let Some(s) = &run.summary_line {
        println!("  worker summary: {s}");
    }
    if settled {
        println!("\n✔ every event settled");
    } else {
        println!(
            "\n✗ some events were not settled: the worker's log is above with GLUEFLEET_TEST_ECHO=1"
        );
    }
    settled
}
