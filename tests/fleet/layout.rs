//! Every connector has the same few files, a thin main, its own tests, a
//! README and Cloud Run manifests, so a newcomer finds the same things in
//! the same places and a new connector cannot skip one.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn connectors() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("connectors"))
        .expect("connectors/ exists")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("Cargo.toml").exists())
        .collect();
    v.sort();
    v
}

#[test]
fn every_connector_has_the_same_shape() {
    let all = connectors();
    assert!(!all.is_empty(), "at least one connector");
    for c in all {
        let name = c
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        for file in [
            "src/lib.rs",
            "src/main.rs",
            "src/config.rs",
            "src/client.rs",
            "src/service.rs",
            "src/error.rs",
            "README.md",
            "build.rs",
        ] {
            assert!(c.join(file).exists(), "connectors/{name}/{file} is missing");
        }
        let tests = std::fs::read_dir(c.join("tests"))
            .map(|d| d.count())
            .unwrap_or(0);
        assert!(tests > 0, "connectors/{name}/tests/ has no test");
        let main = std::fs::read_to_string(c.join("src/main.rs")).expect("main.rs");
        assert!(
            main.lines().count() <= 15,
            "connectors/{name}/src/main.rs must stay thin: the runtime does the work"
        );
        assert!(
            main.contains("gluefleet_runtime::main"),
            "connectors/{name} runs through the shared runtime"
        );
        let build = std::fs::read_to_string(c.join("build.rs")).expect("build.rs");
        assert!(
            build.contains("gluefleet_build::link_order()"),
            "connectors/{name}/build.rs links in the shared way (gluefleet-build)"
        );
        let manifest = std::fs::read_to_string(c.join("Cargo.toml")).expect("Cargo.toml");
        assert!(
            manifest.contains(&format!("name = \"gluefleet-{name}\"")),
            "binary is gluefleet-{name}"
        );
        assert!(
            manifest.contains("[lints]"),
            "connectors/{name} inherits the workspace lints"
        );
        let deploy = root().join(format!("deploy/cloudrun/{name}.service.yaml"));
        assert!(deploy.exists(), "{} is missing", deploy.display());
    }
}

#[test]
fn connectors_leave_delivery_to_the_core() {
    // Retries, rate limits, idempotency stores and acking belong to the core
    // and runtime; a connector that reaches for them is doing the core's job.
    for c in connectors() {
        for entry in std::fs::read_dir(c.join("src"))
            .expect("src/")
            .filter_map(Result::ok)
        {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            for banned in [
                "tokio::time::sleep",
                "governor::",
                "backon::",
                ".ack()",
                ".nack()",
                "MemoryStore",
            ] {
                assert!(
                    !text.contains(banned),
                    "{} uses {banned}",
                    entry.path().display()
                );
            }
        }
    }
}
