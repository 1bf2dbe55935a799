//! `cargo xtask demo`: gluefleet workers, end to end, on this machine.
//!
//! Part 1, a legacy REST API:
//!
//! ```text
//! sample events ──▶ Pub/Sub emulator (topic orders) ──▶ gluefleet-legacy-rest job
//!                   (or a local JSONL file)                │            │
//!                                                          ▼            ▼
//!                                  pretend order system (HTTP)   dead-letter topic
//! ```
//!
//! Part 2, only with the emulators (see [`firestore`]):
//!
//! ```text
//! account events ──▶ Pub/Sub emulator (topic accounts) ──▶ gluefleet-firestore job
//!                                                            │           │
//!                                                            ▼           ▼
//!                                    Firestore emulator (accounts/…)   dead-letter topic
//! ```
//!
//! Part 3, only with the Pub/Sub emulator and Node.js (see [`sap_odata`]):
//!
//! ```text
//! partner events ──▶ Pub/Sub emulator (topic partners) ──▶ gluefleet-sap-odata job
//!                                                            │           │
//!                                                            ▼           ▼
//!                      SAP CAP server (OData V4, BusinessPartners)   dead-letter topic
//! ```
//!
//! Part 4, only with the Pub/Sub emulator (see [`workspace`]):
//!
//! ```text
//! HR and sales events ──▶ Pub/Sub emulator (topic people) ──▶ gluefleet-workspace job
//!                                                          (a token per event's user)
//!                                                             │           │
//!                                                             ▼           ▼
//!           Workspace double (Sheets, Gmail, Calendar, Directory)   dead-letter topic
//! ```
//!
//! Part 5, only with the Pub/Sub emulator (see [`legacy_rest::push`]): part
//! 1's events through the same binary in push mode, as on a Cloud Run
//! service that scales to zero:
//!
//! ```text
//! sample events ──▶ Pub/Sub emulator (push subscription) ──HTTP POST──▶ gluefleet-legacy-rest serve
//!                                                    (2xx = ack, 503 = nack)   │            │
//!                                                                              ▼            ▼
//!                                                      pretend order system (HTTP)   dead-letter topic
//! ```
//!
//! Part 6, with the Pub/Sub emulator and Node.js (see [`chain`]): a CRM
//! customer becomes an SAP partner carrying the CRM's id, by result
//! events alone:
//!
//! ```text
//! customers.jsonl ─gluefleet-publish─▶ customers ─▶ gluefleet-legacy-rest ─▶ CRM (HTTP)
//!                                                          │ result event
//!                                                          ▼
//!                 SAP CAP server ◀─ gluefleet-sap-odata ◀─ customer-results
//! ```
//!
//! Part 7, with the Pub/Sub emulator (see [`salesforce`]): customer events
//! upserted as Salesforce Accounts, batched, against the testkit's
//! Salesforce double, from the connector's shipped example.
//!
//! [`sandbox`] is `cargo xtask run`: any connector's example, one command.
//!
//! Every part publishes its events with `gluefleet-publish` ([`publish`]).
//!
//! Everything runs locally: the order system and the Workspace double are
//! in-process HTTP servers, the emulators, the SAP CAP server and the
//! workers are child processes
//! that the testkit stops when the demo ends (or is interrupted), and the
//! temporary files are removed.
//!
//! Every part has the same shape: a module that sets up its target and
//! runs its worker through [`part::Part`], with a `report` submodule that
//! judges each event into the one [`report::Report`].

mod chain;
mod firestore;
mod legacy_rest;
mod part;
mod publish;
mod report;
mod salesforce;
pub(crate) mod sandbox;
mod sap_odata;
mod workspace;

use gluefleet_testkit::TempDir;
use gluefleet_testkit::firestore::FirestoreEmulator;
use gluefleet_testkit::pubsub::PubsubEmulator;
use gluefleet_testkit::sap::SapCap;
use std::error::Error;
use std::process::ExitCode;

type Result<T, E = Box<dyn Error + Send + Sync>> = std::result::Result<T, E>;

/// The worker logs each message's outcome (`Acked.` with its reason) at
/// debug level; that is how parts 2 to 4 tell a suppressed duplicate from
/// a create that found its entity existing, which look the same in the
/// target.
pub(crate) const WORKER_LOG_FILTER: &str = "info,gluefleet_runtime::worker=debug";

/// What the parts share while the demo runs: the temporary directory and
/// the Pub/Sub emulator, started by the first part that needs it and handed
/// on, so later parts need not wait for another one.
#[derive(Debug)]
pub(crate) struct Stage {
    tmp: TempDir,
    pubsub: Option<PubsubEmulator>,
    /// `gluefleet-publish`, once built.
    publisher: Option<std::path::PathBuf>,
    no_emulator: bool,
}

/// The demo's parts, in order.
#[derive(Clone, Copy, Debug)]
enum Which {
    LegacyRest,
    Firestore,
    SapOdata,
    Workspace,
    Push,
    Chain,
    Salesforce,
}

impl Which {
    const ALL: [Which; 7] = [
        Which::LegacyRest,
        Which::Firestore,
        Which::SapOdata,
        Which::Workspace,
        Which::Push,
        Which::Chain,
        Which::Salesforce,
    ];

    /// Why the part cannot run here, if it cannot. Parts 2 to 4 have no
    /// file-source variant: their point is the target, and the worker
    /// settles them through the emulator.
    fn missing(self, no_emulator: bool) -> Option<&'static str> {
        match self {
            Which::LegacyRest => None,
            Which::Firestore if no_emulator => {
                Some("it needs the Pub/Sub and Firestore emulators (--no-emulator)")
            }
            Which::Firestore if !FirestoreEmulator::available() => Some(
                "gcloud is not installed (it needs the pubsub-emulator and \
                 cloud-firestore-emulator components)",
            ),
            Which::SapOdata | Which::Chain if no_emulator => {
                Some("it needs the Pub/Sub emulator (--no-emulator)")
            }
            Which::SapOdata | Which::Chain if !PubsubEmulator::available() => {
                Some("gcloud is not installed (it needs the pubsub-emulator component)")
            }
            Which::SapOdata | Which::Chain if !SapCap::available() => {
                Some("it needs Node.js 20 and npm for the SAP CAP server (tests/sandboxes/sap-cap)")
            }
            Which::Workspace if no_emulator => {
                Some("it needs the Pub/Sub emulator (--no-emulator)")
            }
            Which::Workspace if !PubsubEmulator::available() => {
                Some("gcloud is not installed (it needs the pubsub-emulator component)")
            }
            Which::Push | Which::Salesforce if no_emulator => {
                Some("it needs the Pub/Sub emulator (--no-emulator)")
            }
            Which::Salesforce if !PubsubEmulator::available() => {
                Some("gcloud is not installed (it needs the pubsub-emulator component)")
            }
            Which::Push if !PubsubEmulator::available() => {
                Some("gcloud is not installed (it needs the pubsub-emulator component)")
            }
            Which::Firestore
            | Which::SapOdata
            | Which::Workspace
            | Which::Push
            | Which::Chain
            | Which::Salesforce => None,
        }
    }

    /// `part 2 (mobile backend → Firestore)`, for a skip note.
    fn name(self) -> &'static str {
        match self {
            Which::LegacyRest => "part 1 (orders → legacy REST)",
            Which::Firestore => "part 2 (mobile backend → Firestore)",
            Which::SapOdata => "part 3 (order system → SAP)",
            Which::Workspace => "part 4 (HR and sales → Google Workspace)",
            Which::Push => "part 5 (orders → legacy REST, pushed)",
            Which::Chain => "part 6 (CRM → SAP, chained by result events)",
            Which::Salesforce => "part 7 (CRM → Salesforce)",
        }
    }

    /// Runs the part; Ok(true) when everything happened as expected.
    async fn run(self, stage: &mut Stage) -> Result<bool> {
        match self {
            Which::LegacyRest => legacy_rest::run(stage).await,
            Which::Firestore => firestore::run(stage).await,
            Which::SapOdata => sap_odata::run(stage).await,
            Which::Workspace => workspace::run(stage).await,
            Which::Push => legacy_rest::push::run(stage).await,
            Which::Chain => chain::run(stage).await,
            Which::Salesforce => salesforce::run(stage).await,
        }
    }
}

/// Runs the demo; the exit code says whether everything went as expected.
pub(crate) fn main(no_emulator: bool) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("demo: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        tokio::select! {
            r = demo(no_emulator) => r,
            // Dropping `demo` stops the worker and the emulator: they run in
            // process groups of their own, so Ctrl-C does not reach them.
            _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
        }
    });
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("\ndemo failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Ok(true) when everything happened as expected.
async fn demo(no_emulator: bool) -> Result<bool> {
    let mut stage = Stage {
        tmp: TempDir::new("demo")?,
        pubsub: None,
        publisher: None,
        no_emulator,
    };
    let mut ok = true;
    for part in Which::ALL {
        match part.missing(no_emulator) {
            Some(why) => println!("\n• {} skipped: {why}", part.name()),
            None => ok &= part.run(&mut stage).await?,
        }
    }
    println!("\nNext: cargo test --workspace");
    Ok(ok)
}
