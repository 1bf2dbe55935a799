//! `cargo xtask new-connector` on a copy of this workspace: the generated
//! crate must build, pass clippy with warnings denied, and pass its own
//! tests without an edit, so the template never rots.
//!
//! The copy shares this build's target directory: cargo names a workspace
//! crate's artifacts by its path inside the workspace, so the copy reuses
//! everything already built here and compiles only the new crate.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const XTASK: &str = env!("CARGO_BIN_EXE_xtask");

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The target directory this test runs from (…/target/debug/deps/this).
fn target_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_owned()))
        .expect("the test runs from a target directory")
}

/// The workspace's files as git sees them (tracked, plus new files not
/// ignored), copied to `to`.
fn copy_workspace(to: &Path) {
    let listed = Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(root())
        .output()
        .expect("git runs");
    assert!(listed.status.success(), "git ls-files failed");
    for rel in listed.stdout.split(|b| *b == 0).filter(|p| !p.is_empty()) {
        let rel = Path::new(std::str::from_utf8(rel).expect("UTF-8 path"));
        let from = root().join(rel);
        if !from.is_file() {
            continue; // deleted in the working tree
        }
        let dest = to.join(rel);
        std::fs::create_dir_all(dest.parent().expect("a parent")).expect("mkdir");
        std::fs::copy(&from, &dest).expect("copy");
    }
}

/// Runs `cmd` to the end (at most `limit`), returning its output; panics
/// with that output when it fails.
fn run(cmd: &mut Command, what: &str, limit: Duration) -> String {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let started = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("{what}: still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = child.wait_with_output().expect("output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{what} failed:\n{text}");
    text
}

#[test]
fn a_generated_connector_builds_lints_and_passes_its_tests_untouched() {
    let copy = std::env::temp_dir().join(format!("gluefleet-new-connector-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&copy);
    copy_workspace(&copy);

    let said = run(
        Command::new(XTASK)
            .args(["new-connector", "example", "--root"])
            .arg(&copy),
        "new-connector",
        Duration::from_secs(60),
    );
    assert!(said.contains("cargo test -p gluefleet-example"), "{said}");
    for file in [
        "connectors/example/src/lib.rs",
        "connectors/example/src/main.rs",
        "connectors/example/src/config.rs",
        "connectors/example/src/client.rs",
        "connectors/example/src/service.rs",
        "connectors/example/src/error.rs",
        "connectors/example/README.md",
        "connectors/example/build.rs",
        "connectors/example/tests/e2e.rs",
        "connectors/example/tests/conformance.rs",
        "deploy/cloudrun/example.service.yaml",
        "deploy/cloudrun/example.worker-pool.yaml",
        "deploy/cloudrun/example.job.yaml",
    ] {
        assert!(copy.join(file).is_file(), "{file} was not generated");
    }
    let tf = std::fs::read_to_string(copy.join("deploy/terraform/variables.tf")).expect("tf");
    assert!(
        tf.contains("\"example\", \"firestore\""),
        "Terraform lists it"
    );
    let docker = std::fs::read_to_string(copy.join("deploy/Dockerfile")).expect("Dockerfile");
    assert!(
        docker.contains("CONNECTORS=\"example "),
        "the Dockerfile lists it"
    );
    let service = std::fs::read_to_string(copy.join("deploy/cloudrun/example.service.yaml"))
        .expect("service manifest");
    assert!(service.contains("name: gluefleet-example") && !service.contains("__name__"));
    // A second run refuses instead of overwriting the author's work.
    let again = Command::new(XTASK)
        .args(["new-connector", "example", "--root"])
        .arg(&copy)
        .output()
        .expect("runs");
    assert!(!again.status.success(), "a second generation must refuse");

    let cargo = || {
        let mut c = Command::new(env!("CARGO"));
        c.current_dir(&copy)
            .env("CARGO_TARGET_DIR", target_dir())
            .env_remove("CARGO_MAKEFLAGS")
            .env_remove("RUSTFLAGS");
        c
    };
    let limit = Duration::from_secs(20 * 60);
    run(
        cargo().args([
            "clippy",
            "--offline",
            "-p",
            "gluefleet-example",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
        "cargo clippy on the generated crate",
        limit,
    );
    let tested = run(
        cargo().args(["test", "--offline", "-p", "gluefleet-example"]),
        "cargo test on the generated crate",
        limit,
    );
    let passed: usize = tested
        .lines()
        .filter(|l| l.starts_with("test result: ok."))
        .filter_map(|l| l.split_whitespace().nth(3)?.parse::<usize>().ok())
        .sum();
    assert!(
        passed >= 6,
        "the generated tests ran ({passed} passed):\n{tested}"
    );
    let _ = std::fs::remove_dir_all(&copy);
}
