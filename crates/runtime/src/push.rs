//! Push mode (`gluefleet-<connector> serve`): Pub/Sub push deliveries and
//! CloudEvents over HTTP, run through the same engine and pipeline as pull.
//!
//! Each request becomes one [`Delivery`] whose [`Acker`] is the HTTP answer:
//!
//! | outcome | answer |
//! |---|---|
//! | acked (delivered, duplicate, already done, dropped) | 204 |
//! | dead-lettered, and the dead letter published | 204 |
//! | dead letter not published | 503: Pub/Sub redelivers, nothing is lost |
//! | nacked (retryable, rate limited, in flight elsewhere) | 503 |
//!
//! A nack is answered at once, never held: the push subscription's retry
//! policy spaces redeliveries (its backoff replaces the delayed nacks of
//! pull mode).
//!
//! Bodies read: the wrapped push body (`{"message": {...}, "subscription",
//! "deliveryAttempt"}`), CloudEvents HTTP binary mode (`ce-*` headers) and
//! structured mode (`application/cloudevents+json`), and the unwrapped push
//! body (`pushConfig.noWrapper`, metadata in `x-goog-pubsub-*` headers).
//!
//! Every request must carry a Google-signed OIDC token for the configured
//! audience from the configured service account ([`PushAuth`]), unless the
//! config says `auth = "none"` (the emulator pushes without a token).

use crate::source::{Acker, Delivery, Verdict};
use crate::worker::Engine;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use gluefleet_core::{ConfigError, Connector, RawMessage};
use google_cloud_auth::credentials::idtoken::verifier::{Builder, Verifier};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// Google's issuers of ID tokens.
const ISSUERS: [&str; 2] = ["https://accounts.google.com", "accounts.google.com"];

/// How requests are authenticated.
#[derive(Clone, Copy, Debug, Default, Deserialize, schemars::JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PushAuthKind {
    /// A Google-signed OIDC token on every request (default).
    #[default]
    Oidc,
    /// None at all: only for the Pub/Sub emulator, which sends no token.
    /// Anyone who can reach the port can then deliver events.
    None,
}

/// `[push]`: the `serve` mode's endpoint.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PushSettings {
    /// `oidc` (default) or `none`.
    pub auth: PushAuthKind,
    /// The token's `aud`: the push subscription's `oidcToken.audience`
    /// (by default the push endpoint URL). Required with `oidc`.
    pub audience: Option<String>,
    /// The push subscription's service account: the token's `email`, which
    /// must be verified. Required with `oidc`.
    pub service_account: Option<String>,
    /// Where Google's signing keys are read (default Google's JWKS). Tests
    /// only: a worker trusting another key set trusts whoever holds it.
    pub jwks_url: Option<String>,
    /// Largest request body (default 14 MiB: Pub/Sub's 10 MB message,
    /// base64 and the envelope). Larger ones get 413.
    pub max_body_bytes: usize,
    /// Every request is answered within this (default 8 s), counted from its
    /// arrival: retries, backoffs and `Retry-After` waits that would end later
    /// become a 503 now. Pub/Sub counts a push as failed once the
    /// subscription's ack deadline (10 s unless set) passes and pushes it
    /// again, so an answer after that only doubles the work. Keep it below
    /// the ack deadline and Cloud Run's request timeout.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub answer_within: Duration,
}

impl Default for PushSettings {
    fn default() -> Self {
        Self {
            auth: PushAuthKind::Oidc,
            audience: None,
            service_account: None,
            jwks_url: None,
            max_body_bytes: 14 * 1024 * 1024,
            answer_within: Duration::from_secs(8),
        }
    }
}

/// The check every request passes first.
#[derive(Debug)]
pub enum PushAuth {
    /// Verify the OIDC token.
    Oidc {
        /// Signature, `iss`, `aud`, `exp`.
        verifier: Box<Verifier>,
        /// The expected `email`.
        service_account: String,
    },
    /// Take every request.
    None,
}

/// Why a request was refused before its event was looked at.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No token, or one that is not valid: 401.
    Unauthenticated(String),
    /// A valid token of another account: 403.
    Forbidden(String),
}

impl PushAuth {
    /// The check `settings` ask for; a missing setting is named.
    pub fn new(settings: &PushSettings) -> Result<Self, ConfigError> {
        match settings.auth {
            PushAuthKind::None => Ok(PushAuth::None),
            PushAuthKind::Oidc => {
                let audience = settings.audience.clone().ok_or_else(|| {
                    ConfigError::setting(
                        "push.audience",
                        "push.audience is not set: the push subscription's OIDC audience (its push endpoint URL by default); or push.auth = \"none\" for the emulator",
                    )
                })?;
                let service_account = settings.service_account.clone().ok_or_else(|| {
                    ConfigError::setting(
                        "push.service_account",
                        "push.service_account is not set: the email of the push subscription's service account",
                    )
                })?;
                let mut builder = Builder::new([audience]);
                if let Some(url) = &settings.jwks_url {
                    builder = builder.with_jwks_url(url.clone());
                }
                Ok(PushAuth::Oidc {
                    verifier: Box::new(builder.build()),
                    service_account,
                })
            }
        }
    }

    /// Checks a request's `Authorization`.
    pub async fn check(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let PushAuth::Oidc {
            verifier,
            service_account,
        } = self
        else {
            return Ok(());
        };
        let token = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| Refusal::Unauthenticated("no bearer token".into()))?;
        let claims = verifier
            .verify(token)
            .await
            .map_err(|e| Refusal::Unauthenticated(format!("the token is not valid: {e}")))?;
        let iss = claims
            .get("iss")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        if !ISSUERS.contains(&iss) {
            return Err(Refusal::Unauthenticated(format!(
                "the token's issuer {iss:?} is not Google"
            )));
        }
        let email = claims.get("email").and_then(|v| v.as_str());
        let verified = claims
            .get("email_verified")
            .and_then(serde_json::Value::as_bool);
        match (email, verified) {
            (Some(e), Some(true)) if e == service_account => Ok(()),
            (Some(e), Some(true)) => Err(Refusal::Forbidden(format!(
                "the token is {e}'s, not the push subscription's {service_account}"
            ))),
            _ => Err(Refusal::Forbidden("the token has no verified email".into())),
        }
    }
}

/// The wrapped push body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wrapped {
    message: PushedMessage,
    #[serde(default)]
    delivery_attempt: Option<i32>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PushedMessage {
    #[serde(default)]
    data: Option<String>,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    /// Pub/Sub sends each id and time twice, camelCase and snake_case.
    #[serde(default, rename = "messageId")]
    message_id: Option<String>,
    #[serde(default, rename = "message_id")]
    message_id_snake: Option<String>,
    #[serde(default, rename = "publishTime")]
    publish_time: Option<String>,
    #[serde(default, rename = "publish_time")]
    publish_time_snake: Option<String>,
    #[serde(default)]
    ordering_key: Option<String>,
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn publish_time(text: Option<&str>) -> Option<std::time::SystemTime> {
    text.and_then(|t| humantime::parse_rfc3339_weak(t.trim_end_matches('Z')).ok())
}

/// CloudEvents HTTP binary mode: the event's context is in the `ce-*`
/// headers (and `content-type`), which become the message's attributes as
/// the Pub/Sub binding spells them.
pub(crate) fn cloudevent_attributes(
    headers: &HeaderMap,
) -> Result<BTreeMap<String, String>, String> {
    let mut attributes = BTreeMap::new();
    for (name, value) in headers {
        let name = name.as_str();
        if name.starts_with("ce-") || name == "content-type" {
            let value = value
                .to_str()
                .map_err(|_| format!("header {name} is not text"))?;
            attributes.insert(name.to_owned(), value.to_owned());
        }
    }
    Ok(attributes)
}

/// The message a request carries. A body that is not one of the forms is
/// an error naming what is wrong (answered 400: Pub/Sub would redeliver
/// it forever, so the subscription's dead-letter policy takes it).
pub fn message_of(headers: &HeaderMap, body: &[u8]) -> Result<RawMessage, String> {
    let content_type = header(headers, "content-type").unwrap_or_default();
    if header(headers, "ce-specversion").is_some() {
        let attributes = cloudevent_attributes(headers)?;
        let id = attributes.get("ce-id").cloned().unwrap_or_default();
        return Ok(RawMessage {
            data: body.to_vec(),
            attributes,
            message_id: id,
            ..RawMessage::default()
        });
    }
    if content_type.starts_with("application/cloudevents+json") {
        return Ok(RawMessage {
            data: body.to_vec(),
            message_id: header(headers, "x-goog-pubsub-message-id")
                .unwrap_or_default()
                .to_owned(),
            ..RawMessage::default()
        });
    }
    if let Some(id) = header(headers, "x-goog-pubsub-message-id") {
        // Unwrapped (`noWrapper`): the body is the data.
        return Ok(RawMessage {
            data: body.to_vec(),
            message_id: id.to_owned(),
            publish_time: publish_time(header(headers, "x-goog-pubsub-publish-time")),
            ..RawMessage::default()
        });
    }
    let wrapped: Wrapped = serde_json::from_slice(body)
        .map_err(|e| format!("the body is not a Pub/Sub push message ({e}), nor a CloudEvent"))?;
    let m = wrapped.message;
    let data = match m.data {
        None => Vec::new(),
        Some(d) => base64::engine::general_purpose::STANDARD
            .decode(d.as_bytes())
            .map_err(|e| format!("message.data is not base64: {e}"))?,
    };
    Ok(RawMessage {
        data,
        attributes: m.attributes,
        message_id: m.message_id.or(m.message_id_snake).unwrap_or_default(),
        publish_time: publish_time(m.publish_time.or(m.publish_time_snake).as_deref()),
        ordering_key: m.ordering_key.unwrap_or_default(),
        delivery_attempt: wrapped.delivery_attempt,
    })
}

/// What the endpoint needs.
#[derive(Debug)]
pub struct PushState<C: Connector> {
    /// The engine.
    pub engine: Arc<Engine<C>>,
    /// The request check.
    pub auth: PushAuth,
    /// `push.answer_within`.
    pub answer_within: Duration,
}

/// One request: check, read, deliver, answer.
async fn handle<C: Connector>(
    State(state): State<Arc<PushState<C>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let arrived = tokio::time::Instant::now();
    if let Err(refusal) = state.auth.check(&headers).await {
        let (status, why) = match refusal {
            Refusal::Unauthenticated(w) => (StatusCode::UNAUTHORIZED, w),
            Refusal::Forbidden(w) => (StatusCode::FORBIDDEN, w),
        };
        tracing::warn!(status = status.as_u16(), reason = %why, "Push request refused.");
        return (status, why).into_response();
    }
    let raw = match message_of(&headers, &body) {
        Ok(raw) => raw,
        Err(why) => {
            tracing::warn!(reason = %why, "Push request is not a message.");
            return (StatusCode::BAD_REQUEST, why).into_response();
        }
    };
    let (tx, rx) = oneshot::channel();
    state
        .engine
        .dispatch(Delivery {
            raw,
            acker: Acker::Push(tx),
            answer_by: Some(arrived + state.answer_within),
        })
        .await;
    match rx.await {
        Ok(Verdict::Ack) => StatusCode::NO_CONTENT.into_response(),
        // Nacked, or the worker stopped with it unsettled.
        Ok(Verdict::Nack) | Err(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, "not delivered yet").into_response()
        }
    }
}

/// The push endpoint (`POST /`), for the given engine and check.
pub fn router<C: Connector>(state: Arc<PushState<C>>, max_body_bytes: usize) -> axum::Router {
    axum::Router::new()
        .route("/", axum::routing::post(handle::<C>))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().expect("header value"));
        }
        h
    }

    #[test]
    fn a_wrapped_push_body_is_read_with_its_metadata() {
        let body = serde_json::json!({
            "message": {"attributes": {"k": "v"}, "data": "eyJhIjoxfQ==", "messageId": "42",
                        "message_id": "42", "publishTime": "2021-02-26T19:13:55.749Z", "orderingKey": "o"},
            "subscription": "projects/p/subscriptions/s", "deliveryAttempt": 3
        });
        let m = message_of(
            &headers(&[("content-type", "application/json")]),
            body.to_string().as_bytes(),
        )
        .expect("read");
        assert_eq!(m.data, br#"{"a":1}"#);
        assert_eq!(m.message_id, "42");
        assert_eq!(m.attributes.get("k").map(String::as_str), Some("v"));
        assert_eq!(m.delivery_attempt, Some(3));
        assert_eq!(m.ordering_key, "o");
        assert!(m.publish_time.is_some());
    }

    #[test]
    fn cloudevents_binary_and_structured_and_unwrapped_are_read() {
        let m = message_of(
            &headers(&[
                ("ce-specversion", "1.0"),
                ("ce-id", "e-1"),
                ("ce-type", "order.created"),
                ("ce-source", "//erp"),
                ("content-type", "application/json"),
            ]),
            br#"{"id":"A1"}"#,
        )
        .expect("binary");
        assert_eq!(
            m.attributes.get("ce-type").map(String::as_str),
            Some("order.created")
        );
        assert_eq!(m.message_id, "e-1");
        let m = message_of(
            &headers(&[("content-type", "application/cloudevents+json")]),
            br#"{"specversion":"1.0","id":"e","type":"t","source":"s"}"#,
        )
        .expect("structured");
        assert!(m.attributes.is_empty());
        let m =
            message_of(&headers(&[("x-goog-pubsub-message-id", "7")]), b"raw").expect("unwrapped");
        assert_eq!(
            (m.message_id.as_str(), m.data.as_slice()),
            ("7", &b"raw"[..])
        );
    }

    #[test]
    fn a_body_of_no_known_form_is_named() {
        let e = message_of(
            &headers(&[("content-type", "application/json")]),
            b"{\"x\":1}",
        )
        .expect_err("not a push body");
        assert!(e.contains("not a Pub/Sub push message"), "{e}");
        let e = message_of(
            &HeaderMap::new(),
            br#"{"message":{"data":"***","messageId":"1"}}"#,
        )
        .expect_err("bad base64");
        assert!(e.contains("message.data is not base64"), "{e}");
    }

    #[test]
    fn oidc_needs_its_audience_and_account() {
        let e = PushAuth::new(&PushSettings::default()).expect_err("no audience");
        assert_eq!(e.setting_name(), Some("push.audience"));
        let e = PushAuth::new(&PushSettings {
            audience: Some("https://w.example".into()),
            ..PushSettings::default()
        })
        .expect_err("no account");
        assert_eq!(e.setting_name(), Some("push.service_account"));
        let none = PushAuth::new(&PushSettings {
            auth: PushAuthKind::None,
            ..PushSettings::default()
        });
        assert!(matches!(none, Ok(PushAuth::None)));
    }
}
