//! Every connector ships a working example in `connectors/<name>/examples`
//! (a config, an env template, sample events), the one `cargo xtask run`
//! and the README's real-tenant steps use: each config passes the
//! connector's own `lint` with no secret set and its JSON Schema
//! (docs/schemas/, kept fresh here), each event is a CloudEvent, and a
//! shipped cases file passes `test` with no network.

use gluefleet_testkit::bin::connector_binary;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn connectors() -> Vec<(String, PathBuf)> {
    let mut v: Vec<(String, PathBuf)> = std::fs::read_dir(root().join("connectors"))
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

        // The config's JSON Schema, for editors: committed, fresh, and the
        // example is valid against it.
        let out = Command::new(&binary)
            .arg("schema")
            .output()
            .expect("schema runs");
        assert_eq!(out.status.code(), Some(0), "{name} schema");
        let schema: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("the schema is JSON");
        let committed = root().join(format!("docs/schemas/{name}.schema.json"));
        let text = format!("{}\n", serde_json::to_string_pretty(&schema).expect("JSON"));
        if std::env::var_os("GLUEFLEET_BLESS").is_some() {
            std::fs::write(&committed, &text).expect("schema written");
        }
        assert_eq!(
            std::fs::read_to_string(&committed).unwrap_or_default(),
            text,
            "{} is stale: run GLUEFLEET_BLESS=1 cargo test -p gluefleet-fleet-tests --test examples",
            committed.display()
        );
        let example: toml::Value =
            toml::from_str(&std::fs::read_to_string(&config).expect("config")).expect("TOML");
        let example = serde_json::to_value(example).expect("as JSON");
        let validator = jsonschema::validator_for(&schema).expect("a valid JSON Schema");
        let errors: Vec<String> = validator
            .iter_errors(&example)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{name}: the example against its schema: {errors:?}"
        );
        let mut typo = example.clone();
        typo["target"]["linger_ms"] = serde_json::json!(5);
        typo["routes"][0]["tpye"] = serde_json::json!("x");
        assert!(
            !validator.is_valid(&typo),
            "{name}: the schema catches a misspelt key"
        );

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
