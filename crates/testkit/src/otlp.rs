//! An OTLP/HTTP trace receiver: what an OpenTelemetry collector (the Cloud
//! Run sidecar) is to a worker, on a free local port.
//!
//! It takes `POST /v1/traces` with an `application/x-protobuf`
//! `ExportTraceServiceRequest`, as the OTLP specification has exporters
//! send it, decodes it with OpenTelemetry's own protobuf types, keeps every
//! span, and answers an empty `ExportTraceServiceResponse`. Anything else
//! (another path, JSON, a body that does not decode) is answered 4xx and
//! counted in [`OtlpReceiver::rejected`], so an exporter that sends the
//! wrong thing fails the test rather than passing silently.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message as _;

use crate::TestkitError;
use crate::http_target::lock;
use crate::server::LocalServer;

/// A span as the receiver got it, ids as lower-case hex.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedSpan {
    /// The resource's `service.name`.
    pub service: String,
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// 16 hex digits, empty for a root span.
    pub parent_span_id: String,
    /// The span's name.
    pub name: String,
    /// OTLP's `SpanKind` number (5 = consumer).
    pub kind: i32,
    /// Attributes, every value as text (`true`, `3`, `x`).
    pub attributes: BTreeMap<String, String>,
    /// OTLP's status code (0 unset, 1 ok, 2 error).
    pub status_code: i32,
}

impl ReceivedSpan {
    /// The attribute `key`, if set.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

#[derive(Debug, Default)]
struct Received {
    spans: Vec<ReceivedSpan>,
    requests: usize,
    rejected: usize,
}

/// The receiver. Stops on drop.
#[derive(Debug)]
pub struct OtlpReceiver {
    server: LocalServer,
    state: Arc<Mutex<Received>>,
}

impl OtlpReceiver {
    /// Starts on a free port of 127.0.0.1.
    pub async fn start() -> Result<Self, TestkitError> {
        let state = Arc::new(Mutex::new(Received::default()));
        let app_state = state.clone();
        let server = LocalServer::start("the OTLP receiver", move |_| {
            Router::new()
                .route("/v1/traces", post(traces))
                .fallback(|| async { StatusCode::NOT_FOUND })
                .with_state(app_state)
        })
        .await?;
        Ok(Self { server, state })
    }

    /// The base URL, as a worker's `otlp_endpoint` takes it
    /// (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        lock(&self.state).spans.clone()
    }

    /// Export requests received (accepted or not).
    pub fn requests(&self) -> usize {
        lock(&self.state).requests
    }

    /// Requests refused: wrong content type or a body that did not decode.
    pub fn rejected(&self) -> usize {
        lock(&self.state).rejected
    }

    /// Waits up to `timeout` until at least `n` spans are in.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedSpan> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let spans = self.spans();
            if spans.len() >= n || tokio::time::Instant::now() >= deadline {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn traces(
    State(state): State<Arc<Mutex<Received>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let protobuf = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-protobuf"));
    let decoded = protobuf
        .then(|| ExportTraceServiceRequest::decode(body))
        .and_then(Result::ok);
    let mut s = lock(&state);
    s.requests += 1;
    let Some(request) = decoded else {
        s.rejected += 1;
        return if protobuf {
            (
                StatusCode::BAD_REQUEST,
                "body is not an ExportTraceServiceRequest",
            )
                .into_response()
        } else {
            (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "only application/x-protobuf is accepted",
            )
                .into_response()
        };
    };
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .as_ref()
            .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
            .map(|kv| text(kv.value.as_ref()))
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                s.spans.push(ReceivedSpan {
                    service: service.clone(),
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    name: span.name,
                    kind: span.kind,
                    attributes: attributes(&span.attributes),
                    status_code: span.status.map(|st| st.code).unwrap_or(0),
                });
            }
        }
    }
    (
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
        .into_response()
}

fn attributes(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
        .collect()
}

fn text(v: Option<&AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    #[tokio::test]
    async fn keeps_what_an_exporter_sends_and_refuses_the_rest() {
        let r = OtlpReceiver::start().await.expect("receiver");
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![KeyValue {
                        key: "service.name".into(),
                        value: Some(AnyValue {
                            value: Some(any_value::Value::StringValue("svc".into())),
                        }),
                        ..KeyValue::default()
                    }],
                    ..Resource::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        trace_id: vec![0xab; 16],
                        span_id: vec![1, 2, 3, 4, 5, 6, 7, 8],
                        name: "process orders".into(),
                        kind: 5,
                        attributes: vec![KeyValue {
                            key: "gluefleet.attempts".into(),
                            value: Some(AnyValue {
                                value: Some(any_value::Value::IntValue(3)),
                            }),
                            ..KeyValue::default()
                        }],
                        ..Span::default()
                    }],
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        };
        let http = reqwest::Client::new();
        let post = |content_type: &'static str, body: Vec<u8>| {
            let req = http
                .post(format!("{}/v1/traces", r.url()))
                .header("content-type", content_type)
                .body(body);
            async move { req.send().await.expect("sent").status() }
        };
        let proto = "application/x-protobuf";
        assert_eq!(post(proto, request.encode_to_vec()).await, 200);
        assert_eq!(post("application/json", b"{}".to_vec()).await, 415);
        assert_eq!(post(proto, vec![0xff, 0xff, 0xff]).await, 400);
        let spans = r.spans();
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].service, "svc");
        assert_eq!(spans[0].trace_id, "ab".repeat(16));
        assert_eq!(spans[0].span_id, "0102030405060708");
        assert_eq!(spans[0].parent_span_id, "", "a root span");
        assert_eq!(spans[0].attr("gluefleet.attempts"), Some("3"));
        assert_eq!((r.requests(), r.rejected()), (3, 2));
    }
}
