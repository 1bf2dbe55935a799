//! `lint` and `test --cases` of the real binary, with no network at all:
//! the shipped example config and cases pass, and a wrong expectation, a
//! broken config and a broken cases file each fail saying what is wrong.

use gluefleet_testkit::TempDir;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_gluefleet-legacy-rest");

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// Runs the binary with `args`, none of the example's variables set.
fn run(args: &[&str]) -> (Option<i32>, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(BIN)
        .args(args)
        .env_remove("ORDERS_BASE_URL")
        .env_remove("ORDERS_API_KEY")
        .env_remove("GLUEFLEET_CONFIG")
        .output()
        .expect("the binary runs");
    (
        status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        ),
    )
}

fn example(name: &str) -> String {
    examples().join(name).display().to_string()
}

#[test]
fn lint_checks_the_config_without_its_secrets() {
    let (code, out) = run(&["lint", "--config", &example("legacy-rest.toml")]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("ok   config: 2 route(s): create-order, cancel-order"),
        "{out}"
    );
    for var in ["ORDERS_BASE_URL", "ORDERS_API_KEY"] {
        assert!(
            out.contains(&format!("warn ${{{var}}} is not set here")),
            "{var} named: {out}"
        );
    }

    let dir = TempDir::new("lint").expect("temp dir");
    let bad = dir
        .write(
            "bad.toml",
            r#"
[target]
base_url = "https://orders.example.com/api"

[[routes]]
name = "create-order"
type = "order.created"
action = { path = "/orders", body = "{id: .data.orderId" }
"#,
        )
        .expect("config written");
    let (code, out) = run(&["lint", "--config", &bad.display().to_string()]);
    assert_eq!(code, Some(64), "{out}");
    assert!(
        out.contains("FAIL config: TOML parse error at line 8")
            && out.contains("jq filter \"{id: .data.orderId\" does not parse"),
        "the broken filter is named with its line: {out}"
    );
}

#[test]
fn the_example_cases_pass_with_no_network() {
    let (code, out) = run(&[
        "test",
        "--config",
        &example("legacy-rest.toml"),
        "--cases",
        &example("cases.toml"),
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("6 passed, 0 failed"), "{out}");
    assert!(!out.contains("FAIL"), "{out}");
}

#[test]
fn a_wrong_expectation_fails_showing_what_was_sent() {
    let dir = TempDir::new("cases").expect("temp dir");
    let cases = dir
        .write(
            "cases.toml",
            r#"
[env]
ORDERS_BASE_URL = "https://orders.example.com/api"
ORDERS_API_KEY = "k"

[[cases]]
name = "the total is sent as a string"
event = { id = "e-1", source = "//shop", type = "order.created", data = { orderId = "o-1", customer = "c-1", total = 5 } }
requests = [{ method = "PUT", json = { id = "o-1", customer = "c-1", total = "5" } }]

[[cases]]
name = "a refusal is expected to be delivered"
event = { id = "e-2", source = "//shop", type = "order.created", data = { orderId = "o-2", customer = "c-1", total = 5 } }
answers = [{ status = 422, body = "total is too small" }]
"#,
        )
        .expect("cases written");
    let (code, out) = run(&[
        "test",
        "--config",
        &example("legacy-rest.toml"),
        "--cases",
        &cases.display().to_string(),
    ]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("0 passed, 2 failed"), "{out}");
    assert!(
        out.contains("request 1: method: expected PUT, sent POST"),
        "{out}"
    );
    assert!(
        out.contains("request 1: json: expected") && out.contains(r#""total":"5""#),
        "{out}"
    );
    assert!(
        out.contains("sent 1: POST https://orders.example.com/api/orders"),
        "what was sent is shown: {out}"
    );
    assert!(
        out.contains("outcome: expected delivered, got dead-lettered") && out.contains("422"),
        "{out}"
    );

    let broken = dir
        .write(
            "broken.toml",
            "[[cases]]\nname = \"x\"\nevent = { type = \"order.created\" }\nexpect = { outcome = \"delivered\", colour = \"red\" }\n",
        )
        .expect("cases written");
    let (code, out) = run(&[
        "test",
        "--config",
        &example("legacy-rest.toml"),
        "--cases",
        &broken.display().to_string(),
    ]);
    assert_eq!(code, Some(64), "{out}");
    assert!(out.contains("colour"), "the unknown field is named: {out}");
}
