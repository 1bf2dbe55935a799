//! Every numeric and duration setting has a range checked at load: a value
//! far outside it stops each shipped binary with exit 64 and an error naming
//! the setting, instead of a panic on the first message.
//!
//! Each case runs the real `gluefleet-<name> check` twice: with a config that
//! loads (so it does not exit 64), then with one value made absurd (so the
//! 64 is that value's doing).

use gluefleet_testkit::bin::connector_binary;
use std::process::Command;

/// Nothing listens on port 1: `check` may fail to reach the target, but the
/// config itself is good.
const BASE: &[(&str, &str)] = &[
    (
        "legacy-rest",
        r#"[target]
base_url = "http://127.0.0.1:1/api"
allow_insecure_http = true
[[routes]]
type = "order.created"
action = { path = "/orders" }
"#,
    ),
    (
        "firestore",
        r#"[target]
project = "demo"
[[routes]]
type = "doc.set"
action = { operation = "set", document = "orders/{data.id}" }
"#,
    ),
    (
        "salesforce",
        r#"[auth]
kind = "oauth2_client_credentials"
token_url = "http://127.0.0.1:1/services/oauth2/token"
client_id = "gluefleet"
client_secret = "s"
[target]
instance_url = "http://127.0.0.1:1"
[[routes]]
type = "account.upserted"
action = { operation = "upsert", sobject = "Account", external_id_field = "Ext__c", external_id = "{data.id}" }
"#,
    ),
    (
        "sap-odata",
        r#"[target]
service_url = "http://127.0.0.1:1/odata/v4/partners"
version = "v4"
allow_insecure_http = true
[[routes]]
type = "partner.created"
action = { operation = "create", entity_set = "Partners", key = { ID = "{data.id}" } }
"#,
    ),
];

/// (connector, TOML to splice in, the setting the error must name).
const ABSURD: &[(&str, Splice, &str)] = &[
    (
        "legacy-rest",
        Splice::Top("[pubsub]\nconcurrency = 4000000000000000000\n"),
        "pubsub.concurrency",
    ),
    (
        "legacy-rest",
        Splice::Top("[pubsub]\nmax_outstanding_messages = 9000000000000\n"),
        "pubsub.max_outstanding_messages",
    ),
    (
        "legacy-rest",
        Splice::Top("[delivery]\nmax_delivery_attempts = 4000000000\n"),
        "delivery.max_delivery_attempts",
    ),
    (
        "legacy-rest",
        Splice::Top("[delivery]\nmax_event_bytes = 0\n"),
        "delivery.max_event_bytes",
    ),
    (
        "legacy-rest",
        Splice::Top("[delivery.retry]\nmax_retry_after = \"300000000000y\"\n"),
        "max_retry_after",
    ),
    (
        "legacy-rest",
        Splice::Top("[delivery.retry]\nmax_attempts = 4000000000\n"),
        "max_attempts",
    ),
    (
        "legacy-rest",
        Splice::Route("timeout = \"300000000000y\"\n"),
        "timeout",
    ),
    (
        "firestore",
        Splice::Target("linger = \"300000000000y\"\n"),
        "target.linger",
    ),
    (
        "firestore",
        Splice::Target("max_in_flight = 4000000000000000000\n"),
        "target.max_in_flight",
    ),
    (
        "salesforce",
        Splice::Target("limit_backoff = \"300000000000y\"\n"),
        "target.limit_backoff",
    ),
    (
        "salesforce",
        Splice::Target("linger = \"300000000000y\"\n"),
        "target.linger",
    ),
    (
        "salesforce",
        Splice::Auth("default_lifetime = \"300000000000y\"\n"),
        "auth.default_lifetime",
    ),
    (
        "sap-odata",
        Splice::Target("linger = \"300000000000y\"\n"),
        "target.linger",
    ),
];

/// Where a line goes in the base config.
#[derive(Debug, Clone, Copy)]
enum Splice {
    /// New tables before everything else.
    Top(&'static str),
    /// Right after `[target]`.
    Target(&'static str),
    /// Right after `[auth]`.
    Auth(&'static str),
    /// Into the route's table (before `action`).
    Route(&'static str),
}

fn spliced(base: &str, s: Splice) -> String {
    match s {
        Splice::Top(t) => format!("{t}{base}"),
        Splice::Target(t) => base.replacen("[target]\n", &format!("[target]\n{t}"), 1),
        Splice::Auth(t) => base.replacen("[auth]\n", &format!("[auth]\n{t}"), 1),
        Splice::Route(t) => base.replacen("action =", &format!("{t}action ="), 1),
    }
}

/// Runs `check` on `config`; returns the exit code and stderr.
fn check(connector: &str, config: &str, dir: &std::path::Path) -> (Option<i32>, String) {
    let bin = connector_binary(connector).expect("connector binary builds");
    let path = dir.join(format!("{connector}.toml"));
    std::fs::write(&path, config).expect("write config");
    let events = dir.join("events.jsonl");
    std::fs::write(&events, "").expect("write events");
    let out = Command::new(bin)
        .arg("check")
        .arg("--config")
        .arg(&path)
        .arg("--source")
        .arg(format!("file:{}", events.display()))
        .env("FIRESTORE_EMULATOR_HOST", "127.0.0.1:1")
        .env_remove("GOOGLE_CLOUD_PROJECT")
        .output()
        .expect("the binary runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn absurd_values_exit_64_naming_the_setting() {
    let dir = std::env::temp_dir().join(format!("gluefleet-ranges-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for (connector, base) in BASE {
        let (code, stderr) = check(connector, base, &dir);
        assert_ne!(
            code,
            Some(64),
            "{connector}: the base config must load:\n{stderr}"
        );
    }
    for (connector, splice, setting) in ABSURD {
        let base = BASE
            .iter()
            .find(|(c, _)| c == connector)
            .map(|(_, b)| *b)
            .expect("a base config");
        let config = spliced(base, *splice);
        let (code, stderr) = check(connector, &config, &dir);
        assert_eq!(
            code,
            Some(64),
            "{connector} with {splice:?}: expected exit 64, got {code:?}:\n{stderr}"
        );
        assert!(
            stderr.contains(setting) && stderr.contains("must be between"),
            "{connector}: the error names {setting} and its range:\n{stderr}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
