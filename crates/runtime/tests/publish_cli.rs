//! `gluefleet-publish` against the real Pub/Sub emulator: what it publishes
//! is pulled back and decoded by the workers' own decoder; bad input
//! publishes nothing; a missing topic fails every event by name.

use gluefleet_core::event::{Format, RawMessage, decode};
use gluefleet_testkit::pubsub::{PubsubEmulator, SubscriptionOptions};
use serde_json::{Value, json};
use std::io::Write as _;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_gluefleet-publish");

/// Runs the binary with `stdin` as its input.
fn publish(emulator: &PubsubEmulator, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .env("PUBSUB_EMULATOR_HOST", emulator.host())
        .env("GOOGLE_CLOUD_PROJECT", emulator.project())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gluefleet-publish starts");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(stdin.as_bytes())
        .expect("input written");
    child.wait_with_output().expect("gluefleet-publish ends")
}

fn summary(out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "the summary is one JSON line ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_events_decode_as_the_records_they_came_from() {
    let emulator = PubsubEmulator::start()
        .await
        .expect("the Pub/Sub emulator starts");
    emulator.create_topic("orders").await.expect("topic");
    emulator
        .create_subscription("orders-check", "orders", SubscriptionOptions::default())
        .await
        .expect("subscription");

    // 1,000 JSON Lines records from stdin, ids and ordering keys from fields.
    let lines: String = (0..1000)
        .map(|i| {
            format!(
                "{}\n",
                json!({"order": format!("o-{i}"), "customer": format!("c-{}", i % 7), "n": i})
            )
        })
        .collect();
    let out = publish(
        &emulator,
        &[
            "--topic",
            "orders",
            "--type",
            "order.created",
            "--source",
            "//erp/orders",
            "--id-field",
            "order",
            "--ordering-key-field",
            "customer",
            "--attribute",
            "tenant=eu",
        ],
        &lines,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = summary(&out);
    assert_eq!(
        (
            s["events"].as_u64(),
            s["published"].as_u64(),
            s["failed"].as_u64()
        ),
        (Some(1000), Some(1000), Some(0))
    );
    let ids = s["message_ids"].as_array().expect("message ids");
    assert!(
        ids.iter()
            .all(|id| id.as_str().is_some_and(|s| !s.is_empty()))
    );

    let pulled = emulator
        .drain("orders-check", Duration::from_secs(1))
        .await
        .expect("pulled back");
    assert_eq!(pulled.len(), 1000);
    let mut seen = std::collections::BTreeSet::new();
    for m in &pulled {
        let event = decode(&RawMessage {
            data: m.data.clone(),
            attributes: m.attributes.clone(),
            message_id: m.message_id.clone(),
            ..RawMessage::default()
        })
        .expect("the worker's decoder reads it");
        assert_eq!(event.format, Format::CloudEventsBinary);
        assert_eq!(
            (event.event_type.as_str(), event.source.as_str()),
            ("order.created", "//erp/orders")
        );
        assert_eq!(event.data["order"].as_str(), Some(event.id.as_str()));
        assert_eq!(m.attributes.get("tenant").map(String::as_str), Some("eu"));
        assert!(
            ids.contains(&json!(m.message_id)),
            "a message id the summary listed"
        );
        seen.insert(event.id);
    }
    assert_eq!(seen.len(), 1000, "every record once");

    // Structured mode, a JSON array from a file.
    let file = std::env::temp_dir().join(format!("{}-records.json", emulator.project()));
    std::fs::write(&file, r#"[{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]"#).expect("written");
    let path = file.display().to_string();
    let out = publish(
        &emulator,
        &[
            "--topic",
            &format!("projects/{}/topics/orders", emulator.project()),
            "--type",
            "account.updated",
            "--envelope",
            "structured",
            "--id-field",
            "id",
            &path,
        ],
        "",
    );
    let _ = std::fs::remove_file(&file);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pulled = emulator
        .drain("orders-check", Duration::from_secs(1))
        .await
        .expect("pulled");
    let mut got: Vec<(String, Value)> = pulled
        .iter()
        .map(|m| {
            let e = decode(&RawMessage {
                data: m.data.clone(),
                attributes: m.attributes.clone(),
                ..RawMessage::default()
            })
            .expect("decodes");
            assert_eq!(e.format, Format::CloudEventsStructured);
            (e.id, e.data)
        })
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        [
            ("1".to_owned(), json!({"id": 1, "name": "a"})),
            ("2".to_owned(), json!({"id": 2, "name": "b"}))
        ]
    );

    // One bad line: exit 64, the line named, nothing published.
    let out = publish(
        &emulator,
        &[
            "--topic",
            "orders",
            "--type",
            "order.created",
            "--id-field",
            "order",
        ],
        "{\"order\": \"x-1\"}\n{\"order\": \n{\"order\": \"x-3\"}\n",
    );
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("1 of 3 lines are not JSON, so nothing was published")
            && stderr.contains("line 2: "),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "no summary for refused input");
    assert_eq!(
        emulator
            .drain("orders-check", Duration::from_millis(500))
            .await
            .expect("pulled")
            .len(),
        0
    );

    // A topic that does not exist: every event failed, exit 1, named.
    let out = publish(
        &emulator,
        &["--topic", "no-such-topic", "--type", "t"],
        "{\"a\": 1}\n{\"a\": 2}\n",
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = summary(&out);
    assert_eq!(
        (s["published"].as_u64(), s["failed"].as_u64()),
        (Some(0), Some(2))
    );
    assert_eq!(s["message_ids"], json!([null, null]));
    assert_eq!(s["failures"][1]["at"], "line 2");
}

/// `--records cloudevents`: captured events of several types published in
/// one run keep their own ids, types, sources, subjects and extensions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudevent_records_keep_their_own_context() {
    let emulator = PubsubEmulator::start()
        .await
        .expect("the Pub/Sub emulator starts");
    emulator.create_topic("replay").await.expect("topic");
    emulator
        .create_subscription("replay-check", "replay", SubscriptionOptions::default())
        .await
        .expect("subscription");
    let lines = [
        json!({"specversion": "1.0", "id": "e-1", "source": "//erp/orders", "type": "order.created",
               "subject": "o-1", "tenant": "eu", "data": {"order": "o-1", "customer": "c-1"}}),
        json!({"specversion": "1.0", "id": "e-2", "source": "//crm", "type": "account.updated",
               "time": "2026-12-06T10:00:00Z", "data": {"account": "a-9", "customer": "c-2"}}),
    ]
    .iter()
    .map(|v| format!("{v}\n"))
    .collect::<String>();
    let out = publish(
        &emulator,
        &[
            "--topic",
            "replay",
            "--records",
            "cloudevents",
            "--ordering-key-field",
            "customer",
        ],
        &lines,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(summary(&out)["event_ids"], json!(["e-1", "e-2"]));
    let mut got: Vec<_> = emulator
        .drain("replay-check", Duration::from_secs(1))
        .await
        .expect("pulled")
        .iter()
        .map(|m| {
            let e = decode(&RawMessage {
                data: m.data.clone(),
                attributes: m.attributes.clone(),
                ..RawMessage::default()
            })
            .expect("the worker's decoder reads it");
            assert_eq!(e.format, Format::CloudEventsBinary);
            (
                e.id,
                e.event_type,
                e.source,
                e.subject,
                e.time,
                m.attributes.get("ce-tenant").cloned(),
                m.ordering_key.clone(),
                e.data,
            )
        })
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        [
            (
                "e-1".to_owned(),
                "order.created".to_owned(),
                "//erp/orders".to_owned(),
                Some("o-1".to_owned()),
                None,
                Some("eu".to_owned()),
                "c-1".to_owned(),
                json!({"order": "o-1", "customer": "c-1"})
            ),
            (
                "e-2".to_owned(),
                "account.updated".to_owned(),
                "//crm".to_owned(),
                None,
                Some("2026-12-06T10:00:00Z".to_owned()),
                None,
                "c-2".to_owned(),
                json!({"account": "a-9", "customer": "c-2"})
            )
        ]
    );

    // An event without a type, or with --type given as well: refused, naming
    // the record (one document on stdin is a single record, not line 1).
    let out = publish(
        &emulator,
        &["--topic", "replay", "--records", "cloudevents"],
        "{\"specversion\":\"1.0\",\"id\":\"e-3\",\"source\":\"//s\"}\n",
    );
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the record")
            && stderr.contains("field \"type\"")
            && stderr.contains("missing"),
        "{stderr}"
    );
    let out = publish(
        &emulator,
        &[
            "--topic",
            "replay",
            "--records",
            "cloudevents",
            "--type",
            "x",
        ],
        &lines,
    );
    assert_eq!(out.status.code(), Some(64));
    assert_eq!(
        emulator
            .drain("replay-check", Duration::from_millis(500))
            .await
            .expect("pulled")
            .len(),
        0,
        "nothing published by refused input"
    );
}
