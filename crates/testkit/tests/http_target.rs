//! The scriptable HTTP target behaves as connector tests rely on.

use std::time::{Duration, Instant};

use gluefleet_testkit::http_target::{HttpTarget, Reply};

/// A client without connection reuse, so each call opens a new connection
/// and "refused" really means nothing listens.
fn fresh_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("building a reqwest client")
}

async fn post(client: &reqwest::Client, url: &str, key: &str, body: &str) -> (u16, String) {
    let response = client
        .post(url)
        .header("Idempotency-Key", key)
        .header("Content-Type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("target answers");
    let status = response.status().as_u16();
    (status, response.text().await.expect("reading body"))
}

#[tokio::test]
async fn default_answer_and_log() {
    let target = HttpTarget::start().await.expect("start target");
    let client = fresh_client();
    let url = format!("{}/v1/orders?dry=1", target.url());
    let response = client
        .put(&url)
        .header("X-Custom", "a")
        .header("Idempotency-Key", "k-1")
        .body(r#"{"id":7}"#)
        .send()
        .await
        .expect("target answers");
    assert_eq!(response.status().as_u16(), 201);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    assert_eq!(response.text().await.expect("body"), r#"{"ok":true}"#);

    let log = target.requests();
    assert_eq!(log.len(), 1);
    let request = &log[0];
    assert_eq!(request.method, "PUT");
    assert_eq!(request.path, "/v1/orders?dry=1");
    assert_eq!(
        request.headers.get("x-custom").map(String::as_str),
        Some("a")
    );
    assert_eq!(request.idempotency_key(), Some("k-1"));
    assert_eq!(request.json(), Some(serde_json::json!({"id": 7})));
    assert_eq!(request.status, 201);
}

#[tokio::test]
async fn script_then_default() {
    let target = HttpTarget::start().await.expect("start target");
    target.script([
        Reply::status(503).body("down"),
        Reply::status(429).header("Retry-After", "2"),
    ]);
    let client = fresh_client();
    let url = format!("{}/a", target.url());

    let (status, body) = post(&client, &url, "k", "{}").await;
    assert_eq!((status, body.as_str()), (503, "down"));

    let response = client
        .get(format!("{}/other", target.url()))
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status().as_u16(), 429);
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("2")
    );

    let (status, _) = post(&client, &url, "k", "{}").await;
    assert_eq!(status, 201, "default resumes after the script");
    let statuses: Vec<u16> = target.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [503, 429, 201]);
}

#[tokio::test]
async fn rules_win_over_script_and_do_not_consume_it() {
    let target = HttpTarget::start().await.expect("start target");
    target.rule(|r| {
        r.body
            .contains("poison")
            .then(|| Reply::status(422).body(r#"{"error":"bad"}"#))
    });
    target.rule(|r| (r.idempotency_key() == Some("dup")).then(|| Reply::status(409)));
    target.script([Reply::status(500)]);
    let client = fresh_client();
    let url = target.url();

    assert_eq!(post(&client, &url, "a", r#"{"x":"poison"}"#).await.0, 422);
    assert_eq!(post(&client, &url, "dup", "{}").await.0, 409);
    assert_eq!(
        post(&client, &url, "b", "{}").await.0,
        500,
        "script still pending"
    );
    assert_eq!(post(&client, &url, "b", "{}").await.0, 201);
}

#[tokio::test]
async fn effects_count_two_xx_per_key() {
    let target = HttpTarget::start().await.expect("start target");
    target.rule(|r| (r.idempotency_key() == Some("never")).then(|| Reply::status(400)));
    target.script([Reply::status(500)]);
    let client = fresh_client();
    let url = target.url();

    assert_eq!(post(&client, &url, "one", "{}").await.0, 500);
    assert_eq!(post(&client, &url, "one", "{}").await.0, 201);
    assert_eq!(post(&client, &url, "two", "{}").await.0, 201);
    assert_eq!(post(&client, &url, "two", "{}").await.0, 201);
    assert_eq!(post(&client, &url, "never", "{}").await.0, 400);

    let effects = target.effects();
    assert_eq!(effects.get("one"), Some(&1));
    assert_eq!(effects.get("two"), Some(&2));
    assert_eq!(effects.get("never"), None);
    assert_eq!(effects.len(), 2);
}

#[tokio::test]
async fn delay_keeps_requests_in_flight() {
    let target = HttpTarget::start().await.expect("start target");
    target.set_delay(Duration::from_millis(400));
    let url = target.url();
    let started = Instant::now();
    let call = tokio::spawn(async move {
        fresh_client()
            .post(url)
            .body("{}")
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    assert!(
        target
            .wait_for(|log| log.len() == 1, Duration::from_secs(5))
            .await,
        "request is logged on arrival"
    );
    assert!(!call.is_finished(), "answer is still being delayed");
    let status = call.await.expect("task").expect("answer");
    assert_eq!(status, 201);
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert!(
        !target
            .wait_for(|log| log.len() == 2, Duration::from_millis(100))
            .await,
        "wait_for gives up"
    );
}

#[tokio::test]
async fn stop_refuses_connections_and_restart_keeps_log() {
    let target = HttpTarget::start().await.expect("start target");
    let client = fresh_client();
    let url = target.url();
    assert_eq!(post(&client, &url, "a", "{}").await.0, 201);

    target.stop();
    let err = client
        .post(&url)
        .body("{}")
        .send()
        .await
        .expect_err("nothing listens after stop");
    assert!(err.is_connect(), "connection refused, got {err:?}");
    target.stop(); // idempotent

    target.restart().await.expect("restart on the same port");
    assert_eq!(target.url(), url);
    assert_eq!(post(&client, &url, "b", "{}").await.0, 201);
    let keys: Vec<_> = target
        .requests()
        .iter()
        .map(|r| r.idempotency_key().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(keys, ["a", "b"], "log survives the restart");

    // A second stop/restart cycle on the explicitly bound port.
    target.stop();
    assert!(client.get(&url).send().await.is_err());
    target.restart().await.expect("second restart");
    assert_eq!(post(&client, &url, "c", "{}").await.0, 201);
}

#[tokio::test]
async fn pooled_connections_fail_after_stop() {
    let target = HttpTarget::start().await.expect("start target");
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let url = target.url();
    assert_eq!(
        client
            .get(&url)
            .send()
            .await
            .expect("answer")
            .status()
            .as_u16(),
        201
    );
    target.stop();
    // Give the server a moment to close the idle keep-alive connection.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        client.get(&url).send().await.is_err(),
        "no answer from a stopped target"
    );
}

#[tokio::test]
async fn large_bodies_up_to_the_limit() {
    let target = HttpTarget::start().await.expect("start target");
    let client = fresh_client();
    let body = "x".repeat(5 * 1024 * 1024);
    let (status, _) = post(&client, &target.url(), "big", &body).await;
    assert_eq!(status, 201);
    assert_eq!(target.requests()[0].body.len(), body.len());
}
