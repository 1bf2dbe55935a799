//! `cargo xtask <command>`: gluefleet's project chores, written in Rust so
//! they run wherever cargo does (the alias lives in `.cargo/config.toml`).
//!
//! - `cargo xtask demo`: what to run on a fresh clone to see gluefleet work.
//! - `cargo xtask bench firestore|salesforce`: API calls per 1,000 events and events/s.

mod bench;
mod demo;

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
    /// Watch a gluefleet worker deliver sample order events to a local
    /// stand-in for a legacy REST order system.
    ///
    /// Builds gluefleet-legacy-rest, starts the pretend order system and (if
    /// gcloud is installed) the Pub/Sub emulator, publishes a handful of
    /// events, good and bad, runs the worker until it has handled them, and
    /// prints what happened to each one. Exits non-zero if anything
    /// unexpected happened, so it doubles as a smoke check. Set
    /// GLUEFLEET_TEST_ECHO=1 to watch the worker's own log live.
    Demo {
        /// Feed the worker a local JSONL file instead of the Pub/Sub
        /// emulator (what happens anyway when gcloud is not installed).
        #[arg(long)]
        no_emulator: bool,
    },
    /// Benchmarks (numbers, not pass/fail); results go to docs/BENCHMARKS.md.
    Bench {
        #[command(subcommand)]
        which: Bench,
    },
}

#[derive(Debug, Subcommand)]
enum Bench {
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
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Demo { no_emulator } => demo::main(no_emulator),
        Command::Bench {
            which: Bench::Firestore { events, rounds },
        } => bench::run(bench::Target::Firestore, events, rounds),
        Command::Bench {
            which: Bench::Salesforce { events, rounds },
        } => bench::run(bench::Target::Salesforce, events, rounds),
    }
}
