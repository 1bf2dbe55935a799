//! `gluefleet-workspace`: see the crate docs and README.md.

fn main() -> std::process::ExitCode {
    gluefleet_runtime::main::<gluefleet_workspace::Workspace>()
}
