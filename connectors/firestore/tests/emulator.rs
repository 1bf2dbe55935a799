//! The connector against the real Firestore emulator: every operation and
//! precondition outcome, a mixed batch, and a 1,001-event burst. The pipeline
//! runs in process (no Pub/Sub), so outcomes are read directly.

use gluefleet_core::outcome::{AckReason, Outcome};
use gluefleet_core::{Pipeline, RawMessage};
use gluefleet_firestore::{FirestoreConnector, RawAction, Target};
use gluefleet_testkit::firestore::{FirestoreEmulator, plain};
use gluefleet_testkit::pipeline;
use serde_json::{Value, json};
use std::sync::Arc;

const ROUTES: &str = r#"
[[routes]]
type = "account.created"
action = { operation = "create", document = "accounts/{data.id}", fields = "{name: .data.name, tier: .data.tier, openedAt: .data.openedAt, score: .data.score}", timestamps = ["openedAt"], transforms = { createdAt = "server_timestamp" } }

[[routes]]
type = "account.replaced"
action = { operation = "set", document = "accounts/{data.id}" }

[[routes]]
type = "account.merged"
action = { operation = "set", merge = true, document = "accounts/{data.id}", fields = ".data.changes" }

[[routes]]
type = "account.updated"
action = { operation = "update", document = "accounts/{data.id}", fields = ".data.changes", transforms = { visits = { increment = 1 } } }

[[routes]]
type = "account.deleted"
action = { operation = "delete", document = "accounts/{data.id}" }
"#;

fn pipeline(emulator: &FirestoreEmulator, linger_ms: u64) -> Arc<Pipeline<FirestoreConnector>> {
    let target: Target = toml::from_str(&format!(
        "project = \"{}\"\nlinger = \"{linger_ms}ms\"",
        emulator.project()
    ))
    .expect("target");
    let host = emulator.host();
    let env = move |k: &str| (k == "FIRESTORE_EMULATOR_HOST").then(|| host.clone());
    let http = gluefleet_core::http::client().expect("http client");
    let connector = FirestoreConnector::new(target, http, &env).expect("connector");
    pipeline::build(connector, ROUTES, |raw: RawAction| raw.compile(), None)
}

fn event(id: &str, ty: &str, data: Value) -> RawMessage {
    pipeline::cloudevent(id, ty, data)
}

async fn doc(emulator: &FirestoreEmulator, path: &str) -> Option<Value> {
    emulator
        .get(path)
        .await
        .expect("emulator readable")
        .map(|d| plain(&d["fields"]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_and_precondition_outcome() {
    let emulator = FirestoreEmulator::start()
        .await
        .expect("Firestore emulator starts");
    let p = pipeline(&emulator, 5);

    // create, with mapping, a timestamp field, integer vs double, and a server timestamp.
    let created = event(
        "e1",
        "account.created",
        json!({"id": "A1", "name": "Ada", "tier": 2, "score": 2.5, "openedAt": "2026-11-28T10:00:00Z"}),
    );
    assert_eq!(
        p.process(&created).await,
        Outcome::Ack(AckReason::Delivered)
    );
    let raw = emulator
        .get("accounts/A1")
        .await
        .expect("read")
        .expect("created");
    assert_eq!(raw["fields"]["tier"], json!({"integerValue": "2"}));
    assert_eq!(raw["fields"]["score"], json!({"doubleValue": 2.5}));
    assert!(
        raw["fields"]["openedAt"]["timestampValue"]
            .as_str()
            .is_some_and(|t| t.starts_with("2026-11-28T10:00:00"))
    );
    assert!(
        raw["fields"]["createdAt"]["timestampValue"].is_string(),
        "server timestamp set"
    );

    // create again (another event, same document) → already done, unchanged.
    let again = event(
        "e2",
        "account.created",
        json!({"id": "A1", "name": "Someone else", "tier": 9, "score": 0, "openedAt": "2026-11-28T11:00:00Z"}),
    );
    assert_eq!(
        p.process(&again).await,
        Outcome::Ack(AckReason::AlreadyDone)
    );
    assert_eq!(
        doc(&emulator, "accounts/A1")
            .await
            .map(|d| d["name"].clone()),
        Some(json!("Ada"))
    );

    // update: changes only the mapped fields, increments.
    let upd = event(
        "e3",
        "account.updated",
        json!({"id": "A1", "changes": {"tier": 3}}),
    );
    assert_eq!(p.process(&upd).await, Outcome::Ack(AckReason::Delivered));
    let d = doc(&emulator, "accounts/A1").await.expect("exists");
    assert_eq!(
        (d["tier"].clone(), d["name"].clone(), d["visits"].clone()),
        (json!(3), json!("Ada"), json!(1))
    );

    // update of a missing document → dead letter naming NOT_FOUND.
    let missing = event(
        "e4",
        "account.updated",
        json!({"id": "NOPE", "changes": {"tier": 1}}),
    );
    let Outcome::DeadLetter(dl) = p.process(&missing).await else {
        panic!("update of a missing document must dead-letter")
    };
    assert_eq!(dl.class, "permanent");
    assert!(
        dl.error.contains("NOT_FOUND") && dl.error.contains("accounts/NOPE"),
        "{}",
        dl.error
    );

    // set merge keeps other fields; set replaces the whole document.
    let merge = event(
        "e5",
        "account.merged",
        json!({"id": "A1", "changes": {"address": {"city": "Oslo"}}}),
    );
    assert_eq!(p.process(&merge).await, Outcome::Ack(AckReason::Delivered));
    let d = doc(&emulator, "accounts/A1").await.expect("exists");
    assert_eq!(
        (d["address"]["city"].clone(), d["name"].clone()),
        (json!("Oslo"), json!("Ada"))
    );
    let replace = event(
        "e6",
        "account.replaced",
        json!({"id": "A1", "only": true, "list": [1, "x", null]}),
    );
    assert_eq!(
        p.process(&replace).await,
        Outcome::Ack(AckReason::Delivered)
    );
    assert_eq!(
        doc(&emulator, "accounts/A1").await,
        Some(json!({"id": "A1", "only": true, "list": [1, "x", null]}))
    );

    // delete, and delete again.
    assert_eq!(
        p.process(&event("e7", "account.deleted", json!({"id": "A1"})))
            .await,
        Outcome::Ack(AckReason::Delivered)
    );
    assert_eq!(doc(&emulator, "accounts/A1").await, None);
    assert!(matches!(
        p.process(&event("e8", "account.deleted", json!({"id": "A1"})))
            .await,
        Outcome::Ack(_)
    ));

    // an id that would climb into another collection never reaches Firestore.
    let Outcome::DeadLetter(dl) = p
        .process(&event(
            "e9",
            "account.replaced",
            json!({"id": "x/secrets/y"}),
        ))
        .await
    else {
        panic!("a slash in an id must dead-letter")
    };
    assert!(dl.error.contains("another collection"), "{}", dl.error);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_batch_and_a_burst_of_1001() {
    let emulator = FirestoreEmulator::start()
        .await
        .expect("Firestore emulator starts");
    emulator
        .put("accounts/EXISTS", json!({"name": {"stringValue": "old"}}))
        .await
        .expect("seed");
    let p = pipeline(&emulator, 200);

    // Good create, duplicate create, update of a missing doc: one request,
    // three outcomes.
    let msgs = [
        event(
            "b1",
            "account.created",
            json!({"id": "NEW", "name": "n", "tier": 1, "score": 1, "openedAt": "2026-11-28T10:00:00Z"}),
        ),
        event(
            "b2",
            "account.created",
            json!({"id": "EXISTS", "name": "x", "tier": 1, "score": 1, "openedAt": "2026-11-28T10:00:00Z"}),
        ),
        event(
            "b3",
            "account.updated",
            json!({"id": "MISSING", "changes": {"tier": 1}}),
        ),
    ];
    let mut tasks = Vec::new();
    for m in msgs {
        let p = p.clone();
        tasks.push(tokio::spawn(async move { p.process(&m).await }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.expect("task"));
    }
    assert_eq!(outcomes[0], Outcome::Ack(AckReason::Delivered));
    assert_eq!(outcomes[1], Outcome::Ack(AckReason::AlreadyDone));
    assert!(
        matches!(&outcomes[2], Outcome::DeadLetter(dl) if dl.error.contains("NOT_FOUND")),
        "{:?}",
        outcomes[2]
    );
    assert_eq!(
        p.connector().requests(),
        1,
        "one batchWrite for three events"
    );
    assert_eq!(
        doc(&emulator, "accounts/EXISTS")
            .await
            .map(|d| d["name"].clone()),
        Some(json!("old"))
    );

    // 1,001 creates at once: 500 + 500 + 1.
    let before = p.connector().requests();
    let mut tasks = Vec::new();
    for i in 0..1001 {
        let p = p.clone();
        let m = event(
            &format!("burst-{i}"),
            "account.replaced",
            json!({"id": format!("B{i:04}"), "n": i}),
        );
        tasks.push(tokio::spawn(async move { p.process(&m).await }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("task"), Outcome::Ack(AckReason::Delivered));
    }
    assert_eq!(
        p.connector().requests() - before,
        3,
        "1,001 writes in 3 requests"
    );
    assert_eq!(emulator.count("accounts").await.expect("count"), 1001 + 2);
}
