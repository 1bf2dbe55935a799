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

use std::borrow::Cow;
use std::fmt::{self, Write as _};
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

/// An event's fields (and its spans'), in the order recorded; a later one
/// of the same name replaces an earlier one, so the event's own fields win
/// over its spans'. A short list, not a map: a line has a handful of
/// fields, and their names are the callsite's `&'static str`.
#[derive(Default)]
struct Fields {
    message: String,
    list: Vec<(Cow<'static, str>, serde_json::Value)>,
}

impl Fields {
    fn set(&mut self, name: Cow<'static, str>, value: serde_json::Value) {
        match self.list.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.list.push((name, value)),
        }
    }

    fn take(&mut self, name: &str) -> Option<serde_json::Value> {
        let i = self.list.iter().position(|(n, _)| n == name)?;
        Some(self.list.remove(i).1)
    }

    fn has(&self, name: &str) -> bool {
        self.list.iter().any(|(n, _)| n == name)
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.set(field.name().into(), value.into());
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.set(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.set(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.set(field.name().into(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.set(field.name().into(), format!("{value:?}").into());
        }
    }
}

/// One JSON object, written as it goes: a line per acked message is the
/// default, so the line is not built as a map first and serialised after.
struct Line {
    out: String,
    first: bool,
}

impl Line {
    fn new() -> Self {
        Self {
            out: String::with_capacity(512),
            first: true,
        }
    }

    fn key(&mut self, key: &str) {
        self.out.push(if self.first { '{' } else { ',' });
        self.first = false;
        push_json_str(&mut self.out, key);
        self.out.push(':');
    }

    fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        push_json_str(&mut self.out, value);
    }

    fn value(&mut self, key: &str, value: &serde_json::Value) {
        self.key(key);
        // Display of a Value is its compact JSON.
        let _ = write!(self.out, "{value}");
    }

    fn finish(mut self) -> String {
        self.out.push_str(if self.first { "{}" } else { "}" });
        self.out
    }
}

/// `s` as a JSON string literal, escaped as serde_json escapes it (`"`,
/// `\\`, and control characters), without a copy of `s` first.
fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
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
        // The settled lines carry six fields, seven with the span's: room
        // for them at once, not four regrowths.
        let mut fields = Fields {
            message: String::new(),
            list: Vec::with_capacity(8),
        };
        // The spans' fields first (the message's trace), outermost first,
        // so the event's own fields win a clash.
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let ext = span.extensions();
                if let Some(f) = ext.get::<FormattedFields<JsonFields>>()
                    && let Ok(serde_json::Value::Object(map)) =
                        serde_json::from_str::<serde_json::Value>(f)
                {
                    for (k, v) in map {
                        fields.set(k.into(), v);
                    }
                }
            }
        }
        event.record(&mut fields);
        let meta = event.metadata();
        let mut line = Line::new();
        // A field of the event's own named like one of these wins, as it
        // always has: the fixed key is left out.
        let fixed_str = |line: &mut Line, key: &str, value: &str| {
            if !fields.has(key) {
                line.str(key, value);
            }
        };
        fixed_str(&mut line, "severity", severity(meta.level()));
        fixed_str(&mut line, "message", &fields.message);
        let time = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
        fixed_str(&mut line, "time", &time);
        // Cloud Logging wants the trace as a resource name; without a
        // project the bare id stays an ordinary field.
        if let Some(project) = &self.project
            && fields.has("trace")
        {
            match fields.take("trace") {
                Some(serde_json::Value::String(trace)) if !trace.is_empty() => {
                    line.str(
                        "logging.googleapis.com/trace",
                        &format!("projects/{project}/traces/{trace}"),
                    );
                }
                Some(other) => fields.set("trace".into(), other),
                None => {}
            }
        }
        if let Some(span) = fields.take("span_id") {
            line.value("logging.googleapis.com/spanId", &span);
        }
        if let Some(sampled) = fields.take("trace_sampled") {
            line.value("logging.googleapis.com/trace_sampled", &sampled);
        }
        if !fields.has("logging.googleapis.com/sourceLocation") {
            line.key("logging.googleapis.com/sourceLocation");
            let mut location = Line::new();
            if let Some(file) = meta.file() {
                location.str("file", file);
            }
            if let Some(n) = meta.line() {
                location.str("line", &n.to_string());
            }
            if let Some(module) = meta.module_path() {
                location.str("function", module);
            }
            line.out.push_str(&location.finish());
        }
        if !fields.has("logging.googleapis.com/labels") {
            line.key("logging.googleapis.com/labels");
            let mut labels = Line::new();
            labels.str("connector", self.connector);
            line.out.push_str(&labels.finish());
        }
        if !fields.has("target") {
            line.str("target", meta.target());
        }
        for (k, v) in &fields.list {
            line.value(k, v);
        }
        writer.write_str(&line.finish())?;
        writer.write_char('\n')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        for s in [
            "plain",
            "",
            "quote \" and backslash \\",
            "lines\nand\r\ttabs",
            "controls \u{1}\u{8}\u{c}\u{1f} end",
            "unicode é 😀 \u{7f}",
        ] {
            let mut out = String::new();
            push_json_str(&mut out, s);
            assert_eq!(out, serde_json::Value::from(s).to_string(), "{s:?}");
            let back: String = serde_json::from_str(&out).expect("valid JSON");
            assert_eq!(back, s);
        }
    }

    #[test]
    fn a_line_is_one_json_object_with_later_fields_winning() {
        let mut fields = Fields::default();
        fields.set("route".into(), "a".into());
        fields.set("route".into(), "b".into());
        fields.set("n".into(), 3.into());
        let mut line = Line::new();
        line.str("message", "Acked.");
        for (k, v) in &fields.list {
            line.value(k, v);
        }
        let v: serde_json::Value = serde_json::from_str(&line.finish()).expect("JSON");
        assert_eq!(
            v,
            serde_json::json!({"message": "Acked.", "route": "b", "n": 3})
        );
        assert_eq!(Line::new().finish(), "{}");
    }
}
