//! Every connector ships a working example in `connectors/<name>/examples`
//! (a config, an env template, sample events), the one `cargo xtask run`
//! and the README's real-tenant steps use: each config passes the
//! connector's own `lint` with no secret set, each event is a CloudEvent,
//! and a shipped cases file passes `test` with no network.

use gluefleet_testkit::bin::connector_binary;
use std::path::{Path, PathBuf};
use std::process::Command;

fn connectors() -> Vec<(String, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../connectors");
    let mut v: Vec<(String, PathBuf)> = std::fs::read_dir(root)
        .expect("connectors/ exists")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("Cargo.toml").exists())
        .map(|p| {
            let name = p
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            (name, p)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn every_connector_ships_an_example_that_lints_and_whose_cases_pass() {
    let all = connectors();
    assert!(all.len() >= 5, "{all:?}");
    for (name, dir) in all {
        let examples = dir.join("examples");
        let config = examples.join(format!("{name}.toml"));
        for file in [
            config.clone(),
            examples.join("sandbox.env.example"),
            examples.join("events.jsonl"),
        ] {
            assert!(file.is_file(), "{} is missing", file.display());
        }
        let events = std::fs::read_to_string(examples.join("events.jsonl")).expect("events");
        let mut n = 0;
        for (i, line) in events.lines().enumerate() {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{name} events.jsonl line {}: {e}", i + 1));
            for field in ["specversion", "id", "source", "type", "data"] {
                assert!(
                    v.get(field).is_some(),
                    "{name} events.jsonl line {}: no {field}",
                    i + 1
                );
            }
            n += 1;
        }
        assert!(n >= 3, "{name}: a few sample events");

        let binary = connector_binary(&name).expect("connector binary");
        let out = Command::new(&binary)
            .arg("lint")
            .arg("--config")
            .arg(&config)
            .env_remove("GLUEFLEET_CONFIG")
            .output()
            .expect("lint runs");
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{name} lint: {text}");
        assert!(text.starts_with("ok   config:"), "{name}: {text}");

        let cases = examples.join("cases.toml");
        if cases.is_file() {
            let out = Command::new(&binary)
                .arg("test")
                .arg("--config")
                .arg(&config)
                .arg("--cases")
                .arg(&cases)
                .output()
                .expect("test runs");
            let text = String::from_utf8_lossy(&out.stdout);
            assert_eq!(out.status.code(), Some(0), "{name} test: {text}");
            assert!(text.contains(" passed, 0 failed"), "{name}: {text}");
        }
    }
}
