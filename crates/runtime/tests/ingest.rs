//! `gluefleet-ingest` against the real Pub/Sub emulator: every 202 is a
//! message on the topic, every refusal is a non-2xx naming what is wrong,
//! and nothing refused is published. Callers are API keys, Basic
//! credentials and Google ID tokens signed by a local key set.

use base64::Engine as _;
use gluefleet_runtime::ingest::auth::sha256_hex;
use gluefleet_runtime::ingest::config::IngestConfig;
use gluefleet_runtime::ingest::schema::Schemas;
use gluefleet_runtime::ingest::{Ingest, router};
use gluefleet_runtime::pubsub::Connection;
use gluefleet_testkit::oidc::{OidcKeys, push_claims, sign};
use gluefleet_testkit::pubsub::{PubsubEmulator, SubscriptionOptions};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

const AUDIENCE: &str = "gluefleet-ingest";
const WORKFLOWS: &str = "workflows@p.iam.gserviceaccount.com";

fn config(project: &str, jwks_url: &str) -> IngestConfig {
    IngestConfig::parse(&format!(
        r#"
[ingest]
max_body_bytes = 4096
publish_timeout = "3s"

[topics.orders]
topic = "projects/{project}/topics/orders"
event_type = "order.created"

[topics.partners]
topic = "projects/{project}/topics/partners"

[[credentials]]
name = "sap"
kind = "api_key"
key_sha256 = "{sap}"
topics = ["orders", "partners"]

[[credentials]]
name = "legacy"
kind = "basic"
username = "legacy"
password_sha256 = "{legacy}"
topics = ["orders"]

[[credentials]]
name = "workflows"
kind = "google_oidc"
audience = "{AUDIENCE}"
service_account = "{WORKFLOWS}"
jwks_url = "{jwks_url}"
topics = ["orders"]
"#,
        sap = sha256_hex("sap-key"),
        legacy = sha256_hex("s3cret"),
    ))
    .expect("the test config is valid")
}

async fn serve(emulator: &PubsubEmulator, jwks_url: &str) -> String {
    let connection = Connection::with_emulator(Some(&emulator.host()));
    let state = Arc::new(
        Ingest::new(
            config(emulator.project(), jwks_url),
            Schemas::default(),
            &connection,
        )
        .await
        .expect("publishers"),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let url = format!("http://{}", listener.local_addr().expect("bound"));
    tokio::spawn(async move { axum::serve(listener, router(state)).await });
    url
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_202_is_published_and_every_refusal_is_named() {
    let mut emulator = PubsubEmulator::start()
        .await
        .expect("the Pub/Sub emulator starts");
    for t in ["orders", "partners"] {
        emulator.create_topic(t).await.expect("topic");
        emulator
            .create_subscription(&format!("{t}-check"), t, SubscriptionOptions::default())
            .await
            .expect("subscription");
    }
    let keys = OidcKeys::start().await.expect("JWKS server");
    let url = serve(&emulator, &keys.jwks_url()).await;
    let http = reqwest::Client::new();
    let post = |path: &str| http.post(format!("{url}/v1/events/{path}"));

    // 1,000 concurrent posts: 1,000 confirmed message ids, 1,000 messages.
    let sends = (0..1000).map(|i| {
        post("orders")
            .header("x-api-key", "sap-key")
            .header("idempotency-key", format!("order-{i}"))
            .json(&json!({"order": i}))
            .send()
    });
    let answers = futures::future::join_all(sends).await;
    let mut confirmed = BTreeSet::new();
    for a in answers {
        let a = a.expect("answered");
        assert_eq!(a.status(), 202);
        let body: Value = a.json().await.expect("JSON");
        confirmed.insert(body["message_id"].as_str().expect("message id").to_owned());
    }
    assert_eq!(confirmed.len(), 1000);
    let pulled = emulator
        .drain("orders-check", Duration::from_secs(1))
        .await
        .expect("pulled");
    let on_topic: BTreeSet<String> = pulled.iter().map(|m| m.message_id.clone()).collect();
    assert_eq!(on_topic, confirmed, "every 202 is exactly one message");
    let m = &pulled[0];
    assert_eq!(
        m.attributes.get("ce-type").map(String::as_str),
        Some("order.created")
    );
    assert_eq!(
        m.attributes.get("ce-source").map(String::as_str),
        Some("//gluefleet/ingest/sap")
    );
    assert!(
        m.attributes
            .get("ce-id")
            .is_some_and(|id| id.starts_with("order-"))
    );

    // A repeat of an event id: the first message id, nothing published.
    let first = post("orders")
        .header("x-api-key", "sap-key")
        .header("idempotency-key", "order-7")
        .json(&json!({"order": 7}))
        .send()
        .await
        .expect("answered");
    assert_eq!(first.status(), 202);
    assert_eq!(
        first
            .headers()
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );

    // CloudEvents binary and structured, Basic auth.
    let binary = post("orders")
        .header("authorization", basic("legacy", "s3cret"))
        .header("ce-specversion", "1.0")
        .header("ce-id", "ce-1")
        .header("ce-source", "//legacy/shop")
        .header("ce-type", "order.paid")
        .header("content-type", "application/json")
        .body(r#"{"order": "A1"}"#)
        .send()
        .await
        .expect("answered");
    assert_eq!(binary.status(), 202);
    let structured = post("partners").header("authorization", "Bearer sap-key")
        .header("content-type", "application/cloudevents+json")
        .body(json!({"specversion": "1.0", "id": "bp-1", "source": "//sap/prd", "type": "partner.created", "data": {"bp": 1}}).to_string())
        .send().await.expect("answered");
    assert_eq!(structured.status(), 202);
    // A Google ID token of the allowed account (Workflows, say).
    let token = sign(&push_claims(AUDIENCE, WORKFLOWS));
    let oidc = post("orders")
        .bearer_auth(&token)
        .header("idempotency-key", "wf-1")
        .json(&json!({"order": "W1"}))
        .send()
        .await
        .expect("answered");
    assert_eq!(oidc.status(), 202);

    // Refusals: each a non-2xx naming what is wrong.
    let refusals: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (post("orders").json(&json!({})), 401, "no credential"),
        (
            post("orders").header("x-api-key", "wrong").json(&json!({})),
            401,
            "not known",
        ),
        (
            post("orders")
                .header("authorization", basic("legacy", "nope"))
                .json(&json!({})),
            401,
            "not known",
        ),
        (
            post("partners")
                .header("authorization", basic("legacy", "s3cret"))
                .json(&json!({})),
            403,
            "may not publish to topic",
        ),
        (
            post("invoices")
                .header("x-api-key", "sap-key")
                .json(&json!({})),
            404,
            "unknown topic",
        ),
        (
            post("orders")
                .bearer_auth(sign(&push_claims(
                    AUDIENCE,
                    "other@p.iam.gserviceaccount.com",
                )))
                .json(&json!({})),
            401,
            "not valid for any google_oidc credential",
        ),
        (
            post("orders")
                .bearer_auth(sign(&push_claims("another-audience", WORKFLOWS)))
                .json(&json!({})),
            401,
            "not valid for any google_oidc credential",
        ),
        (
            post("partners").bearer_auth(&token).json(&json!({})),
            403,
            "may not publish to topic",
        ),
        (
            post("orders")
                .header("x-api-key", "sap-key")
                .body("not json"),
            400,
            "the body is not JSON",
        ),
        (
            post("partners")
                .header("x-api-key", "sap-key")
                .json(&json!({"a": 1})),
            400,
            "no event type",
        ),
        (
            post("orders")
                .header("x-api-key", "sap-key")
                .header("ce-specversion", "1.0")
                .header("ce-id", "x")
                .header("ce-type", "t")
                .body("{}"),
            400,
            "ce-source",
        ),
        (
            post("orders")
                .header("x-api-key", "sap-key")
                .json(&json!({"blob": "x".repeat(5000)})),
            413,
            "",
        ),
    ];
    for (request, status, needle) in refusals {
        let a = request.send().await.expect("answered");
        assert_eq!(a.status(), status, "{needle}");
        let text = a.text().await.expect("body");
        assert!(text.contains(needle), "{needle:?} in {text}");
    }
    let after: Vec<_> = emulator
        .drain("orders-check", Duration::from_millis(500))
        .await
        .expect("pulled");
    let mut ids: Vec<&str> = after
        .iter()
        .filter_map(|m| m.attributes.get("ce-id").map(String::as_str))
        .collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        ["ce-1", "wf-1"],
        "the binary CloudEvent and the ID-token post: no refusal, no repeat published"
    );
    assert_eq!(
        emulator
            .drain("partners-check", Duration::from_millis(500))
            .await
            .expect("pulled")
            .len(),
        1
    );

    // Pub/Sub gone: 503 with Retry-After, never a 202.
    emulator.stop();
    let down = post("orders")
        .header("x-api-key", "sap-key")
        .json(&json!({"order": "late"}))
        .send()
        .await
        .expect("answered");
    assert_eq!(down.status(), 503);
    assert_eq!(
        down.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    assert!(down.text().await.expect("body").contains("retry"));
}

/// JSON Schemas per event type, read from files next to the config: data
/// that does not match is answered 400 naming each violation and is not
/// published; data that matches is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_violations_are_named_and_not_published() {
    let emulator = PubsubEmulator::start()
        .await
        .expect("the Pub/Sub emulator starts");
    emulator.create_topic("orders").await.expect("topic");
    emulator
        .create_subscription("orders-check", "orders", SubscriptionOptions::default())
        .await
        .expect("subscription");
    let dir = std::env::temp_dir().join(format!("gluefleet-ingest-schema-{}", emulator.project()));
    std::fs::create_dir_all(dir.join("schemas")).expect("a config dir");
    std::fs::write(
        dir.join("schemas/order-created.json"),
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "required": ["order", "amount"],
            "properties": {
                "order": {"type": "string", "pattern": "^o-[0-9]+$"},
                "amount": {"type": "number", "exclusiveMinimum": 0}
            }
        })
        .to_string(),
    )
    .expect("schema written");
    let path = dir.join("ingest.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[topics.orders]
topic = "projects/{project}/topics/orders"
event_type = "order.created"

[topics.orders.schemas]
"order.created" = "schemas/order-created.json"   # relative to this file

[[credentials]]
name = "sap"
kind = "api_key"
key_sha256 = "{sap}"
topics = ["orders"]
"#,
            project = emulator.project(),
            sap = sha256_hex("sap-key"),
        ),
    )
    .expect("config written");
    let config = IngestConfig::load(&path).expect("the config loads");
    let schemas = Schemas::load(&config).expect("the schema compiles");
    let connection = Connection::with_emulator(Some(&emulator.host()));
    let state = Arc::new(
        Ingest::new(config, schemas, &connection)
            .await
            .expect("publishers"),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let url = format!(
        "http://{}/v1/events/orders",
        listener.local_addr().expect("bound")
    );
    tokio::spawn(async move { axum::serve(listener, router(state)).await });
    let http = reqwest::Client::new();

    // Plain JSON and a structured CloudEvent, both breaking the schema.
    let bad = http
        .post(&url)
        .header("x-api-key", "sap-key")
        .json(&json!({"order": "42", "amount": 0}))
        .send()
        .await
        .expect("answered");
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.expect("JSON");
    let error = body["error"].as_str().expect("an error");
    assert!(error.contains("order-created.json"), "{error}");
    let mut paths: Vec<&str> = body["violations"]
        .as_array()
        .expect("violations")
        .iter()
        .filter_map(|v| v["path"].as_str())
        .collect();
    paths.sort_unstable();
    assert_eq!(paths, ["/amount", "/order"], "{body}");
    let structured = http
        .post(&url)
        .header("x-api-key", "sap-key")
        .header("content-type", "application/cloudevents+json")
        .body(
            json!({"specversion": "1.0", "id": "e-1", "source": "//sap", "type": "order.created",
                   "data": {"amount": 5}})
            .to_string(),
        )
        .send()
        .await
        .expect("answered");
    assert_eq!(structured.status(), 400);
    let body: Value = structured.json().await.expect("JSON");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("\"order\" is a required property")),
        "{body}"
    );
    assert_eq!(
        emulator
            .drain("orders-check", Duration::from_millis(500))
            .await
            .expect("pulled")
            .len(),
        0,
        "nothing refused is published"
    );

    // Matching data, and a type without a schema: both published.
    let good = http
        .post(&url)
        .header("x-api-key", "sap-key")
        .json(&json!({"order": "o-42", "amount": 9.5}))
        .send()
        .await
        .expect("answered");
    assert_eq!(good.status(), 202);
    let other = http
        .post(format!("{url}?type=order.note"))
        .header("x-api-key", "sap-key")
        .json(&json!({"free": "form"}))
        .send()
        .await
        .expect("answered");
    assert_eq!(other.status(), 202);
    assert_eq!(
        emulator
            .drain("orders-check", Duration::from_secs(1))
            .await
            .expect("pulled")
            .len(),
        2
    );
    let _ = std::fs::remove_dir_all(&dir);
}
