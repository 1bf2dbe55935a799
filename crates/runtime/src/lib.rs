//! The worker host every gluefleet connector binary runs in.
//!
//! A connector describes itself with [`Spec`] and its `main.rs` is one line:
//! `gluefleet_runtime::main::<MySpec>()`. The runtime gives it the CLI
//!
//! ```text
//! gluefleet-<connector> [run|job|check] [--config PATH] [--source file:PATH|-]
//! ```
//!
//! and does config loading, logging, sources, dead letters, health probes,
//! job summaries and graceful shutdown.

/// mimalloc instead of the system allocator: a worker allocates and frees
/// many small buffers per message (the pulled message, the decoded event,
/// the HTTP request), and glibc's malloc spent about a sixth of the worker's
/// CPU doing it (`cargo xtask bench`, perf). Set here so that every
/// connector binary gets it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod auth;
pub mod cases;
pub mod config;
pub mod dead_letter;
pub mod health;
pub mod ingest;
pub mod logging;
pub mod metrics;
pub mod publish;
pub mod pubsub;
pub mod push;
pub mod redrive;
pub mod results;
pub mod source;
pub mod spans;
pub mod usage;
pub mod worker;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use config::{Config, ConfigError};
use dead_letter::{DeadLetterSink, Origin};
use gluefleet_core::auth::TokenProvider;
use gluefleet_core::idempotency::{IdempotencyStore, MemoryStore};
use gluefleet_core::rate_limit::RateLimits;
use gluefleet_core::route::RouteTable;
use gluefleet_core::{Connector, Pipeline};
use serde::de::DeserializeOwned;
use source::{Acker, Delivery};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use worker::Engine;

/// Exit code for a bad config or bad arguments (EX_USAGE).
pub const EXIT_CONFIG: u8 = 64;

/// Exit code when the connector stopped being able to deliver while running
/// (its batcher died: EX_SOFTWARE). Cloud Run restarts the instance; the
/// messages it held were nacked.
pub const EXIT_BROKEN: u8 = 70;

/// What a connector tells the runtime about itself.
pub trait Spec: 'static {
    /// The connector's name (`legacy-rest`, `firestore`, ...), said once,
    /// by its [`Connector::NAME`].
    fn name() -> &'static str {
        <Self::Connector as Connector>::NAME
    }

    /// The `[target]` table (its JSON Schema is part of the config's).
    type Target: DeserializeOwned + std::fmt::Debug + schemars::JsonSchema;
    /// A route's `action` table, as written.
    type RawAction: DeserializeOwned + std::fmt::Debug + schemars::JsonSchema;
    /// The connector.
    type Connector: Connector;

    /// Builds the connector from its config.
    fn build(target: Self::Target, http: reqwest::Client) -> Result<Self::Connector, ConfigError>;

    /// Fills in what the target's conventions leave out of one of the
    /// core's `[auth]` kinds, before the provider is built (Salesforce: the
    /// JWT audience of its login hosts). Default: as written.
    fn auth_defaults(auth: &mut gluefleet_core::auth::AuthConfig) {
        let _ = auth;
    }

    /// Checks one route's action and turns it into the connector's form.
    fn compile_action(
        connector: &Self::Connector,
        raw: Self::RawAction,
    ) -> Result<<Self::Connector as Connector>::Action, ConfigError>;
}

/// The command line shared by every connector.
#[derive(Debug, Parser)]
#[command(
    version,
    about = "A gluefleet connector: pulls events from Pub/Sub and applies them to one external system."
)]
pub struct Cli {
    /// What to do (default: run).
    #[command(subcommand)]
    pub mode: Option<Mode>,
    /// The TOML config file.
    #[arg(long, env = "GLUEFLEET_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Read events from `file:PATH` (JSONL) or `-` (stdin) instead of Pub/Sub.
    #[arg(long, global = true)]
    pub source: Option<String>,
    /// With a file source: write dead letters to this JSONL file (default stderr).
    #[arg(long, global = true)]
    pub dead_letters: Option<PathBuf>,
    /// With a file source: write the result events of routes with
    /// `results` to this JSONL file (default stderr).
    #[arg(long, global = true)]
    pub results: Option<PathBuf>,
    /// `job`: exit once no message arrived for this long.
    #[arg(long, default_value = "10s", global = true)]
    pub idle_exit: humantime::Duration,
    /// `job`: exit after this long at most.
    #[arg(long, global = true)]
    pub max_duration: Option<humantime::Duration>,
    /// On SIGTERM: how long in-flight work may take to finish (inside Cloud Run's 10 s).
    #[arg(long, default_value = "8s", global = true)]
    pub drain_timeout: humantime::Duration,
    /// Threads that run the worker. 1 (the default) runs everything on one
    /// thread: a Cloud Run instance's single vCPU is used with no
    /// cross-thread wake-ups, which costs a multi-threaded runtime several
    /// times the CPU per message. Raise it on instances with more vCPUs
    /// when one core is not enough (`cargo xtask bench` shows the cost).
    #[arg(long, env = "GLUEFLEET_THREADS", default_value_t = 1, global = true, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,
}

/// The modes.
#[derive(Clone, Debug, PartialEq, Eq, Subcommand)]
pub enum Mode {
    /// Pull and deliver until SIGTERM; serves /healthz and /readyz on $PORT (a Cloud Run service).
    Run,
    /// Pull and deliver until the subscription is idle, print a summary, exit 0 (a Cloud Run job).
    Job,
    /// Validate the config, reach the target, obtain a credential; exit 0 or 1.
    Check,
    /// Take Pub/Sub push deliveries and CloudEvents over HTTP on $PORT (a
    /// Cloud Run service that scales to zero); /healthz and /readyz too.
    Serve,
    /// Validate the config with every check that needs no network; exit 0 or 64.
    Lint,
    /// Print the JSON Schema of this connector's config, for editors
    /// (docs/schemas/ holds each connector's).
    Schema,
    /// Run the cases of a file through the config with no network: the
    /// requests each event makes and its outcome, against what they expect.
    Test(cases::TestArgs),
    /// Move dead letters back onto their source topic (or --to), acking each
    /// only once its republish is confirmed; prints what moved.
    Redrive(redrive::RedriveArgs),
}

/// What a binary does when its command line does not parse: print clap's
/// message; `--help` and `--version` succeed, bad arguments are usage errors.
pub(crate) fn command_line_exit(e: &clap::Error) -> ExitCode {
    let _ = e.print();
    if e.use_stderr() {
        ExitCode::from(EXIT_CONFIG)
    } else {
        ExitCode::SUCCESS
    }
}

/// Runs the connector `S` with the process's arguments.
pub fn main<S: Spec>() -> ExitCode {
    let name = format!("gluefleet-{}", S::name());
    let parsed = Cli::command()
        .name(name.clone())
        .bin_name(name)
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => return command_line_exit(&e),
    };
    let mut builder = if cli.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(usize::from(cli.threads));
        b
    };
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!(
                "gluefleet-{}: cannot start the async runtime: {e}",
                S::name()
            );
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run_cli::<S>(cli))
}

/// Everything built from a config, ready to run.
struct Built<S: Spec> {
    pubsub: config::PubsubSettings,
    server: config::ServerSettings,
    push: push::PushSettings,
    pipeline: Arc<Pipeline<S::Connector>>,
    telemetry: worker::Telemetry,
}

/// The idempotency store the config asks for.
fn idempotency_store(
    connector: &str,
    settings: &gluefleet_core::pipeline::IdempotencySettings,
    pubsub: &config::PubsubSettings,
    http: reqwest::Client,
) -> Result<Arc<dyn IdempotencyStore>, ConfigError> {
    use gluefleet_core::pipeline::StoreKind;
    use gluefleet_google::FirestoreStore;
    use gluefleet_google::firestore::Firestore;
    match settings.store {
        // With idempotency off the pipeline ignores the store: build nothing remote.
        _ if !settings.enabled => Ok(Arc::new(MemoryStore::new())),
        StoreKind::Memory => Ok(Arc::new(MemoryStore::with_max_keys(settings.max_keys))),
        StoreKind::Firestore => {
            let project = settings.project.as_ref().or(pubsub.project.as_ref()).ok_or_else(|| {
                ConfigError::new("delivery.idempotency.project is not set (nor pubsub.project / GOOGLE_CLOUD_PROJECT)")
            })?;
            let db = Firestore::connect(http, project, &settings.database, &env_var)
                .map_err(|e| ConfigError::new(format!("delivery.idempotency: {e}")))?;
            let collection = settings
                .collection
                .clone()
                .unwrap_or_else(|| format!("gluefleet-idempotency-{connector}"));
            let store = FirestoreStore::new(db, collection)
                .map_err(|e| ConfigError::new(format!("delivery.idempotency: {e}")))?;
            Ok(Arc::new(store))
        }
    }
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The environment `lint` reads the config with: a `${NAME}` reference to
/// a variable this shell lacks (a secret that only exists where the worker
/// is deployed) gets a stand-in, and is named, so the config can be checked
/// in CI without its secrets.
#[derive(Default)]
struct LintEnv {
    /// Values that win over the process's (a cases file's `[env]`).
    given: std::collections::BTreeMap<String, String>,
    missing: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

impl LintEnv {
    /// Valid wherever a string, a URL or a header value is: what most
    /// `${NAME}` references hold.
    const STAND_IN: &'static str = "https://stand-in.invalid";

    fn get(&self, name: &str) -> Option<String> {
        if let Some(v) = self.given.get(name).cloned().or_else(|| env_var(name)) {
            return Some(v);
        }
        if config::ENV_SETTINGS.contains(&name) {
            return None;
        }
        self.missing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(name.to_owned());
        Some(Self::STAND_IN.to_owned())
    }
}

fn build<S: Spec>(path: Option<&PathBuf>) -> Result<Built<S>, ConfigError> {
    build_with::<S>(path, &env_var, Reach::Network)
}

/// What a built worker may reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reach<'a> {
    /// Everything the config names: a worker.
    Network,
    /// Nothing: `lint` and `test`. Fetched credentials are stand-ins
    /// (naming `endpoint` as their instance, as a Salesforce token names
    /// its `instance_url`), the idempotency store is in memory, telemetry
    /// is off.
    Offline { endpoint: Option<&'a str> },
}

fn build_with<S: Spec>(
    path: Option<&PathBuf>,
    env: &dyn Fn(&str) -> Option<String>,
    reach: Reach<'_>,
) -> Result<Built<S>, ConfigError> {
    let path = path
        .ok_or_else(|| ConfigError::new("no config: pass --config PATH or set GLUEFLEET_CONFIG"))?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(format!("reading config {}: {e}", path.display())))?;
    let config: Config<S::Target, S::RawAction> = Config::parse(&text, env)?;
    let Config {
        pubsub,
        server,
        push,
        telemetry,
        delivery,
        rate_limits,
        auth,
        target,
        routes,
    } = config;
    let http = gluefleet_core::http::client()?;
    let connector = S::build(target, http.clone()).map_err(|e| e.context("target"))?;
    let routes = RouteTable::build(routes, &delivery.retry, |raw| {
        S::compile_action(&connector, raw)
    })?;
    let limits = RateLimits::new(&rate_limits)?;
    let auth: Option<Arc<dyn TokenProvider>> = match auth {
        // A fixed credential is sent as configured, so a case can expect
        // its header; one fetched from a token endpoint is stood in for.
        Some(
            auth::AuthSettings::Core(
                gluefleet_core::auth::AuthConfig::Oauth2ClientCredentials(_)
                | gluefleet_core::auth::AuthConfig::JwtBearer(_),
            )
            | auth::AuthSettings::GoogleAdc(_)
            | auth::AuthSettings::GoogleDelegated(_),
        ) if reach != Reach::Network => {
            let endpoint = match reach {
                Reach::Offline { endpoint } => endpoint.map(str::to_owned),
                Reach::Network => None,
            };
            Some(Arc::new(cases::OfflineAuth { endpoint }))
        }
        Some(mut a) => {
            if let auth::AuthSettings::Core(c) = &mut a {
                S::auth_defaults(c);
            }
            Some(
                a.provider(http.clone(), &env_var)
                    .map_err(|e| ConfigError::new(format!("auth: {e}")))?,
            )
        }
        None => None,
    };
    let store: Arc<dyn IdempotencyStore> = match reach {
        Reach::Offline { .. } => Arc::new(MemoryStore::new()),
        Reach::Network => {
            idempotency_store(S::name(), &delivery.idempotency, &pubsub, http.clone())?
        }
    };
    let mut pipeline = Pipeline::new(connector, routes, Some(store), limits, auth, delivery)?;
    let metrics = (telemetry.metrics && reach == Reach::Network)
        .then(|| Arc::new(metrics::Metrics::new(S::name())));
    if let Some(m) = &metrics {
        pipeline = pipeline.with_observer(m.clone());
    }
    let pipeline = Arc::new(pipeline);
    if let Some(m) = &metrics {
        m.watch(pipeline.clone());
    }
    let spans = match reach {
        Reach::Offline { .. } => None,
        Reach::Network => {
            spans::Spans::from_settings(S::name(), telemetry.otlp_endpoint.as_deref(), &env_var)?
                .map(Arc::new)
        }
    };
    Ok(Built {
        pubsub,
        server,
        push,
        pipeline,
        telemetry: worker::Telemetry {
            metrics,
            settled_log: telemetry.settled_log,
            spans,
        },
    })
}

/// Runs the connector `S` with parsed arguments (what [`main`] does once the
/// async runtime is up).
pub async fn run_cli<S: Spec>(cli: Cli) -> ExitCode {
    let mode = cli.mode.clone().unwrap_or(Mode::Run);
    match &mode {
        Mode::Schema => return schema::<S>(),
        Mode::Lint => return lint::<S>(cli.config.as_ref()),
        Mode::Test(args) => return cases::run::<S>(cli.config.as_ref(), args).await,
        _ => {}
    }
    let built = match build::<S>(cli.config.as_ref()) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("gluefleet-{}: bad config: {e}", S::name());
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    logging::init(S::name(), built.pubsub.project.clone());
    match mode {
        Mode::Schema => schema::<S>(),
        Mode::Lint => lint::<S>(cli.config.as_ref()),
        Mode::Test(args) => cases::run::<S>(cli.config.as_ref(), &args).await,
        Mode::Redrive(args) => redrive_command(S::name(), &built.pubsub, &args).await,
        Mode::Check => check::<S>(&built, cli.source.is_some()).await,
        Mode::Serve => match serve::<S>(built, &cli).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("gluefleet-{}: {e}", S::name());
                ExitCode::from(EXIT_CONFIG)
            }
        },
        Mode::Run | Mode::Job => match deliver::<S>(built, &cli, mode).await {
            Ok(None) => ExitCode::SUCCESS,
            Ok(Some(reason)) => {
                eprintln!(
                    "gluefleet-{}: the connector cannot deliver any more: {reason}",
                    S::name()
                );
                ExitCode::from(EXIT_BROKEN)
            }
            Err(e) => {
                tracing::error!(error = %e, "Worker stopped.");
                eprintln!("gluefleet-{}: {}", S::name(), e.message());
                ExitCode::from(EXIT_CONFIG)
            }
        },
    }
}

/// `lint`: the config was read and built (every route compiled, every
/// template and mapping parsed, every bound checked) without touching the
/// network; says what it holds.
fn lint<S: Spec>(path: Option<&PathBuf>) -> ExitCode {
    let env = LintEnv::default();
    let built = match build_with::<S>(
        path,
        &|name| env.get(name),
        Reach::Offline { endpoint: None },
    ) {
        Ok(b) => b,
        Err(e) => {
            println!("FAIL config: {}", unprefixed(&e));
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let routes: Vec<&str> = built
        .pipeline
        .routes()
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    println!(
        "ok   config: {} route(s): {}",
        routes.len(),
        routes.join(", ")
    );
    let missing = env
        .missing
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for name in missing {
        println!("warn ${{{name}}} is not set here: checked with a stand-in value");
    }
    ExitCode::SUCCESS
}

/// The JSON Schema of `S`'s config file (TOML read as JSON): what an editor
/// checks and completes as it is written. Defaults and meanings come from
/// the doc comments of the settings.
pub fn config_schema<S: Spec>() -> serde_json::Value {
    let mut schema = schemars::schema_for!(Config<S::Target, S::RawAction>);
    schema.insert(
        "title".into(),
        format!("gluefleet-{} config", S::name()).into(),
    );
    schema.to_value()
}

/// `schema`: the config's JSON Schema on stdout.
fn schema<S: Spec>() -> ExitCode {
    match serde_json::to_string_pretty(&config_schema::<S>()) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gluefleet-{}: the schema cannot be written: {e}", S::name());
            ExitCode::FAILURE
        }
    }
}

/// A config error without the `config: ` some start with, for a line that
/// says `config:` itself.
pub(crate) fn unprefixed(e: &ConfigError) -> &str {
    e.message().strip_prefix("config: ").unwrap_or(e.message())
}

/// `redrive`: prints the table and a summary line; exit 0 when every
/// selected dead letter moved, 1 when some republish failed, 64 when the
/// arguments cannot work.
async fn redrive_command(
    connector: &str,
    pubsub: &config::PubsubSettings,
    args: &redrive::RedriveArgs,
) -> ExitCode {
    use std::io::Write as _;
    println!("{}", redrive::heading());
    let mut each = |row: &redrive::Row| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", row.line());
        let _ = out.flush();
    };
    let report = match redrive::run(pubsub, args, &mut each).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("gluefleet-{connector} redrive: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    println!(
        "{}",
        serde_json::json!({"redrive": {
            "from": args.from,
            "to": args.to,
            "dry_run": args.dry_run,
            "scanned": report.rows.len(),
            "moved": report.moved(),
            "left": report.left(),
            "failed": report.failed(),
        }})
    );
    if report.failed() > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

async fn check<S: Spec>(built: &Built<S>, local: bool) -> ExitCode {
    let mut ok = true;
    let mut line = |good: bool, what: &str| {
        ok &= good;
        println!("{} {what}", if good { "ok  " } else { "FAIL" });
    };
    // Worth fixing, not a reason to refuse the deploy.
    let warn = |what: &str| println!("warn {what}");
    line(
        true,
        &format!("config: {} route(s)", built.pipeline.routes().len()),
    );
    let subjects = built.pipeline.connector().check_subjects();
    if subjects.is_empty() {
        let credential = match built.pipeline.auth() {
            Some(auth) => match auth.credential().await {
                Ok(c) => {
                    line(
                        true,
                        &format!("credential: obtained ({} header)", c.header_name()),
                    );
                    Some(c)
                }
                Err(e) => {
                    line(false, &format!("credential: {e}"));
                    None
                }
            },
            None => {
                line(true, "credential: none configured");
                None
            }
        };
        match built.pipeline.connector().check(credential.as_ref()).await {
            Ok(what) => line(true, &format!("target: {what}")),
            Err(e) => line(false, &format!("target: {e}")),
        }
    }
    // A connector acting per user signs in as each user it names and reads
    // something as that user: a delegation missing for one of them shows
    // here, not on the first event.
    for subject in &subjects {
        let Some(auth) = built.pipeline.auth().filter(|a| a.acts_as_subjects()) else {
            line(
                false,
                &format!("credential as {subject}: [auth] cannot act as another user"),
            );
            continue;
        };
        match auth.credential_for(subject).await {
            Ok(c) => {
                line(true, &format!("credential as {subject}: obtained"));
                match built.pipeline.connector().check(Some(&c)).await {
                    Ok(what) => line(true, &format!("target as {subject}: {what}")),
                    Err(e) => line(false, &format!("target as {subject}: {e}")),
                }
            }
            Err(e) => line(false, &format!("credential as {subject}: {e}")),
        }
    }
    if !local {
        let p = &built.pubsub;
        let conn = pubsub::Connection::new(p);
        match p.subscription_path() {
            Ok(s) => match conn.check_subscription(&s).await {
                Ok(facts) => {
                    line(true, &facts.describe());
                    let configured = built.pipeline.settings().max_delivery_attempts;
                    if let Some(w) = facts.attempts_mismatch(configured) {
                        warn(&w);
                    }
                    if let Some(w) = facts.answer_too_late(built.push.answer_within) {
                        warn(&w);
                    }
                }
                Err(e) => line(false, &e),
            },
            Err(e) => line(false, e.message()),
        }
        match p.dead_letter_topic_path() {
            Ok(t) => match conn.check_topic("dead-letter topic", &t).await {
                Ok(what) => line(true, &what),
                Err(e) => line(false, &e),
            },
            Err(e) => line(false, e.message()),
        }
        let mut seen = std::collections::BTreeSet::new();
        for route in built.pipeline.routes().iter() {
            let Some(topic) = route.results.as_ref().filter(|t| seen.insert(t.as_str())) else {
                continue;
            };
            match p.topic_path(topic, &format!("routes[{}].results", route.name)) {
                Ok(t) => match conn.check_topic("results topic", &t).await {
                    Ok(what) => line(true, &format!("results of route {}: {what}", route.name)),
                    Err(e) => line(false, &format!("results of route {}: {e}", route.name)),
                },
                Err(e) => line(false, e.message()),
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Delivers until stopped. `Some(reason)` when the connector broke (its
/// batcher died) and the worker stopped because of it.
async fn deliver<S: Spec>(
    built: Built<S>,
    cli: &Cli,
    mode: Mode,
) -> Result<Option<String>, ConfigError> {
    let Built {
        pubsub: p,
        server,
        pipeline,
        telemetry,
        ..
    } = built;
    let drain = Duration::from(cli.drain_timeout);
    let readiness = Arc::new(health::Readiness::default());
    readiness.stream_ok.store(true, Ordering::Relaxed);
    if mode == Mode::Run {
        let r = readiness.clone();
        let port = server.port;
        let metrics = telemetry.metrics.clone();
        tokio::spawn(async move {
            if let Err(e) = health::serve(port, r, metrics).await {
                tracing::error!(error = %e, "Health server stopped.");
            }
        });
    }
    let started = tokio::time::Instant::now();
    if let Some(source) = &cli.source {
        let path = source.strip_prefix("file:").unwrap_or(source);
        let sink = match &cli.dead_letters {
            Some(f) => DeadLetterSink::File(std::sync::Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(f)
                    .map_err(|e| {
                        ConfigError::new(format!("--dead-letters {}: {e}", f.display()))
                    })?,
            )),
            None => DeadLetterSink::Stderr,
        };
        let results = if pipeline.routes().iter().any(|r| r.results.is_some()) {
            results::ResultSink::Lines(match &cli.results {
                Some(f) => Some(std::sync::Mutex::new(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(f)
                        .map_err(|e| ConfigError::new(format!("--results {}: {e}", f.display())))?,
                )),
                None => None,
            })
        } else {
            results::ResultSink::None
        };
        let origin = Origin {
            connector: S::name().into(),
            subscription: format!("file:{path}"),
        };
        let engine = Engine::new(
            pipeline,
            sink,
            results,
            origin,
            p.concurrency,
            p.max_nack_hold,
            telemetry,
        );
        readiness.checked.store(true, Ordering::Relaxed);
        let text = if path == "-" {
            let mut s = String::new();
            tokio::io::AsyncReadExt::read_to_string(&mut tokio::io::stdin(), &mut s)
                .await
                .map_err(|e| ConfigError::new(format!("reading stdin: {e}")))?;
            s
        } else {
            std::fs::read_to_string(path)
                .map_err(|e| ConfigError::new(format!("--source {source}: {e}")))?
        };
        let broken = run_file(&engine, &text, cli, drain).await;
        print_summary(&engine, started);
        return Ok(broken);
    }

    let subscription = p.subscription_path()?;
    let dl_topic = p.dead_letter_topic_path()?;
    let conn = pubsub::Connection::new(&p);
    let client = conn.subscriber().await.map_err(ConfigError::from)?;
    let publisher = conn.publisher(&dl_topic).await.map_err(ConfigError::from)?;
    let results = results::ResultSink::pubsub(&pipeline, &p, &conn).await?;
    let origin = Origin {
        connector: S::name().into(),
        subscription: subscription.clone(),
    };
    let engine = Engine::new(
        pipeline.clone(),
        DeadLetterSink::Pubsub(publisher),
        results,
        origin,
        p.concurrency,
        p.max_nack_hold,
        telemetry,
    );
    tracing::info!(subscription = %subscription, dead_letter_topic = %dl_topic, streams = p.streams, concurrency = p.concurrency, emulator = p.emulator_host.is_some(), "Starting.");

    tokio::spawn(health::watch(
        readiness.clone(),
        conn.clone(),
        subscription.clone(),
        pipeline.auth().cloned(),
    ));

    let mut loops = Vec::new();
    for _ in 0..p.streams {
        loops.push(tokio::spawn(pubsub::pull_loop(
            engine.clone(),
            client.clone(),
            subscription.clone(),
            p.clone(),
            readiness.stream_ok.clone(),
        )));
    }

    let broken = tokio::select! {
        () = wait_for_stop(&engine, cli, &mode) => None,
        reason = engine.broken() => Some(reason),
    };
    if let Some(reason) = &broken {
        tracing::error!(reason = %reason, "The connector cannot deliver any more; stopping.");
    }
    let stop_started = tokio::time::Instant::now();
    let drained = engine
        .drain(drain.saturating_sub(Duration::from_millis(500)))
        .await;
    let left = drain
        .saturating_sub(stop_started.elapsed())
        .max(Duration::from_millis(500));
    let flushed = tokio::time::timeout(left, futures::future::join_all(loops))
        .await
        .is_ok();
    engine.flush_spans().await;
    tracing::info!(
        drained,
        flushed,
        elapsed_ms = u64::try_from(stop_started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "Stopped."
    );
    if mode == Mode::Job {
        print_summary(&engine, started);
    }
    Ok(broken)
}

/// Push mode: serves the push endpoint and the probes on `$PORT` until
/// SIGTERM, then stops taking requests and lets the ones in flight finish
/// within the drain timeout (what is still running then is answered 503,
/// so Pub/Sub redelivers it).
async fn serve<S: Spec>(built: Built<S>, cli: &Cli) -> Result<(), ConfigError> {
    let Built {
        pubsub: p,
        server,
        push: settings,
        pipeline,
        telemetry,
    } = built;
    let auth = push::PushAuth::new(&settings)?;
    if matches!(auth, push::PushAuth::None) {
        tracing::warn!(
            "push.auth = \"none\": every request is taken without a token; only for the Pub/Sub emulator."
        );
    }
    let dl_topic = p.dead_letter_topic_path()?;
    let conn = pubsub::Connection::new(&p);
    let publisher = conn.publisher(&dl_topic).await.map_err(ConfigError::from)?;
    let results = results::ResultSink::pubsub(&pipeline, &p, &conn).await?;
    let origin = Origin {
        connector: S::name().into(),
        subscription: p.subscription_path().unwrap_or_else(|_| "push".into()),
    };
    let engine = Engine::new(
        pipeline,
        DeadLetterSink::Pubsub(publisher),
        results,
        origin,
        p.concurrency,
        p.max_nack_hold,
        telemetry.clone(),
    );
    let readiness = Arc::new(health::Readiness::default());
    readiness.stream_ok.store(true, Ordering::Relaxed);
    readiness.checked.store(true, Ordering::Relaxed);
    let state = Arc::new(push::PushState {
        engine: engine.clone(),
        auth,
        answer_within: settings.answer_within,
    });
    let app = push::router(state, settings.max_body_bytes)
        .merge(health::router(readiness, telemetry.metrics));
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", server.port))
        .await
        .map_err(|e| ConfigError::new(format!("binding port {}: {e}", server.port)))?;
    tracing::info!(port = server.port, dead_letter_topic = %dl_topic, concurrency = p.concurrency, "Serving push deliveries.");
    let started = tokio::time::Instant::now();
    let drain = Duration::from(cli.drain_timeout);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .into_future(),
    );
    shutdown_signal().await;
    // No new connections; requests already in take their turn, and those
    // still running at the drain timeout are answered 503 (redelivered).
    let _ = stop.send(());
    let drained = engine.drain(drain).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), server).await;
    engine.flush_spans().await;
    tracing::info!(drained, "Stopped.");
    // This instance's counts over its life, as a job prints them: on Cloud
    // Run, one log line per instance when it scales in.
    print_summary(&engine, started);
    Ok(())
}

/// Waits for SIGTERM/SIGINT, or, for a job, idleness or the time limit.
async fn wait_for_stop<C: Connector>(engine: &Arc<Engine<C>>, cli: &Cli, mode: &Mode) {
    let idle_exit = Duration::from(cli.idle_exit);
    let deadline = cli
        .max_duration
        .map(|d| tokio::time::Instant::now() + Duration::from(d));
    let job_done = async {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if *mode != Mode::Job {
                continue;
            }
            if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                tracing::info!("Time limit reached.");
                return;
            }
            if engine.in_flight() == 0 && engine.idle_for() >= idle_exit {
                tracing::info!("Subscription idle; finishing.");
                return;
            }
        }
    };
    tokio::select! {
        _ = shutdown_signal() => tracing::info!("Stop signal received; draining."),
        _ = job_done => {}
    }
}

pub(crate) async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Feeds a JSONL file through the engine until every message is settled, or
/// the connector breaks (then returns why).
async fn run_file<C: Connector>(
    engine: &Arc<Engine<C>>,
    text: &str,
    cli: &Cli,
    drain: Duration,
) -> Option<String> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for raw in source::parse_jsonl(text) {
        let _ = tx.send(raw);
    }
    let stop = shutdown_signal();
    tokio::pin!(stop);
    let broken = engine.broken();
    tokio::pin!(broken);
    let mut why = None;
    let deadline = cli
        .max_duration
        .map(|d| tokio::time::Instant::now() + Duration::from(d));
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => break,
            reason = &mut broken => {
                tracing::error!(reason = %reason, "The connector cannot deliver any more; stopping.");
                why = Some(reason);
                break;
            }
            m = rx.recv() => {
                let Some(raw) = m else { break };
                let acker = Acker::Local { requeue: tx.clone(), raw: Box::new(raw.clone()) };
                engine.dispatch(Delivery { raw, acker, answer_by: None }).await;
            }
            _ = tokio::time::sleep(Duration::from_millis(20)) => {
                if rx.is_empty() && engine.in_flight() == 0 {
                    break;
                }
                if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                    break;
                }
            }
        }
    }
    engine.drain(drain).await;
    engine.flush_spans().await;
    why
}

fn print_summary<C: Connector>(engine: &Engine<C>, started: tokio::time::Instant) {
    let s = engine.stats.summary();
    tracing::info!(
        received = s.received,
        acked = s.acked,
        duplicates = s.duplicates,
        retried = s.retried,
        dead_lettered = s.dead_lettered,
        "Summary."
    );
    let mut v = serde_json::to_value(s).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "elapsed_ms".into(),
            u64::try_from(started.elapsed().as_millis())
                .unwrap_or(u64::MAX)
                .into(),
        );
        for (name, value) in engine
            .connector_stats()
            .into_iter()
            .chain(engine.store_stats())
        {
            o.insert(name.into(), value.into());
        }
        o.insert(
            "resources".into(),
            serde_json::to_value(engine.resources()).unwrap_or_default(),
        );
    }
    println!("{}", serde_json::json!({ "summary": v }));
}
