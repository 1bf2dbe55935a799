//! Logs: one JSON object a line in Cloud Logging's shape when stderr is not a
//! terminal (Cloud Run), readable text when it is.
//!
//! JSON lines carry `severity`, `message`, `time`, the event's fields,
//! `logging.googleapis.com/sourceLocation` (file, line, module), and
//! `logging.googleapis.com/labels` naming the connector. Every line logged
//! while a message that brought a trace (`traceparent` or
//! `googclient_traceparent`) is handled also carries
//! `logging.googleapis.com/trace` (when the project is known),
//! `logging.googleapis.com/spanId` (the worker's span) and
//! `logging.googleapis.com/trace_sampled`: the engine opens a span with
//! those fields around the message, and this format reads the spans in scope.

use std::fmt;
use std::io::IsTerminal as _;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Installs the global subscriber. `RUST_LOG` overrides the default `info`.
pub fn init(connector: &'static str, project: Option<String>) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if std::io::stderr().is_terminal() {
        builder.with_target(false).try_init()
    } else {
        builder
            .fmt_fields(JsonFields::new())
            .event_format(CloudLogging { connector, project })
            .try_init()
    };
    // Already installed (tests): keep the first.
    drop(result);
}

/// The Cloud Logging JSON format.
#[derive(Debug)]
struct CloudLogging {
    connector: &'static str,
    project: Option<String>,
}

fn severity(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        _ => "DEBUG",
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    map: serde_json::Map<String, serde_json::Value>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.map.insert(field.name().to_owned(), value.into());
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.map.insert(field.name().to_owned(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.map.insert(field.name().to_owned(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.map.insert(field.name().to_owned(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.map
                .insert(field.name().to_owned(), format!("{value:?}").into());
        }
    }
}

impl<S> FormatEvent<S, JsonFields> for CloudLogging
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        // The spans' fields first (the message's trace), outermost first,
        // so the event's own fields win a clash.
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let ext = span.extensions();
                if let Some(f) = ext.get::<FormattedFields<JsonFields>>()
                    && let Ok(serde_json::Value::Object(map)) =
                        serde_json::from_str::<serde_json::Value>(f)
                {
                    fields.map.extend(map);
                }
            }
        }
        event.record(&mut fields);
        let mut obj = serde_json::Map::new();
        obj.insert("severity".into(), severity(event.metadata().level()).into());
        obj.insert("message".into(), fields.message.into());
        obj.insert(
            "time".into(),
            humantime::format_rfc3339_millis(std::time::SystemTime::now())
                .to_string()
                .into(),
        );
        // Cloud Logging wants the trace as a resource name; without a
        // project the bare id stays an ordinary field.
        if let Some(project) = &self.project
            && let Some(serde_json::Value::String(trace)) = fields.map.remove("trace")
            && !trace.is_empty()
        {
            obj.insert(
                "logging.googleapis.com/trace".into(),
                format!("projects/{project}/traces/{trace}").into(),
            );
        }
        if let Some(span) = fields.map.remove("span_id") {
            obj.insert("logging.googleapis.com/spanId".into(), span);
        }
        if let Some(sampled) = fields.map.remove("trace_sampled") {
            obj.insert("logging.googleapis.com/trace_sampled".into(), sampled);
        }
        let meta = event.metadata();
        let mut location = serde_json::Map::new();
        if let Some(file) = meta.file() {
            location.insert("file".into(), file.into());
        }
        if let Some(line) = meta.line() {
            location.insert("line".into(), line.to_string().into());
        }
        if let Some(module) = meta.module_path() {
            location.insert("function".into(), module.into());
        }
        obj.insert(
            "logging.googleapis.com/sourceLocation".into(),
            location.into(),
        );
        obj.insert(
            "logging.googleapis.com/labels".into(),
            serde_json::json!({ "connector": self.connector }),
        );
        obj.insert("target".into(), event.metadata().target().into());
        obj.extend(fields.map);
        let line = serde_json::to_string(&obj).map_err(|_| fmt::Error)?;
        writeln!(writer, "{line}")
    }
}
