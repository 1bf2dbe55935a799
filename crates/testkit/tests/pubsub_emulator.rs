//! The Pub/Sub emulator starts, takes admin calls, delivers and restarts.
//!
//! Needs gcloud with the Pub/Sub emulator; without it this test fails with
//! a message saying so, on purpose: a skipped emulator test hides breakage.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use gluefleet_testkit::TestkitError;
use gluefleet_testkit::net;
use gluefleet_testkit::pubsub::{
    OutgoingMessage, PubsubEmulator, PulledMessage, SubscriptionOptions,
};

async fn pull_n(emulator: &PubsubEmulator, sub: &str, n: usize) -> Vec<PulledMessage> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut got = Vec::new();
    while got.len() < n && Instant::now() < deadline {
        got.extend(emulator.pull(sub, n - got.len()).await.expect("pull"));
        if got.len() < n {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    got
}

#[tokio::test]
async fn emulator_delivers_acks_and_restarts() {
    let mut emulator = match PubsubEmulator::start().await {
        Ok(emulator) => emulator,
        Err(e) => panic!("Pub/Sub emulator did not start: {e}"),
    };
    let host = emulator.host();
    assert!(host.starts_with("127.0.0.1:"), "{host}");
    assert!(emulator.project().starts_with("gluefleet-test-"));

    emulator.create_topic("orders").await.expect("create topic");
    emulator
        .create_topic("orders-dlq")
        .await
        .expect("create dead-letter topic");
    emulator
        .create_subscription(
            "orders-sub",
            "orders",
            SubscriptionOptions {
                ack_deadline_secs: 0,
                dead_letter: Some(("orders-dlq".to_owned(), 10)),
                push_endpoint: None,
            },
        )
        .await
        .expect("create subscription with dead-letter policy");
    let duplicate = emulator.create_topic("orders").await;
    assert!(
        matches!(duplicate, Err(TestkitError::Api { status: 409, .. })),
        "creating a topic twice is reported: {duplicate:?}"
    );

    let outgoing: Vec<OutgoingMessage> = (0..3)
        .map(|i| {
            OutgoingMessage::json(&serde_json::json!({ "order": i }))
                .with_attr("kind", "order")
                .with_attr("n", i.to_string())
        })
        .collect();
    let ids = emulator
        .publish("orders", &outgoing)
        .await
        .expect("publish");
    assert_eq!(ids.len(), 3);

    let mut pulled = pull_n(&emulator, "orders-sub", 3).await;
    assert_eq!(pulled.len(), 3, "all published messages arrive");
    pulled.sort_by_key(|m| m.attributes.get("n").cloned());
    for (i, message) in pulled.iter().enumerate() {
        assert_eq!(message.message_id, ids[i]);
        assert_eq!(message.delivery_attempt, Some(1));
        assert_eq!(message.json(), Some(serde_json::json!({ "order": i })));
        let expected: BTreeMap<String, String> = [
            ("kind".to_owned(), "order".to_owned()),
            ("n".to_owned(), i.to_string()),
        ]
        .into();
        assert_eq!(message.attributes, expected);
    }
    let ack_ids: Vec<String> = pulled.iter().map(|m| m.ack_id.clone()).collect();
    emulator.ack("orders-sub", &ack_ids).await.expect("ack");
    let again = emulator
        .drain("orders-sub", Duration::from_millis(500))
        .await
        .expect("drain");
    assert!(
        again.is_empty(),
        "acked messages are not redelivered: {again:?}"
    );

    // drain acks what it returns.
    emulator
        .publish("orders", &outgoing[..2])
        .await
        .expect("publish");
    let drained = emulator
        .drain("orders-sub", Duration::from_millis(500))
        .await
        .expect("drain");
    assert_eq!(drained.len(), 2);
    assert!(
        emulator
            .pull("orders-sub", 10)
            .await
            .expect("pull")
            .is_empty()
    );

    emulator.restart().await.expect("restart");
    assert_eq!(emulator.host(), host, "same port after restart");
    let gone = emulator.pull("orders-sub", 1).await;
    assert!(
        matches!(gone, Err(TestkitError::Api { status: 404, .. })),
        "state is gone after restart: {gone:?}"
    );
    emulator
        .create_topic("orders")
        .await
        .expect("create topic after restart");
    emulator
        .create_subscription("orders-sub", "orders", SubscriptionOptions::default())
        .await
        .expect("create subscription after restart");
    emulator
        .publish("orders", &outgoing[..1])
        .await
        .expect("publish after restart");
    let after = pull_n(&emulator, "orders-sub", 1).await;
    assert_eq!(after.len(), 1);
    assert_eq!(
        after[0].delivery_attempt, None,
        "no dead-letter policy, no attempt count"
    );

    emulator.stop();
    assert!(
        net::refused(&format!("http://{host}/v1/projects/x/topics")).await,
        "nothing listens after stop"
    );
}

#[test]
fn missing_gcloud_error_says_what_to_do() {
    let message = TestkitError::GcloudMissing.to_string();
    assert!(message.contains("gcloud not found on PATH"), "{message}");
    assert!(message.contains("google-cloud-cli"), "{message}");
}
