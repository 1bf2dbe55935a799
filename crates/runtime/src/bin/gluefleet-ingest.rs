//! `gluefleet-ingest`: an HTTP front door onto Pub/Sub. See
//! [`gluefleet_runtime::ingest`].

use std::process::ExitCode;

fn main() -> ExitCode {
    gluefleet_runtime::ingest::main()
}
