//! `gluefleet-legacy-rest`: see the crate docs and README.md.

fn main() -> std::process::ExitCode {
    gluefleet_runtime::main::<gluefleet_legacy_rest::LegacyRest>()
}
