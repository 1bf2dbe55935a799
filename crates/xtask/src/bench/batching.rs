//! `cargo xtask bench firestore|salesforce|sap-odata|workspace`: target API calls per
//! 1,000 events and events per second through a batching connector, on the
//! Pub/Sub emulator with the Firestore emulator, the Salesforce sandbox double
//! or a real SAP CAP server, and Sheets appends on the Workspace double. A benchmark, not a test: it prints numbers and
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

use super::{Result, block_on, build_release, machine, median, run_job, write_benchmarks};
use gluefleet_testkit::TempDir;
use gluefleet_testkit::firestore::FirestoreEmulator;
use gluefleet_testkit::pubsub::{OutgoingMessage, PubsubEmulator, SubscriptionOptions};
use gluefleet_testkit::salesforce::{SalesforceConfig, SalesforceDouble};
use gluefleet_testkit::sap::SapCap;
use gluefleet_testkit::workspace::{WorkspaceConfig, WorkspaceDouble};
use serde_json::json;
use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

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
    /// gluefleet-workspace's Sheets appends on the Workspace double.
    Workspace,
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
            Target::Workspace => "gluefleet-workspace",
        }
    }
    fn title(self) -> &'static str {
        match self {
            Target::Firestore => "Firestore connector (`cargo xtask bench firestore`)",
            Target::Salesforce => "Salesforce connector (`cargo xtask bench salesforce`)",
            Target::SapOdata => "SAP OData connector (`cargo xtask bench sap-odata`)",
            Target::Workspace => {
                "Workspace connector, Sheets appends (`cargo xtask bench workspace`)"
            }
        }
    }
    fn variants(self) -> [Variant; 2] {
        match self {
            Target::Firestore => [Variant::Linger(5), Variant::Linger(250)],
            Target::Salesforce => [Variant::Linger(20), Variant::Linger(1000)],
            Target::SapOdata => [Variant::Odata("v4"), Variant::Odata("v2")],
            Target::Workspace => [Variant::Linger(50), Variant::Linger(1000)],
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
    Workspace,
}

/// A target server of one run only, stopped when the run ends.
enum Fresh {
    None,
    Salesforce(SalesforceDouble),
    Sap(SapCap),
    Workspace(WorkspaceDouble),
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
    block_on(run_all(target, events, rounds))
}

async fn run_all(target: Target, events: usize, rounds: usize) -> Result<()> {
    let binary = build_release(target.package(), target.package())?;
    eprintln!("• starting the Pub/Sub emulator and the target…");
    let pubsub = PubsubEmulator::start().await?;
    let sink = match target {
        Target::Firestore => Sink::Firestore(Box::new(FirestoreEmulator::start().await?)),
        Target::Salesforce => Sink::Salesforce,
        Target::SapOdata => Sink::SapOdata,
        Target::Workspace => Sink::Workspace,
    };
    let dir = TempDir::new("bench")?;
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
    drop(dir);
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
    dir: &TempDir,
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
                push_endpoint: None,
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
        Sink::Workspace => {
            let double = WorkspaceDouble::start(WorkspaceConfig::default()).await?;
            double.create_spreadsheet("bench", &["Orders"]);
            Fresh::Workspace(double)
        }
        Sink::Firestore(_) => Fresh::None,
    };
    let (text, mut env) = config_toml(sink, &fresh, n, variant)?;
    let config = dir.write(&format!("run-{n}.toml"), text)?;
    env.extend(pubsub.worker_env(&sub, &dead));
    env.push(("RUST_LOG", "warn".to_owned()));
    let idle = format!("{IDLE_EXIT_MS}ms");
    let s = &run_job(binary, &config, &idle, &env, "the job").await?;
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
        // The double's own count of the Sheets calls: key-column reads and
        // appends (token calls are not API calls).
        Fresh::Workspace(double) => {
            double.calls("sheets.spreadsheets.values.append")
                + double.calls("sheets.spreadsheets.values.get")
        }
        Fresh::Salesforce(_) | Fresh::None => worker_requests,
    };
    if let Fresh::Workspace(double) = &fresh {
        let rows = double.rows("bench", "Orders").len();
        if rows != events {
            return Err(format!("{rows} rows for {events} events").into());
        }
        let wrong = double.violations();
        if !wrong.is_empty() {
            return Err(format!("requests the Discovery documents refuse: {wrong:?}").into());
        }
    }
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
                Sink::Workspace => (
                    "order.created",
                    json!({"id": id, "customer": "Bench Customer", "total": i}),
                ),
                Sink::Firestore(_) | Sink::Salesforce => (
                    "account.upserted",
                    json!({"id": id, "note": filler, "n": i}),
                ),
            };
            Ok(OutgoingMessage::cloudevent(&id, "//bench", event_type, data))
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
        (Sink::Salesforce, Fresh::Salesforce(sf), _) => (
            format!(
                r#"{common}
{auth}
[target]
linger = "{linger}"

[[routes]]
type = "account.upserted"
action = {{ operation = "upsert", sobject = "Account", external_id_field = "External_Id__c", external_id = "{{data.id}}", fields = "{{Name: .data.id, Description: .data.note}}" }}
"#,
                auth = sf.jwt_auth_toml()
            ),
            vec![SalesforceDouble::private_key_env()],
        ),
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
        (Sink::Workspace, Fresh::Workspace(double), _) => (
            format!(
                r#"{common}
[auth]
kind = "google_delegated"
key = '''{key}'''
token_url = "{token}"
scopes = ["https://www.googleapis.com/auth/spreadsheets"]

[target]
api_root = "{root}"
linger = "{linger}"

[[routes]]
type = "order.created"
subject = "alice@example.com"
action = {{ operation = "sheets_append", spreadsheet = "bench", range = "Orders!A:C", row = "[.data.id, .data.customer, .data.total]", key_column = "A", value_input = "RAW" }}
"#,
                key = double.service_account_key_json(),
                token = double.token_url(),
                root = double.url(),
            ),
            Vec::new(),
        ),
        (Sink::Salesforce | Sink::SapOdata | Sink::Workspace, _, _) => {
            return Err("the target server of this run did not start".into());
        }
    })
}

/// `250ms`, `1s`: a duration as the configs spell it.
fn duration_text(ms: u64) -> String {
    if ms >= 1000 && ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
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
        Target::Workspace => {
            let _ = writeln!(
                t,
                "{events} `order.created` events per run, each one row of a Sheets table with a \
                 key column, {common} The Pub/Sub emulator and a fresh Workspace double per \
                 run on this machine, every request checked against Sheets' Discovery \
                 document. Requests are the double's count of Sheets calls: one key-column \
                 read (`values.get`) and one `values.append` per flush; token calls are not \
                 counted.\n"
            );
            ("batch linger", "Sheets requests per 1,000 events")
        }
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
