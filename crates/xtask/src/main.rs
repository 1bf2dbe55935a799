//! `cargo xtask <command>`: gluefleet's project chores, written in Rust so
//! they run wherever cargo does (the alias lives in `.cargo/config.toml`).
//!
//! - `cargo xtask demo`: what to run on a fresh clone to see gluefleet work.
//! - `cargo xtask bench`: gluefleet workers side by side with the raw
//!   Pub/Sub client: throughput, CPU per 10k messages, memory, readiness;
//!   then the peak memory of one large event.
//! - `cargo xtask bench memory`: only that peak memory, accepted and refused.
//! - `cargo xtask bench core`: the criterion micro-benchmarks of the core path.
//! - `cargo xtask bench firestore|salesforce|sap-odata|workspace`: API calls per 1,000 events and events/s.
//! - `cargo xtask bench push`: CPU per 10k messages in push mode next to pull mode, and pull with metrics off.
//! - `cargo xtask new-connector <name>`: a new connector crate from connectors/template.
//! - `cargo xtask run <connector> [--env F] [--emulator]`: one connector's
//!   example against its local double or a sandbox tenant, in one command.

mod bench;
mod demo;
mod new_connector;
mod rusage;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// gluefleet's project chores.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Watch gluefleet workers deliver sample events, in three parts: order
    /// events to a legacy REST API, account events to Firestore, and an
    /// order system's business-partner events to SAP over OData.
    ///
    /// Part 1 builds gluefleet-legacy-rest, starts a pretend order system
    /// and (if gcloud is installed) the Pub/Sub emulator, publishes a
    /// handful of events, good and bad, and runs the worker until it has
    /// handled them. Part 2 (gluefleet-firestore) needs gcloud's Pub/Sub and
    /// Firestore emulators; part 3 (gluefleet-sap-odata, OData V4 against a
    /// real SAP CAP server) needs the Pub/Sub emulator and Node.js with npm.
    /// A part whose tools are missing is skipped, with a note. Each part
    /// prints what happened to each event. Exits non-zero if anything
    /// unexpected happened, so it doubles as a smoke check. Set
    /// GLUEFLEET_TEST_ECHO=1 to watch the workers' own logs live.
    Demo {
        /// Feed part 1's worker a local JSONL file instead of the Pub/Sub
        /// emulator (what happens anyway when gcloud is not installed), and
        /// skip parts 2 and 3, which need the emulator.
        #[arg(long)]
        no_emulator: bool,
    },
    /// Benchmarks (numbers, not pass/fail); results go to docs/BENCHMARKS.md.
    ///
    /// Without a subcommand: every gluefleet worker side by side with a
    /// minimal loop on the official Pub/Sub client, on the emulators, at 1
    /// and 5 streams: messages/s, CPU s per 10k messages, peak and idle RSS,
    /// time to /readyz, target calls per 1,000 events (about 10 minutes);
    /// then what `bench memory` measures.
    #[command(args_conflicts_with_subcommands = true)]
    Bench {
        #[command(subcommand)]
        which: Option<Bench>,
        /// Messages per backlog.
        #[arg(long, default_value_t = 20_000)]
        events: usize,
        /// Rounds (medians are reported).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Only these gluefleet workers (legacy-rest, firestore, salesforce),
        /// besides the raw loop; docs/BENCHMARKS.md is then left alone.
        #[arg(long, value_delimiter = ',')]
        workers: Vec<String>,
    },
    /// Writes connectors/<name>/link-order.txt for each connector the
    /// benchmark runs: the functions its release binary ran on the
    /// benchmark's workload under callgrind (needs valgrind and nm), which
    /// the connector's build script hands to the linker so that they sit
    /// together and less of the binary is resident. Rerun after updating
    /// dependencies or the toolchain; `cargo xtask bench` reports how much
    /// of each list the binaries still match.
    LinkOrder {
        /// Messages per connector (each runs about 50× slower under callgrind).
        #[arg(long, default_value_t = 500)]
        events: usize,
        /// Only these (legacy-rest, firestore, salesforce).
        #[arg(long, value_delimiter = ',')]
        workers: Vec<String>,
    },
    /// A new connector crate, connectors/<name>, from connectors/template:
    /// with its Cloud Run service and job manifests, and added to the
    /// Dockerfile's and Terraform's lists of connectors. It builds and
    /// passes its tests as generated; the command prints what to edit next.
    NewConnector {
        /// 1 to 20 characters of a-z, 0-9 and '-' (e.g. acme-crm).
        name: String,
        /// The workspace to generate into (default: this one).
        #[arg(long)]
        root: Option<std::path::PathBuf>,
    },
    /// One connector against its local double or a real sandbox tenant, in
    /// one command: builds it, reads the env file, starts the Pub/Sub
    /// emulator and its topics (--emulator; otherwise a file source), runs
    /// `check`, publishes the events with gluefleet-publish, runs the worker
    /// until idle, prints what happened to each event, and stops
    /// everything. Defaults come from connectors/<connector>/examples.
    Run {
        /// legacy-rest, salesforce, ...
        connector: String,
        /// KEY=VALUE lines for the config's ${NAME}s (default
        /// examples/sandbox.env, else examples/sandbox.env.example).
        #[arg(long)]
        env: Option<std::path::PathBuf>,
        /// Through the Pub/Sub emulator (topic, subscription with a
        /// dead-letter policy, dead-letter topic).
        #[arg(long)]
        emulator: bool,
        /// JSON Lines, one CloudEvent each (default examples/events.jsonl).
        #[arg(long)]
        events: Option<std::path::PathBuf>,
        /// The config (default examples/<connector>.toml).
        #[arg(long)]
        config: Option<std::path::PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// The criterion micro-benchmarks of the per-message core path (decode
    /// → route → outcome), in nanoseconds: `cargo bench -p gluefleet-core`.
    Core,
    /// Peak RSS of the release gluefleet-legacy-rest for one event on the
    /// file source: 1 MiB (the default max_event_bytes) accepted, one byte
    /// more refused as poison, and 10 MB (Pub/Sub's maximum) accepted with
    /// the limit raised and refused by the default.
    Memory,
    /// gluefleet-firestore on the emulators: Firestore requests per 1,000
    /// events and events per second, with a short and a long batch linger.
    Firestore {
        /// Events per run.
        #[arg(long, default_value_t = 10_000)]
        events: usize,
        /// Rounds (medians are reported).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// gluefleet-salesforce on the sandbox double: API calls per 1,000
    /// events and events per second, with a short and a long batch linger.
    Salesforce {
        /// Events per run.
        #[arg(long, default_value_t = 10_000)]
        events: usize,
        /// Rounds (medians are reported).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// gluefleet-workspace on the Workspace double: Sheets requests (key
    /// column reads and appends) per 1,000 `order.created` events and
    /// events per second, with a short and a long batch linger.
    Workspace {
        /// Events per run.
        #[arg(long, default_value_t = 5_000)]
        events: usize,
        /// Rounds (medians are reported).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// gluefleet-sap-odata on a real SAP CAP server (a fresh one per run):
    /// OData requests per 1,000 `partner.created` events with $batch, and
    /// events per second, for OData V4 and V2.
    SapOdata {
        /// Events per run (at most 99,999: partner keys are `String(10)`).
        #[arg(long, default_value_t = 2_000)]
        events: usize,
        /// Rounds (medians are reported).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// gluefleet-legacy-rest in push mode (`serve`, the emulator's push
    /// subscription) next to pull mode (`run`): the worker's CPU seconds
    /// per 10k messages and events per second.
    Push {
        /// Events per run.
        #[arg(long, default_value_t = 10_000)]
        events: usize,
        /// Rounds (medians are reported).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Demo { no_emulator } => demo::main(no_emulator),
        Command::LinkOrder { events, workers } => bench::compare::link_order::run(events, &workers),
        Command::NewConnector { name, root } => new_connector::main(&name, root.as_deref()),
        Command::Run {
            connector,
            env,
            emulator,
            events,
            config,
        } => demo::sandbox::main(demo::sandbox::Args {
            connector,
            env,
            emulator,
            events,
            config,
        }),
        Command::Bench {
            which: None,
            events,
            rounds,
            workers,
        } => bench::compare::run(events, rounds, &workers),
        Command::Bench {
            which: Some(Bench::Core),
            ..
        } => bench::core(),
        Command::Bench {
            which: Some(Bench::Memory),
            ..
        } => bench::memory::run(),
        Command::Bench {
            which: Some(Bench::Firestore { events, rounds }),
            ..
        } => bench::batching::run(bench::batching::Target::Firestore, events, rounds),
        Command::Bench {
            which: Some(Bench::Salesforce { events, rounds }),
            ..
        } => bench::batching::run(bench::batching::Target::Salesforce, events, rounds),
        Command::Bench {
            which: Some(Bench::Workspace { events, rounds }),
            ..
        } => bench::batching::run(bench::batching::Target::Workspace, events, rounds),
        Command::Bench {
            which: Some(Bench::SapOdata { events, rounds }),
            ..
        } => bench::batching::run(bench::batching::Target::SapOdata, events, rounds),
        Command::Bench {
            which: Some(Bench::Push { events, rounds }),
            ..
        } => bench::push::run(events, rounds),
    }
}
