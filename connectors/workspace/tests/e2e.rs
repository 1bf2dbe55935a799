//! End to end: the real `gluefleet-workspace` binary, from a file source (no
//! Pub/Sub needed), against the testkit's real HTTP target standing in for
//! Workspace. Replace the stand-in with the vendor's own local server or
//! sandbox double when there is one.

use gluefleet_testkit::bin::Worker;
use gluefleet_testkit::free_port;
use gluefleet_testkit::http_target::{HttpTarget, Reply};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_gluefleet-workspace");

/// A run of the binary over `events`, with its dead letters and summary.
struct Run {
    code: Option<i32>,
    logs: String,
    dead: Vec<Value>,
}

impl Run {
    fn summary(&self, key: &str) -> Option<u64> {
        let line = self.logs.lines().find(|l| l.starts_with("{\"summary\""))?;
        let v: Value = serde_json::from_str(line).ok()?;
        v["summary"][key].as_u64()
    }
}

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "gluefleet-workspace-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

async fn run(target: &HttpTarget, events: &[Value]) -> Run {
    let d = dir();
    let config = d.join("workspace.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[delivery.retry]
initial_backoff = "50ms"
max_backoff = "200ms"

[target]
base_url = "{url}/v1"

[[routes]]
type = "record.upserted"
action = {{ operation = "upsert", path = "/records/{{data.id}}", fields = "{{name: .data.name}}" }}

[[routes]]
type = "record.deleted"
action = {{ operation = "delete", path = "/records/{{data.id}}" }}
"#,
            url = target.url()
        ),
    )
    .expect("config written");
    let source = d.join("events.jsonl");
    let lines: Vec<String> = events.iter().map(Value::to_string).collect();
    std::fs::write(&source, lines.join("\n") + "\n").expect("events written");
    let dead = d.join("dead.jsonl");
    let args = [
        "run".to_owned(),
        "--config".to_owned(),
        config.display().to_string(),
        "--source".to_owned(),
        format!("file:{}", source.display()),
        "--dead-letters".to_owned(),
        dead.display().to_string(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut w = Worker::spawn(Path::new(BIN), &args, &[("PORT", free_port().to_string())])
        .await
        .expect("the binary starts");
    let status = w
        .wait(Duration::from_secs(60))
        .await
        .expect("a file run ends");
    let dead = std::fs::read_to_string(&dead)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    Run {
        code: status.code(),
        logs: w.logs().join("\n"),
        dead,
    }
}

fn event(id: &str, event_type: &str, data: Value) -> Value {
    json!({"specversion": "1.0", "id": id, "source": "//workspace-test", "type": event_type, "data": data})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upsert_puts_the_mapped_fields_once_with_an_idempotency_key() {
    let target = HttpTarget::start().await.expect("HTTP target");
    let r = run(
        &target,
        &[
            event(
                "e1",
                "record.upserted",
                json!({"id": "A/1", "name": "Ada", "extra": 1}),
            ),
            event(
                "e1",
                "record.upserted",
                json!({"id": "A/1", "name": "Ada", "extra": 1}),
            ),
        ],
    )
    .await;
    assert_eq!(r.code, Some(0), "{}", r.logs);
    let puts: Vec<_> = target
        .requests()
        .into_iter()
        .filter(|q| q.method == "PUT")
        .collect();
    assert_eq!(puts.len(), 1, "the repeat had no effect: {puts:?}");
    assert_eq!(puts[0].path, "/v1/records/A%2F1", "values are encoded");
    assert_eq!(puts[0].json(), Some(json!({"name": "Ada"})));
    assert_eq!(puts[0].idempotency_key(), Some("ce://workspace-test/e1"));
    assert_eq!(r.summary("acked"), Some(1), "{}", r.logs);
    assert_eq!(r.summary("duplicates"), Some(1), "{}", r.logs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_record_is_dead_lettered_with_the_vendors_words_and_a_gone_one_is_done() {
    let target = HttpTarget::start().await.expect("HTTP target");
    target.rule(|q| {
        (q.method == "PUT")
            .then(|| Reply::status(422).body(r#"{"error": {"message": "name is required"}}"#))
    });
    target.rule(|q| (q.method == "DELETE").then(|| Reply::status(404)));
    let r = run(
        &target,
        &[
            event("e1", "record.upserted", json!({"id": "B1"})),
            event("e2", "record.deleted", json!({"id": "B2"})),
            event(
                "e3",
                "record.upserted",
                json!({"id": "B3", "name": ["not", "a", "string"]}),
            ),
        ],
    )
    .await;
    assert_eq!(r.code, Some(0), "{}", r.logs);
    assert_eq!(r.dead.len(), 2, "{:?}", r.dead);
    for d in &r.dead {
        assert_eq!(d["attributes"]["gluefleet-error-class"], "permanent", "{d}");
        let reason = d["attributes"]["gluefleet-error"]
            .as_str()
            .unwrap_or_default();
        assert!(reason.contains("name is required"), "{reason}");
    }
    assert_eq!(
        r.summary("acked"),
        Some(1),
        "the delete of a gone record is done"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_api_is_retried_until_it_takes_the_write() {
    let target = HttpTarget::start().await.expect("HTTP target");
    target.script([Reply::status(503), Reply::status(503)]);
    let r = run(
        &target,
        &[event(
            "e1",
            "record.upserted",
            json!({"id": "C1", "name": "Cy"}),
        )],
    )
    .await;
    assert_eq!(r.code, Some(0), "{}", r.logs);
    assert!(r.dead.is_empty(), "{:?}", r.dead);
    assert_eq!(target.requests().len(), 3, "two refusals, then the write");
    assert_eq!(r.summary("acked"), Some(1), "{}", r.logs);
}
