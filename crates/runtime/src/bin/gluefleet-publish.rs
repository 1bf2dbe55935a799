//! `gluefleet-publish`: JSON or JSON Lines records onto a Pub/Sub topic as
//! CloudEvents. See [`gluefleet_runtime::publish`].

use std::process::ExitCode;

fn main() -> ExitCode {
    gluefleet_runtime::publish::main()
}
