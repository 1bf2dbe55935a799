//! Spans by OTLP: the worker's handling of each traced message, sent to an
//! OpenTelemetry collector (the Cloud Run sidecar, or any OTLP/HTTP
//! receiver).
//!
//! Only a message that brought a trace (`traceparent` or
//! `googclient_traceparent`) gets a span: it is a child of the publisher's
//! span, and its id is the one the log lines and the target's `traceparent`
//! carry ([`TraceContext::with_span_id`]), so publisher → worker → target is
//! one trace in Cloud Trace as in the logs. The publisher's sampling decision
//! stands (a parent-based sampler): an unsampled trace is carried on but not
//! exported. A message with no trace starts none, so an untraced publisher
//! costs no spans.
//!
//! The span is a consumer span named `process <subscription>` with
//! OpenTelemetry's messaging attributes (`messaging.system = gcp_pubsub`,
//! `messaging.operation.type = process`, the subscription, the message id)
//! and gluefleet's outcome (`gluefleet.route`, `gluefleet.outcome`,
//! `gluefleet.reason`, `gluefleet.attempts`); a dead letter sets
//! `error.type` to its class and the span's status to error.
//!
//! Export is batched on the SDK's own thread (default: every 5 s or 512
//! spans, `OTEL_BSP_*` to change), so a slow or absent collector never
//! holds a message; spans it cannot take are dropped, never the message.
//! On shutdown what is batched is flushed, for at most 1 s: inside the
//! 10 s Cloud Run allows after SIGTERM, after acks and nacks are sent.

use std::cell::RefCell;
use std::time::Duration;

use gluefleet_core::ConfigError;
use gluefleet_core::trace::TraceContext;
use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt as _, TraceFlags, TraceId,
    TraceState, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SdkTracerProvider, Span, Tracer};

/// The span exporter: built once per worker when OTLP is configured.
#[derive(Debug)]
pub struct Spans {
    provider: SdkTracerProvider,
    tracer: Tracer,
}

/// The standard variables that name a collector; the exporter reads them
/// itself (the per-signal one as the full URL, the other with `/v1/traces`
/// added), so here they only switch spans on.
const ENDPOINT_VARS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];

/// A collector's base URL (`http://localhost:4318`) as its traces URL; a URL
/// that already names `/v1/traces` is kept.
fn traces_url(base: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        base.to_owned()
    } else {
        format!("{base}/v1/traces")
    }
}

/// The traces URL of the configured base URL, refused unless http(s).
fn checked_url(base: &str) -> Result<String, ConfigError> {
    let url = url::Url::parse(base).map_err(|e| {
        ConfigError::new(format!(
            "telemetry.otlp_endpoint: {base:?} is not a URL: {e}"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::new(format!(
            "telemetry.otlp_endpoint: {base:?} must be http:// or https:// (OTLP/HTTP)"
        )));
    }
    Ok(traces_url(base))
}

impl Spans {
    /// Spans of connector `connector`'s messages, sent by OTLP/HTTP
    /// (protobuf) to `configured` (`[telemetry] otlp_endpoint`, a base URL),
    /// else to where the standard `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` /
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` variables say; `None` (no spans) when
    /// neither names a collector.
    pub fn from_settings(
        connector: &str,
        configured: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, ConfigError> {
        let builder = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_timeout(Duration::from_secs(5));
        let builder = match configured.filter(|e| !e.is_empty()) {
            Some(base) => builder.with_endpoint(checked_url(base)?),
            None if ENDPOINT_VARS
                .iter()
                .any(|v| env(v).is_some_and(|e| !e.is_empty())) =>
            {
                builder
            }
            None => return Ok(None),
        };
        let exporter = builder
            .build()
            .map_err(|e| ConfigError::new(format!("telemetry.otlp_endpoint: {e}")))?;
        let resource = Resource::builder()
            .with_service_name(format!("gluefleet-{connector}"))
            .with_attribute(KeyValue::new("service.namespace", "gluefleet"))
            .build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("gluefleet");
        Ok(Some(Self { provider, tracer }))
    }

    /// Starts the span of a message from `subscription` with trace `trace`
    /// and returns it with the trace whose span id is now the exported
    /// span's.
    pub fn start(
        &self,
        trace: TraceContext,
        subscription: &str,
        message_id: &str,
    ) -> (MessageSpan, TraceContext) {
        let parent = SpanContext::new(
            TraceId::from_hex(trace.trace_id()).unwrap_or(TraceId::INVALID),
            SpanId::from_hex(trace.parent_id()).unwrap_or(SpanId::INVALID),
            if trace.sampled() {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::default()
            },
            true,
            TraceState::default(),
        );
        let cx = Context::new().with_remote_span_context(parent);
        // The subscription's short name, as the messaging conventions'
        // `{operation} {destination}` names a span.
        let short = subscription.rsplit('/').next().unwrap_or(subscription);
        let span = self
            .tracer
            .span_builder(format!("process {short}"))
            .with_kind(SpanKind::Consumer)
            .with_attributes([
                KeyValue::new("messaging.system", "gcp_pubsub"),
                KeyValue::new("messaging.operation.name", "process"),
                KeyValue::new("messaging.operation.type", "process"),
                KeyValue::new(
                    "messaging.destination.subscription.name",
                    subscription.to_owned(),
                ),
                KeyValue::new("messaging.message.id", message_id.to_owned()),
            ])
            .start_with_context(&self.tracer, &cx);
        let id = span.span_context().span_id().to_string();
        let trace = trace.with_span_id(&id).unwrap_or_else(|same| same);
        (MessageSpan(span), trace)
    }

    /// Sends what is batched and stops; at most 1 s, so a dead collector
    /// cannot hold the shutdown that Cloud Run allows 10 s for.
    pub fn shutdown(&self) {
        if let Err(e) = self.provider.shutdown_with_timeout(Duration::from_secs(1)) {
            tracing::warn!(error = %e, "Spans not all sent at shutdown.");
        }
    }
}

/// One message's span, ended when the message settles.
#[derive(Debug)]
pub struct MessageSpan(Span);

impl MessageSpan {
    /// Ends the span with the message's settling.
    pub fn end(
        mut self,
        route: &str,
        outcome: &'static str,
        reason: &str,
        attempts: u32,
        http_status: Option<u16>,
    ) {
        let span = &mut self.0;
        span.set_attribute(KeyValue::new("gluefleet.outcome", outcome));
        if !route.is_empty() {
            span.set_attribute(KeyValue::new("gluefleet.route", route.to_owned()));
        }
        if !reason.is_empty() {
            span.set_attribute(KeyValue::new("gluefleet.reason", reason.to_owned()));
        }
        span.set_attribute(KeyValue::new("gluefleet.attempts", i64::from(attempts)));
        if let Some(status) = http_status {
            span.set_attribute(KeyValue::new(
                "http.response.status_code",
                i64::from(status),
            ));
        }
        if matches!(outcome, "dead-lettered" | "dead-letter-failed") {
            span.set_attribute(KeyValue::new("error.type", reason.to_owned()));
            span.set_status(Status::error(format!("{outcome}: {reason}")));
        }
        span.end();
    }
}

tokio::task_local! {
    /// The span of the message this task is handling, taken when it settles.
    static CURRENT: RefCell<Option<MessageSpan>>;
}

/// Runs `f` with `span` as the task's message span.
pub async fn scope<F: std::future::Future>(span: Option<MessageSpan>, f: F) -> F::Output {
    CURRENT.scope(RefCell::new(span), f).await
}

/// Ends the task's message span, if it has one that is not yet ended.
pub fn end_current(
    route: &str,
    outcome: &'static str,
    reason: &str,
    attempts: u32,
    http_status: Option<u16>,
) {
    let span = CURRENT.try_with(|c| c.borrow_mut().take()).ok().flatten();
    if let Some(span) = span {
        span.end(route, outcome, reason, attempts, http_status);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn the_config_or_a_standard_variable_switches_spans_on() {
        let off = Spans::from_settings("legacy-rest", None, &no_env).expect("valid");
        assert!(off.is_none(), "no endpoint: no spans");
        let empty = |_: &str| Some(String::new());
        let off = Spans::from_settings("legacy-rest", Some(""), &empty).expect("valid");
        assert!(off.is_none(), "empty values name no collector");
        let base = |n: &str| (n == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| "http://b:4318".into());
        let on = Spans::from_settings("legacy-rest", None, &base).expect("valid");
        assert!(on.is_some(), "the standard variable alone");
        let on = Spans::from_settings("legacy-rest", Some("http://c:4318"), &no_env);
        assert!(on.expect("valid").is_some(), "the config alone");
    }

    #[test]
    fn the_configured_base_url_gets_the_traces_path() {
        assert_eq!(
            checked_url("http://localhost:4318/").expect("valid"),
            "http://localhost:4318/v1/traces"
        );
        assert_eq!(
            checked_url("http://c:4318/v1/traces").expect("valid"),
            "http://c:4318/v1/traces"
        );
    }

    #[test]
    fn a_bad_endpoint_is_named() {
        let e = Spans::from_settings("legacy-rest", Some("localhost:4318"), &no_env)
            .expect_err("no scheme");
        assert!(e.to_string().contains("localhost:4318"), "{e}");
        let e = Spans::from_settings("legacy-rest", Some("grpc://c:4317"), &no_env)
            .expect_err("not http");
        assert!(e.to_string().contains("http://"), "{e}");
    }

    #[tokio::test]
    async fn the_exported_span_is_the_one_the_trace_names() {
        // Nothing listens on port 9: the span is batched and dropped, which
        // is what a collector outage must do (never hold the message).
        let spans = Spans::from_settings("legacy-rest", Some("http://127.0.0.1:9"), &no_env)
            .expect("valid")
            .expect("spans on");
        let t = TraceContext::child_of("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            .expect("valid");
        let before = t.span_id().to_owned();
        let (span, t) = spans.start(t, "projects/p/subscriptions/orders", "m-1");
        assert_eq!(t.span_id(), span.0.span_context().span_id().to_string());
        assert_ne!(t.span_id(), before, "the exporter's id, not the first pick");
        assert_eq!(
            span.0.span_context().trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(
            span.0.span_context().is_sampled(),
            "the publisher sampled it"
        );
        span.end("orders", "acked", "done", 1, None);
        let unsampled =
            TraceContext::child_of("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
                .expect("valid");
        let (span, _) = spans.start(unsampled, "orders", "m-2");
        assert!(!span.0.is_recording(), "an unsampled trace is not exported");
        spans.shutdown();
    }
}
