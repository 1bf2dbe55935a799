//! Logs: one JSON object a line in Cloud Logging's shape when stderr is not a
//! terminal (Cloud Run), readable text when it is.
//!
//! JSON lines carry `severity`, `message`, `time`, the event's fields, and
//! `logging.googleapis.com/trace` when a message brought a W3C `traceparent`
//! and the project is known; `logging.googleapis.com/labels` names the
//! connector.

use std::fmt;
use std::io::IsTerminal as _;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
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

impl<S, N> FormatEvent<S, N> for CloudLogging
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
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
        if let Some(serde_json::Value::String(trace)) = fields.map.remove("trace")
            && !trace.is_empty()
            && let Some(project) = &self.project
        {
            obj.insert(
                "logging.googleapis.com/trace".into(),
                format!("projects/{project}/traces/{trace}").into(),
            );
        }
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
