//! The scriptable HTTP target, and the token endpoint a target checks tokens
//! against, behave as connector and fault tests rely on.

use std::time::{Duration, Instant};

use gluefleet_testkit::http_target::{HttpTarget, Reply};
use gluefleet_testkit::net;
use gluefleet_testkit::token::{TokenCheck, TokenServer};

/// A client without connection reuse, so each call opens a new connection
/// and "refused" really means nothing listens.
fn fresh_client() -> reqwest::Client {
    net::fresh_client().expect("building a reqwest client")
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

#[tokio::test]
async fn honoured_keys_answer_repeats_from_the_store_without_applying() {
    let target = HttpTarget::start().await.expect("start target");
    target.rule(|r| r.body.contains("down").then(|| Reply::status(503)));
    target.script([
        Reply::status(500),
        Reply::status(202)
            .header("x-order", "A-1")
            .body(r#"{"order":"A-1"}"#),
    ]);
    target.honour_idempotency_keys();
    target.honour_idempotency_keys(); // idempotent: keeps what is stored
    let client = fresh_client();
    let url = target.url();

    // A failure is not stored; the first success is.
    assert_eq!(post(&client, &url, "a", "{}").await.0, 500);
    assert_eq!(
        post(&client, &url, "a", "{}").await,
        (202, r#"{"order":"A-1"}"#.to_owned())
    );
    // The repeat would get the default 201; it gets the stored 202 instead,
    // with its headers and body.
    let repeat = client
        .post(&url)
        .header("Idempotency-Key", "a")
        .body("{}")
        .send()
        .await
        .expect("answer");
    assert_eq!(repeat.status().as_u16(), 202);
    assert_eq!(
        repeat
            .headers()
            .get("x-order")
            .and_then(|v| v.to_str().ok()),
        Some("A-1")
    );
    // A rule in front of the store still answers a repeat with its error.
    assert_eq!(post(&client, &url, "a", r#"{"down":1}"#).await.0, 503);
    assert_eq!(post(&client, &url, "b", "{}").await.0, 201);
    // No key: nothing to honour.
    let plain = client.post(&url).body("{}").send().await.expect("answer");
    assert_eq!(plain.status().as_u16(), 201);

    let marks: Vec<(Option<String>, u16, bool)> = target
        .requests_with_replays()
        .into_iter()
        .map(|(r, replayed)| (r.idempotency_key().map(str::to_owned), r.status, replayed))
        .collect();
    let a = Some("a".to_owned());
    assert_eq!(
        marks,
        [
            (a.clone(), 500, false),
            (a.clone(), 202, false),
            (a.clone(), 202, true),
            (a, 503, false),
            (Some("b".to_owned()), 201, false),
            (None, 201, false),
        ]
    );
    assert_eq!(target.replays(), 1);
    let applied = target.applied();
    assert_eq!(applied.get("a"), Some(&1), "the repeat was not applied");
    assert_eq!(applied.get("b"), Some(&1));
    assert_eq!(applied.len(), 2);
    assert_eq!(
        target.effects().get("a"),
        Some(&2),
        "effects keeps counting every 2xx"
    );
}

#[tokio::test]
async fn concurrent_first_requests_with_one_key_apply_once() {
    let target = HttpTarget::start().await.expect("start target");
    target.honour_idempotency_keys();
    target.set_delay(Duration::from_millis(200));
    let url = target.url();
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { post(&fresh_client(), &url, "same", "{}").await.0 })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.expect("task"), 201);
    }
    assert_eq!(target.applied().get("same"), Some(&1));
    assert_eq!(target.replays(), 7);
}

#[tokio::test]
async fn without_honoured_keys_applied_equals_effects() {
    let target = HttpTarget::start().await.expect("start target");
    let client = fresh_client();
    let url = target.url();
    assert_eq!(post(&client, &url, "k", "{}").await.0, 201);
    assert_eq!(post(&client, &url, "k", "{}").await.0, 201);
    assert_eq!(target.applied(), target.effects());
    assert_eq!(target.applied().get("k"), Some(&2));
    assert_eq!(target.replays(), 0);
    assert!(target.requests_with_replays().iter().all(|(_, r)| !r));
}

#[tokio::test]
async fn token_server_issues_expiring_tokens_a_target_can_check() {
    let tokens = TokenServer::start("gluefleet", "s3cret", Duration::from_secs(1))
        .await
        .expect("start token server");
    assert_eq!(tokens.lifetime(), Duration::from_secs(1));
    let client = fresh_client();
    let grant = |id: &str, secret: &str| {
        client
            .post(tokens.token_url())
            .basic_auth(id, Some(secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials&scope=orders.write")
    };

    let refused = grant("gluefleet", "wrong").send().await.expect("answer");
    assert_eq!(refused.status().as_u16(), 401);
    let refused: serde_json::Value = refused.json().await.expect("JSON error");
    assert_eq!(refused["error"], "invalid_client");
    let wrong_grant = client
        .post(tokens.token_url())
        .basic_auth("gluefleet", Some("s3cret"))
        .body("grant_type=password")
        .send()
        .await
        .expect("answer");
    assert_eq!(wrong_grant.status().as_u16(), 400);

    let answer = grant("gluefleet", "s3cret").send().await.expect("answer");
    assert_eq!(answer.status().as_u16(), 200);
    let answer: serde_json::Value = answer.json().await.expect("token JSON");
    assert_eq!(answer["token_type"], "Bearer");
    assert_eq!(answer["expires_in"], 1);
    let token = answer["access_token"].as_str().expect("access_token");
    assert_eq!(token, "tok-1");
    // Credentials in the body work too.
    let in_body = client
        .post(tokens.token_url())
        .body("grant_type=client_credentials&client_id=gluefleet&client_secret=s3cret")
        .send()
        .await
        .expect("answer");
    assert_eq!(in_body.status().as_u16(), 200);

    let issued = tokens.issued();
    assert_eq!(issued.len(), 2);
    assert_eq!(tokens.requests().len(), 4, "refusals are logged too");

    // The target refuses anything but a live token of this server.
    let target = HttpTarget::start().await.expect("start target");
    let verifier = tokens.verifier();
    target.rule(move |r| {
        (verifier.check_request(r) != TokenCheck::Valid).then(|| Reply::status(401))
    });
    let call = |auth: Option<String>| {
        let mut request = client.post(target.url()).body("{}");
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        async move { request.send().await.expect("answer").status().as_u16() }
    };
    assert_eq!(call(Some(format!("Bearer {token}"))).await, 201);
    assert_eq!(call(Some("Bearer tok-99".into())).await, 401);
    assert_eq!(call(None).await, 401);

    let verifier = tokens.verifier();
    let header = format!("Bearer {token}");
    assert_eq!(verifier.check(Some(&header)), TokenCheck::Valid);
    assert_eq!(verifier.check(Some("Basic abc")), TokenCheck::Missing);
    assert_eq!(verifier.check(Some("Bearer nope")), TokenCheck::Unknown);
    let expiry = issued[0].at + Duration::from_secs(1);
    tokio::time::sleep(expiry.saturating_duration_since(Instant::now())).await;
    assert_eq!(verifier.check(Some(&header)), TokenCheck::Expired);
    assert_eq!(
        call(Some(header)).await,
        401,
        "expired by the server's clock"
    );
}
