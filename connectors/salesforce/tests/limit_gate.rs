//! The daily-limit gate through the real client: after a closed spell one
//! call looks again, and however that call ends the gate opens or closes
//! again; it never stays shut on a look that is gone. The far side is the
//! testkit's HTTP target, which can fail, stall or stay silent on cue.

use gluefleet_core::ConnectorError;
use gluefleet_core::auth::Credential;
use gluefleet_salesforce::client::Client;
use gluefleet_salesforce::limits::Limits;
use gluefleet_testkit::free_port;
use gluefleet_testkit::http_target::{HttpTarget, Reply};
use secrecy::SecretString;
use std::time::Duration;

const PATH: &str = "/sobjects/Account/External_Id__c/A-1";

/// A client whose gate is closed and whose backoff is already over: the
/// next call is the probe.
fn client_after_a_closed_spell() -> Client {
    let http = gluefleet_core::http::client().expect("http client");
    let limits = Limits::new(0.8, 0.95, Duration::from_millis(1), Duration::ZERO);
    let client = Client::new(http, "v62.0".into(), None, limits);
    client.limits.exceeded();
    client
}

fn credential(instance: &str) -> Credential {
    Credential::new(
        http::header::AUTHORIZATION,
        SecretString::from("Bearer t"),
        1,
    )
    .with_endpoint(Some(instance.to_owned()))
}

async fn call(client: &Client, instance: &str, timeout: Duration) -> Result<u16, ConnectorError> {
    client
        .send(
            Some(&credential(instance)),
            reqwest::Method::PATCH,
            PATH,
            Some(&serde_json::json!({"Name": "A"})),
            timeout,
        )
        .await
        .map(|a| a.status)
}

/// After the probe ended, the next call must reach the org (and not be
/// refused by the gate for a probe that is gone), and the one after it
/// too once that answer carried the usage.
async fn gate_is_not_stuck(client: &Client, target: &HttpTarget) {
    let before = target.requests().len();
    target.script([
        Reply::status(204).header("Sforce-Limit-Info", "api-usage=10/1000"),
        Reply::status(204).header("Sforce-Limit-Info", "api-usage=11/1000"),
    ]);
    let next = call(client, &target.url(), Duration::from_secs(5)).await;
    assert_eq!(
        next.as_ref().map_err(ToString::to_string),
        Ok(&204),
        "the next call looks again"
    );
    let after = call(client, &target.url(), Duration::from_secs(5)).await;
    assert_eq!(
        after.map_err(|e| e.to_string()),
        Ok(204),
        "and the gate is open"
    );
    assert_eq!(target.requests().len(), before + 2);
    assert_eq!(client.limits.usage(), (11, 1000));
}

#[tokio::test]
async fn a_probe_answered_5xx_without_the_header_does_not_shut_the_gate() {
    let target = HttpTarget::start().await.expect("target");
    let client = client_after_a_closed_spell();
    target.script([Reply::status(503)]);
    let probe = call(&client, &target.url(), Duration::from_secs(5)).await;
    assert!(probe.is_err_and(|e| e.is_transient()));
    gate_is_not_stuck(&client, &target).await;
}

#[tokio::test]
async fn a_probe_that_cannot_connect_does_not_shut_the_gate() {
    let target = HttpTarget::start().await.expect("target");
    let client = client_after_a_closed_spell();
    let nobody = format!("http://127.0.0.1:{}", free_port());
    let probe = call(&client, &nobody, Duration::from_secs(5)).await;
    assert!(
        probe
            .as_ref()
            .is_err_and(|e| e.is_transient() && e.http_status().is_none()),
        "{probe:?}"
    );
    gate_is_not_stuck(&client, &target).await;
}

#[tokio::test]
async fn a_probe_that_times_out_does_not_shut_the_gate() {
    let target = HttpTarget::start().await.expect("target");
    let client = client_after_a_closed_spell();
    target.set_delay(Duration::from_secs(3));
    let probe = call(&client, &target.url(), Duration::from_millis(200)).await;
    assert!(probe.is_err_and(|e| e.is_transient()));
    target.set_delay(Duration::ZERO);
    gate_is_not_stuck(&client, &target).await;
}

#[tokio::test]
async fn a_probe_whose_attempt_is_dropped_does_not_shut_the_gate() {
    let target = HttpTarget::start().await.expect("target");
    let client = client_after_a_closed_spell();
    target.set_delay(Duration::from_secs(3));
    // The pipeline's deadline, or a shutdown, drops the attempt mid-call.
    let dropped = tokio::time::timeout(
        Duration::from_millis(200),
        call(&client, &target.url(), Duration::from_secs(30)),
    )
    .await;
    assert!(dropped.is_err(), "the attempt was cut off");
    assert_eq!(target.requests().len(), 1, "the probe had gone out");
    target.set_delay(Duration::ZERO);
    gate_is_not_stuck(&client, &target).await;
}

#[tokio::test]
async fn a_probe_taken_without_the_header_reopens_the_gate() {
    let target = HttpTarget::start().await.expect("target");
    let client = client_after_a_closed_spell();
    target.script([Reply::status(204)]);
    let probe = call(&client, &target.url(), Duration::from_secs(5)).await;
    assert_eq!(probe.map_err(|e| e.to_string()), Ok(204));
    gate_is_not_stuck(&client, &target).await;
}

#[tokio::test]
async fn a_probe_refused_for_the_limit_closes_the_gate_again() {
    let target = HttpTarget::start().await.expect("target");
    let http = gluefleet_core::http::client().expect("http client");
    // A real socket cannot run on paused time: a short real backoff.
    let backoff = Duration::from_millis(300);
    let limits = Limits::new(0.8, 0.95, Duration::from_millis(1), backoff);
    let client = Client::new(http, "v62.0".into(), None, limits);
    client.limits.exceeded();
    tokio::time::sleep(backoff + Duration::from_millis(50)).await;
    target.script([Reply::status(403)
        .header("Sforce-Limit-Info", "api-usage=1000/1000")
        .body(
            r#"[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#,
        )]);
    let probe = call(&client, &target.url(), Duration::from_secs(5)).await;
    assert!(probe.is_err_and(|e| e.is_rate_limited()));
    let gated = call(&client, &target.url(), Duration::from_secs(5)).await;
    assert!(
        gated.is_err_and(|e| e.is_rate_limited() && e.http_status().is_none()),
        "refused by the gate, not by the org"
    );
    assert_eq!(target.requests().len(), 1, "no call while closed again");
}

/// A client with an open gate and the default thresholds.
fn fresh_client(backoff: Duration) -> Client {
    let http = gluefleet_core::http::client().expect("http client");
    let limits = Limits::new(0.8, 0.95, Duration::from_millis(1), backoff);
    Client::new(http, "v62.0".into(), None, limits)
}

#[tokio::test]
async fn a_header_near_the_limit_in_either_figure_closes_the_gate() {
    for (header, says) in [
        (
            "api-usage=96/100; api-bursts=1/750",
            "the org's daily API limit is nearly spent (96/100)",
        ),
        (
            "api-usage=25/5000, per-app-api-usage=240/250(appName=gluefleet-erp)",
            "the connected app gluefleet-erp's API allocation is nearly spent (240/250)",
        ),
    ] {
        let target = HttpTarget::start().await.expect("target");
        let client = fresh_client(Duration::from_secs(300));
        target.script([Reply::status(204).header("Sforce-Limit-Info", header)]);
        let first = call(&client, &target.url(), Duration::from_secs(5)).await;
        assert_eq!(first.map_err(|e| e.to_string()), Ok(204), "{header}");
        let gated = call(&client, &target.url(), Duration::from_secs(5))
            .await
            .expect_err("the gate is closed");
        assert!(
            gated.is_rate_limited() && gated.http_status().is_none(),
            "{header}: {gated}"
        );
        assert!(gated.to_string().contains(says), "{header}: {gated}");
        assert_eq!(target.requests().len(), 1, "{header}: no second call");
    }
}
