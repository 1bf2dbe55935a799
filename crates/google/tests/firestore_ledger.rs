//! The Firestore ledger's claims on the real Firestore emulator: fenced, so
//! a delivery whose lease ran out can neither delete nor overwrite the claim
//! another delivery has taken since.
//!
//! Needs gcloud with the Firestore emulator; without it this test fails with
//! a message saying so, on purpose: a skipped emulator test hides breakage.

use gluefleet_core::idempotency::{Claim, ClaimToken, IdempotencyStore};
use gluefleet_google::FirestoreStore;
use gluefleet_google::firestore::Firestore;
use gluefleet_testkit::firestore::FirestoreEmulator;
use std::time::Duration;

const TTL: Duration = Duration::from_secs(3600);

async fn acquire(store: &FirestoreStore, key: &str, lease: Duration) -> ClaimToken {
    match store.claim(key, lease).await {
        Ok(Claim::Acquired(t)) => t,
        other => panic!("expected {key} to be acquired, got {other:?}"),
    }
}

fn state(doc: &serde_json::Value) -> &str {
    doc["fields"]["state"]["stringValue"]
        .as_str()
        .unwrap_or_default()
}

#[tokio::test]
async fn a_late_holder_can_neither_release_nor_complete_the_newer_claim() {
    let emulator = match FirestoreEmulator::start().await {
        Ok(e) => e,
        Err(e) => panic!("Firestore emulator did not start: {e}"),
    };
    let host = emulator.host();
    let env = move |name: &str| (name == "FIRESTORE_EMULATOR_HOST").then(|| host.clone());
    let http = gluefleet_core::http::client().expect("HTTP client");
    let db = Firestore::connect(http, emulator.project(), "(default)", &env).expect("client");
    let store = FirestoreStore::new(db, "ledger").expect("store");
    let key = "ce://erp/orders/A1";

    // The first holder's lease runs out (the wall clock: the ledger is
    // shared by processes, so its leases are timestamps) and a second
    // delivery takes the claim over.
    let late = acquire(&store, key, Duration::from_secs(1)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let newer = acquire(&store, key, Duration::from_secs(60)).await;
    assert_ne!(late, newer, "each claim has its own token");
    let only = |docs: Vec<serde_json::Value>| {
        assert_eq!(docs.len(), 1, "{docs:?}");
        docs.into_iter().next().unwrap_or_default()
    };
    let before = only(emulator.list("ledger").await.expect("list"));
    assert_eq!(state(&before), "in-flight");

    // The late holder fails and releases: the newer claim stays.
    store
        .release(key, &late)
        .await
        .expect("a release that finds someone else's claim is no error");
    assert!(
        matches!(
            store.claim(key, Duration::from_secs(60)).await,
            Ok(Claim::InFlight { .. })
        ),
        "the newer claim survived the late release"
    );

    // The late holder succeeds and completes: refused, the newer claim stays.
    let e = store.complete(key, &late, TTL, None).await;
    assert!(e.is_err(), "the late complete is refused: {e:?}");
    let after = only(emulator.list("ledger").await.expect("list"));
    assert_eq!(state(&after), "in-flight", "{after}");
    assert_eq!(
        after["updateTime"], before["updateTime"],
        "not written at all"
    );

    // The newer holder completes its own claim, with the target's answer,
    // which a later claim reads back (a redelivery republishing a result).
    store
        .complete(key, &newer, TTL, Some(r#"{"id":"001xx"}"#))
        .await
        .expect("the holder completes its claim");
    assert_eq!(
        store.claim(key, Duration::from_secs(60)).await.ok(),
        Some(Claim::Done {
            answer: Some(r#"{"id":"001xx"}"#.into())
        })
    );

    // And a holder releases its own claim.
    let other = "ce://erp/orders/A2";
    let t = acquire(&store, other, Duration::from_secs(60)).await;
    store.release(other, &t).await.expect("release");
    assert!(
        matches!(
            store.claim(other, Duration::from_secs(60)).await,
            Ok(Claim::Acquired(_))
        ),
        "a released key is claimed again"
    );
}
