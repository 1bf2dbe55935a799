//! The Firestore emulator starts, stores and lists documents, reports
//! per-write statuses in `batchWrite`, resets, restarts and stops.
//!
//! Needs gcloud with the Firestore emulator; without it this test fails with
//! a message saying so, on purpose: a skipped emulator test hides breakage.

use gluefleet_testkit::firestore::{FirestoreEmulator, plain};
use gluefleet_testkit::net;
use serde_json::{Value, json};

#[tokio::test]
async fn emulator_stores_lists_batches_and_resets() {
    let mut emulator = match FirestoreEmulator::start().await {
        Ok(emulator) => emulator,
        Err(e) => panic!("Firestore emulator did not start: {e}"),
    };
    let host = emulator.host();
    assert!(host.starts_with("127.0.0.1:"), "{host}");
    assert!(emulator.project().starts_with("gluefleet-fs-"));

    // put + get round trip over every common value kind.
    emulator
        .put(
            "accounts/A1",
            json!({
                "name": {"stringValue": "Ada"},
                "balance": {"integerValue": "42"},
                "rate": {"doubleValue": 0.25},
                "active": {"booleanValue": true},
                "closed_at": {"nullValue": null},
                "address": {"mapValue": {"fields": {"city": {"stringValue": "Turin"}}}},
                "tags": {"arrayValue": {"values": [{"stringValue": "vip"}, {"integerValue": "7"}]}},
            }),
        )
        .await
        .expect("put");
    let doc = emulator
        .get("accounts/A1")
        .await
        .expect("get")
        .expect("document exists after put");
    assert_eq!(
        doc["name"],
        json!(emulator.document_name("accounts/A1")),
        "{doc}"
    );
    assert!(doc["updateTime"].is_string(), "{doc}");
    assert_eq!(
        plain(&doc["fields"]),
        json!({
            "name": "Ada",
            "balance": 42,
            "rate": 0.25,
            "active": true,
            "closed_at": null,
            "address": {"city": "Turin"},
            "tags": ["vip", 7],
        })
    );
    assert_eq!(emulator.count("accounts").await.expect("count"), 1);
    let listed = emulator.list("accounts").await.expect("list");
    assert_eq!(listed, vec![doc.clone()]);
    assert_eq!(
        emulator.count("no_such_collection").await.expect("count"),
        0
    );

    // batchWrite: two fresh creates succeed, a create of an existing
    // document fails alone with ALREADY_EXISTS (6); the batch is not atomic.
    let create = |id: &str, fields: Value| {
        json!({
            "update": {"name": emulator.document_name(&format!("accounts/{id}")), "fields": fields},
            "currentDocument": {"exists": false},
        })
    };
    let body = json!({
        "writes": [
            create("B1", json!({"n": {"integerValue": "1"}})),
            create("B2", json!({})),
            create("A1", json!({"name": {"stringValue": "overwritten?"}})),
        ]
    });
    let response = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
        .post(format!("{}:batchWrite", emulator.documents_url()))
        .header("Authorization", "Bearer owner")
        .json(&body)
        .send()
        .await
        .expect("batchWrite request");
    assert!(response.status().is_success(), "{}", response.status());
    let answer: Value = response.json().await.expect("batchWrite answer is JSON");
    eprintln!("batchWrite answer: {answer:#}");
    let codes: Vec<i64> = answer["status"]
        .as_array()
        .expect("status list")
        .iter()
        // A success status is `{}`: code 0 is omitted on the wire.
        .map(|s| s.get("code").and_then(Value::as_i64).unwrap_or(0))
        .collect();
    assert_eq!(codes, [0, 0, 6], "{answer}");
    assert_eq!(
        answer["writeResults"].as_array().map(Vec::len),
        Some(3),
        "{answer}"
    );
    assert_eq!(emulator.count("accounts").await.expect("count"), 3);
    let a1 = emulator
        .get("accounts/A1")
        .await
        .expect("get")
        .expect("A1 still exists");
    assert_eq!(a1, doc, "the failed create left A1 untouched");
    let b2 = emulator
        .get("accounts/B2")
        .await
        .expect("get")
        .expect("B2 created");
    assert_eq!(plain(&b2["fields"]), json!({}), "{b2}");

    // Ids needing percent-encoding reach the right document.
    emulator
        .put("odd ids/a b?c", json!({"x": {"stringValue": "y"}}))
        .await
        .expect("put odd id");
    let odd = emulator
        .get("odd ids/a b?c")
        .await
        .expect("get odd id")
        .expect("odd id exists");
    assert_eq!(plain(&odd["fields"]), json!({"x": "y"}));

    // reset empties the project; missing documents read as None.
    emulator.reset().await.expect("reset");
    assert_eq!(emulator.count("accounts").await.expect("count"), 0);
    assert_eq!(emulator.get("accounts/A1").await.expect("get"), None);
    assert_eq!(emulator.get("accounts/missing").await.expect("get"), None);

    // restart: same address, empty store, serving again.
    emulator
        .put("accounts/R1", json!({}))
        .await
        .expect("put before restart");
    emulator.restart().await.expect("restart");
    assert_eq!(emulator.host(), host);
    assert_eq!(emulator.count("accounts").await.expect("count"), 0);
    emulator
        .put("accounts/R2", json!({}))
        .await
        .expect("put after restart");
    assert_eq!(emulator.count("accounts").await.expect("count"), 1);

    emulator.stop();
    assert!(
        net::refused(&format!("http://{host}/")).await,
        "nothing listens after stop"
    );
}
