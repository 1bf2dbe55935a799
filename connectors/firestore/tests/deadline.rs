//! A `batchWrite` that outlives its attempt, on the real Firestore emulator
//! behind a proxy that holds the first request for a while and then delivers
//! it anyway, as a slow Firestore that commits late would.
//!
//! The request is cut off at the attempt's deadline, before any retry; an
//! increment (not idempotent) is then not sent again but dead-lettered as
//! `outcome-unknown`, so it is applied once; an idempotent write is retried
//! and acked. The increment case holds the request in the testkit's fault
//! proxy, which has read it whole and forwards it from a task of its own:
//! a byte-level hold can lose the part of the request still unread when
//! the connector hangs up.

use gluefleet_core::outcome::{AckReason, Outcome};
use gluefleet_core::pipeline::OUTCOME_UNKNOWN;
use gluefleet_core::{Pipeline, RawMessage};
use gluefleet_firestore::{FirestoreConnector, RawAction, Target};
use gluefleet_testkit::conformance::{Fault, FaultProxy};
use gluefleet_testkit::firestore::{FirestoreEmulator, plain};
use gluefleet_testkit::pipeline;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const ROUTES: &str = r#"
[[routes]]
type = "page.visited"
timeout = "1s"
action = { operation = "set", merge = true, document = "pages/{data.id}", fields = "{name: .data.name}", transforms = { visits = { increment = 1 } } }

[[routes]]
type = "page.renamed"
timeout = "1s"
action = { operation = "set", merge = true, document = "pages/{data.id}", fields = "{name: .data.name}" }
"#;

/// How long the proxy holds the first connection's request.
const HOLD: Duration = Duration::from_secs(3);

/// A TCP proxy to `upstream` that holds the first connection's bytes for
/// [`HOLD`] and forwards them even if the client has gone by then.
async fn slow_first_request(upstream: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let first = Arc::new(AtomicBool::new(true));
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let hold = first.swap(false, Ordering::SeqCst);
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    return;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let up = async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut held = hold;
                    while let Ok(n) = cr.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        if held {
                            tokio::time::sleep(HOLD).await;
                            held = false;
                        }
                        if sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    // Keep the upstream open long enough for it to commit.
                    tokio::time::sleep(HOLD).await;
                };
                let down = async move {
                    let _ = tokio::io::copy(&mut sr, &mut cw).await;
                };
                tokio::join!(up, down);
            });
        }
    });
    addr.to_string()
}

async fn pipeline(emulator: &FirestoreEmulator) -> Arc<Pipeline<FirestoreConnector>> {
    let host = slow_first_request(emulator.host()).await;
    pipeline_through(emulator, host)
}

/// The pipeline, reaching the emulator at `host`.
fn pipeline_through(
    emulator: &FirestoreEmulator,
    host: String,
) -> Arc<Pipeline<FirestoreConnector>> {
    let target: Target =
        toml::from_str(&format!("project = \"{}\"", emulator.project())).expect("target");
    let env = move |k: &str| (k == "FIRESTORE_EMULATOR_HOST").then(|| host.clone());
    let http = gluefleet_core::http::client().expect("http client");
    let connector = FirestoreConnector::new(target, http, &env).expect("connector");
    pipeline::build(connector, ROUTES, |raw: RawAction| raw.compile(), None)
}

fn event(id: &str, ty: &str, data: Value) -> RawMessage {
    pipeline::cloudevent(id, ty, data)
}

/// The testkit's fault proxy holds the first `batchWrite` past the route's
/// 1 s timeout and then delivers it anyway, from a task of its own, so the
/// emulator commits it after the connector has given up on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_increment_whose_batch_write_outlives_the_attempt_is_applied_once() {
    let emulator = FirestoreEmulator::start()
        .await
        .expect("Firestore emulator starts");
    let proxy = FaultProxy::start().await.expect("fault proxy starts");
    proxy.set_upstream(&format!("http://{}", emulator.host()));
    proxy.inject([Fault::ApplyLate(HOLD)]);
    let p = pipeline_through(&emulator, proxy.host());
    let outcome = p
        .process(&event(
            "v1",
            "page.visited",
            json!({"id": "home", "name": "Home"}),
        ))
        .await;
    match &outcome {
        Outcome::DeadLetter(dl) => {
            assert_eq!(dl.class, OUTCOME_UNKNOWN, "{dl:?}");
            assert_eq!(dl.attempts, 1, "not sent again in this delivery");
        }
        other => panic!("expected an outcome-unknown dead letter, got {other:?}"),
    }
    let visits = || async {
        emulator
            .get("pages/home")
            .await
            .expect("emulator readable")
            .map(|d| plain(&d["fields"])["visits"].clone())
    };
    // The held request reaches the emulator late, and is its only write.
    let deadline = tokio::time::Instant::now() + HOLD + Duration::from_secs(10);
    while visits().await.is_none() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        visits().await,
        Some(json!(1)),
        "one increment event, one increment"
    );
    let calls = proxy.calls();
    assert_eq!(calls.len(), 1, "the increment was sent once: {calls:#?}");
    assert!(calls[0].forwarded, "and it reached the emulator");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_write_cut_off_at_its_deadline_is_retried_and_acked() {
    let emulator = FirestoreEmulator::start()
        .await
        .expect("Firestore emulator starts");
    let p = pipeline(&emulator).await;
    let outcome = p
        .process(&event(
            "r1",
            "page.renamed",
            json!({"id": "about", "name": "About"}),
        ))
        .await;
    assert_eq!(outcome, Outcome::Ack(AckReason::Delivered));
    let doc = emulator
        .get("pages/about")
        .await
        .expect("emulator readable")
        .map(|d| plain(&d["fields"]));
    assert_eq!(doc.map(|d| d["name"].clone()), Some(json!("About")));
}
