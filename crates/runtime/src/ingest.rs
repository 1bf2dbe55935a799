//! `gluefleet-ingest`: an HTTP front door onto Pub/Sub for systems that can
//! call HTTP but not the Pub/Sub API (an SAP system's HTTP destination,
//! legacy software, webhooks).
//!
//! `POST /v1/events/{topic}` takes one event: CloudEvents HTTP binary mode
//! (`ce-*` headers), structured mode (`application/cloudevents+json`), or a
//! plain JSON body, which becomes a binary-mode CloudEvent (its type from
//! `?type=` or the topic's `event_type`, its id the `Idempotency-Key` or a
//! new UUID). Every event is decoded by the workers' own decoder before it
//! is published, so what ingest accepts a worker can read.
//!
//! | answer | when |
//! |---|---|
//! | 202 `{"message_id","event_id"}` | Pub/Sub confirmed the publish (or, within the idempotency window, had already) |
//! | 400 | not JSON, not a valid CloudEvent, no event type, data not matching the type's JSON Schema (each violation named) |
//! | 401 / 403 | no or unknown credential (API key, Basic, or a Google ID token) / credential not allowed on this topic |
//! | 404 | a topic the config does not define |
//! | 413 | body over `ingest.max_body_bytes` |
//! | 503 + `Retry-After` | Pub/Sub did not confirm within `ingest.publish_timeout`: retry |
//!
//! A 202 is sent only after Pub/Sub confirmed the publish, and every other
//! answer is non-2xx, so a caller that retries until 202 loses nothing. A
//! 503 can follow a publish Pub/Sub did take late; with the same event id
//! (`Idempotency-Key` or CloudEvents id) the retry is then answered from
//! the window, or, after it, deduplicated by the workers' idempotency.

pub mod auth;
pub mod config;
pub mod dedupe;
pub mod schema;

use crate::pubsub::Connection;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use config::IngestConfig;
use dedupe::{Claim, Window};
use gluefleet_core::event::{RawMessage, decode};
use google_cloud_pubsub::client::Publisher;
use serde::Deserialize;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The service's state: config, one batching publisher per topic, the
/// idempotency window.
pub struct Ingest {
    config: IngestConfig,
    publishers: HashMap<String, Publisher>,
    window: Window,
    /// The JSON Schemas events are checked against.
    schemas: schema::Schemas,
    /// The ID-token check of each `google_oidc` credential, by its index.
    verifiers: Vec<(usize, crate::push::PushAuth)>,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest")
            .field("topics", &self.config.topics.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Ingest {
    /// Builds a publisher for every configured topic; `schemas` are
    /// [`schema::Schemas::load`]ed from the same config.
    pub async fn new(
        config: IngestConfig,
        schemas: schema::Schemas,
        connection: &Connection,
    ) -> Result<Self, String> {
        let mut publishers = HashMap::new();
        for (route, t) in &config.topics {
            publishers.insert(
                route.clone(),
                connection.batching_publisher(&t.topic).await?,
            );
        }
        let window = Window::new(config.ingest.idempotency_window);
        let mut verifiers = Vec::new();
        for (i, c) in config.credentials.iter().enumerate() {
            if let config::Check::GoogleOidc {
                audience,
                service_account,
                jwks_url,
            } = &c.check
            {
                let settings = crate::push::PushSettings {
                    auth: crate::push::PushAuthKind::Oidc,
                    audience: Some(audience.clone()),
                    service_account: Some(service_account.clone()),
                    jwks_url: jwks_url.clone(),
                    ..crate::push::PushSettings::default()
                };
                let auth = crate::push::PushAuth::new(&settings)
                    .map_err(|e| format!("credential {:?}: {e}", c.name))?;
                verifiers.push((i, auth));
            }
        }
        Ok(Self {
            config,
            publishers,
            window,
            schemas,
            verifiers,
        })
    }
}

/// The routes: `POST /v1/events/{topic}`, and `GET /healthz`.
pub fn router(state: Arc<Ingest>) -> axum::Router {
    let limit = state.config.ingest.max_body_bytes;
    axum::Router::new()
        .route("/v1/events/{topic}", axum::routing::post(handle))
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

fn answer(status: StatusCode, error: impl Into<String>) -> Response {
    (status, Json(json!({"error": error.into()}))).into_response()
}

#[derive(Debug, Deserialize)]
struct Params {
    #[serde(rename = "type")]
    event_type: Option<String>,
}

/// The message a request becomes, with its event id.
fn message_of(
    headers: &HeaderMap,
    body: &[u8],
    event_type: Option<&str>,
    source: &str,
) -> Result<RawMessage, String> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let content_type = header("content-type").unwrap_or_default();
    let idempotency_key = header("idempotency-key")
        .map(str::trim)
        .filter(|k| !k.is_empty());
    let mut attributes = BTreeMap::new();
    if header("ce-specversion").is_some() {
        attributes = crate::push::cloudevent_attributes(headers)?;
    } else if content_type.starts_with("application/cloudevents+json") {
        attributes.insert("content-type".into(), "application/cloudevents+json".into());
    } else {
        serde_json::from_slice::<serde_json::Value>(body)
            .map_err(|e| format!("the body is not JSON: {e}"))?;
        let event_type = event_type
            .ok_or("no event type: send a CloudEvent, add ?type=, or set the topic's event_type")?;
        let id = idempotency_key.map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
        for (k, v) in [
            ("ce-specversion", "1.0"),
            ("ce-id", id.as_str()),
            ("ce-type", event_type),
            ("ce-source", source),
            ("content-type", "application/json"),
        ] {
            attributes.insert(k.to_owned(), v.to_owned());
        }
    }
    Ok(RawMessage {
        data: body.to_vec(),
        attributes,
        ..RawMessage::default()
    })
}

async fn handle(
    State(state): State<Arc<Ingest>>,
    Path(route): Path<String>,
    Query(params): Query<Params>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(topic) = state.config.topics.get(&route) else {
        return answer(StatusCode::NOT_FOUND, format!("unknown topic {route:?}"));
    };
    let admitted = match auth::bearer_jwt(&headers) {
        Some(_) if !state.verifiers.is_empty() => admit_token(&state, &headers, &route).await,
        _ => auth::admit(&state.config.credentials, &headers, &route),
    };
    let credential = match admitted {
        Ok(c) => c,
        Err(auth::Denied::Unknown(why)) => return answer(StatusCode::UNAUTHORIZED, why),
        Err(auth::Denied::NotAllowed(why)) => return answer(StatusCode::FORBIDDEN, why),
    };
    let source = topic
        .source
        .clone()
        .unwrap_or_else(|| format!("//gluefleet/ingest/{}", credential.name));
    let event_type = params.event_type.as_deref().or(topic.event_type.as_deref());
    let raw = match message_of(&headers, &body, event_type, &source) {
        Ok(raw) => raw,
        Err(e) => return answer(StatusCode::BAD_REQUEST, e),
    };
    // The workers' decoder: what it refuses would be poison downstream.
    let event = match decode(&raw) {
        Ok(event) => event,
        Err(e) => return answer(StatusCode::BAD_REQUEST, e.to_string()),
    };
    if let Err(refusal) = state.schemas.check(&route, &event.event_type, &event.data) {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({
                "error": refusal.to_string(),
                "schema": refusal.file,
                "violations": refusal.violations,
            })),
        )
            .into_response();
    }
    let key = format!("{route}\u{0}{}\u{0}{}", event.source, event.id);
    if let Claim::Replay(message_id) = state.window.claim(&key).await {
        let mut r = (
            StatusCode::ACCEPTED,
            Json(json!({"message_id": message_id, "event_id": event.id})),
        )
            .into_response();
        r.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
        return r;
    }
    let Some(publisher) = state.publishers.get(&route) else {
        state.window.finish(&key, None);
        return answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no publisher for this topic",
        );
    };
    let message = google_cloud_pubsub::model::Message::new()
        .set_data(raw.data)
        .set_attributes(raw.attributes);
    let timeout = state.config.ingest.publish_timeout;
    match tokio::time::timeout(timeout, publisher.publish(message)).await {
        Ok(Ok(message_id)) => {
            state.window.finish(&key, Some(message_id.clone()));
            (
                StatusCode::ACCEPTED,
                Json(json!({"message_id": message_id, "event_id": event.id})),
            )
                .into_response()
        }
        outcome => {
            state.window.finish(&key, None);
            let why = match outcome {
                Ok(Err(e)) => format!("Pub/Sub refused the publish to {}: {e}", topic.topic),
                _ => format!(
                    "Pub/Sub did not confirm the publish to {} within {timeout:?}",
                    topic.topic
                ),
            };
            tracing::warn!(topic = %topic.topic, event_id = %event.id, "{why}");
            let mut r = answer(StatusCode::SERVICE_UNAVAILABLE, format!("{why}; retry"));
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            r
        }
    }
}

/// The `google_oidc` credential whose check the request's ID token passes.
async fn admit_token<'s>(
    state: &'s Ingest,
    headers: &HeaderMap,
    route: &str,
) -> Result<&'s config::Credential, auth::Denied> {
    for (i, verifier) in &state.verifiers {
        if verifier.check(headers).await.is_ok()
            && let Some(c) = state.config.credentials.get(*i)
        {
            return auth::allowed(c, route);
        }
    }
    Err(auth::Denied::Unknown(
        "the ID token is not valid for any google_oidc credential (signature, issuer, audience, expiry, or account)",
    ))
}

/// The command line.
#[derive(Debug, clap::Parser)]
#[command(
    name = "gluefleet-ingest",
    version,
    about = "An HTTP front door onto Pub/Sub: POST /v1/events/{topic}."
)]
struct IngestCli {
    /// The ingest config (TOML: topics, credentials).
    #[arg(long, env = "GLUEFLEET_INGEST_CONFIG")]
    config: std::path::PathBuf,
}

/// The binary's `main`: `--config` (or `GLUEFLEET_INGEST_CONFIG`), `PORT`
/// (default 8080), `PUBSUB_EMULATOR_HOST` for the emulator.
pub fn main() -> std::process::ExitCode {
    use clap::Parser as _;
    use std::process::ExitCode;
    crate::logging::init("ingest", std::env::var("GOOGLE_CLOUD_PROJECT").ok());
    let path = match IngestCli::try_parse() {
        Ok(cli) => cli.config.display().to_string(),
        Err(e) => return crate::command_line_exit(&e),
    };
    let loaded = IngestConfig::load(std::path::Path::new(&path))
        .and_then(|c| schema::Schemas::load(&c).map(|s| (c, s)));
    let (config, schemas) = match loaded {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gluefleet-ingest: {e}");
            return ExitCode::from(crate::EXIT_CONFIG);
        }
    };
    let port: u16 = match std::env::var("PORT").ok().map(|p| p.parse()) {
        None => 8080,
        Some(Ok(p)) => p,
        Some(Err(e)) => {
            eprintln!("gluefleet-ingest: PORT is not a port number: {e}");
            return ExitCode::from(crate::EXIT_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("gluefleet-ingest: cannot start the async runtime: {e}");
            return ExitCode::from(crate::EXIT_BROKEN);
        }
    };
    let result: Result<(), String> = runtime.block_on(async move {
        let emulator = std::env::var("PUBSUB_EMULATOR_HOST")
            .ok()
            .filter(|h| !h.is_empty());
        let connection = Connection::with_emulator(emulator.as_deref());
        let state = Arc::new(Ingest::new(config, schemas, &connection).await?);
        let listener = tokio::net::TcpListener::bind(("0.0.0.0", port))
            .await
            .map_err(|e| format!("cannot listen on port {port}: {e}"))?;
        tracing::info!(port, "gluefleet-ingest listening");
        axum::serve(listener, router(state))
            .with_graceful_shutdown(crate::shutdown_signal())
            .await
            .map_err(|e| format!("server: {e}"))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gluefleet-ingest: {e}");
            ExitCode::from(crate::EXIT_BROKEN)
        }
    }
}
