//! Mappings: a jq filter (via `jaq`) from the event to what the target gets.
//!
//! The filter's input is [`Event::to_json`](crate::event::Event::to_json):
//! `{id, source, type, subject, time, data, attributes, message_id}`. It must
//! give exactly one value. Filters are compiled once when the config loads, so
//! a typo stops the worker at start instead of dead-lettering every event.
//!
//! A filter that is only a path (`.`, `.data`, `.data.customer.id`) is by far
//! the most common mapping, and it is answered from the event directly
//! ([`Mapping::apply_event`]), without building the event's JSON view or
//! running jq; where the path is missing, jq runs so its answer (`null`, or
//! an error) stays exactly jq's.

use crate::error::ConnectorError;
use crate::event::Event;
use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, data, unwrap_valr};
use jaq_json::Val;
use serde_json::Value;
use std::fmt;

type Filter = jaq_core::compile::Filter<jaq_core::Native<data::JustLut<Val>>>;

/// A compiled jq filter.
pub struct Mapping {
    code: String,
    filter: Filter,
    /// `Some("")` for `.`, `Some("data.id")` for `.data.id`: a filter that is
    /// a plain path, in [`Event::lookup`]'s spelling.
    path: Option<String>,
}

/// The dotted path of a filter that is nothing but `.` or `.a.b.c` (jq
/// identifiers only), else `None`.
fn plain_path(code: &str) -> Option<String> {
    let code = code.trim();
    if code == "." {
        return Some(String::new());
    }
    let rest = code.strip_prefix('.')?;
    let ident = |seg: &str| {
        let mut chars = seg.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    rest.split('.').all(ident).then(|| rest.to_owned())
}

impl fmt::Debug for Mapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Mapping").field(&self.code).finish()
    }
}

impl Mapping {
    /// Compiles `code`; the error lists what jq could not read.
    pub fn compile(code: &str) -> Result<Self, crate::config::ConfigError> {
        let defs = jaq_core::defs()
            .chain(jaq_std::defs())
            .chain(jaq_json::defs());
        let funs = jaq_core::funs()
            .chain(jaq_std::funs())
            .chain(jaq_json::funs());
        let loader = Loader::new(defs);
        let arena = Arena::default();
        let modules = loader
            .load(&arena, File { code, path: () })
            .map_err(|errs| {
                format!(
                    "jq filter {code:?} does not parse ({} error(s))",
                    errs.len()
                )
            })?;
        let filter = Compiler::default()
            .with_funs(funs)
            .compile(modules)
            .map_err(|errs| {
                let names: Vec<String> = errs
                    .into_iter()
                    .flat_map(|(_, es)| es.into_iter().map(|(name, _)| name.to_string()))
                    .collect();
                format!(
                    "jq filter {code:?} does not compile: unknown {}",
                    names.join(", ")
                )
            })?;
        Ok(Self {
            code: code.to_owned(),
            filter,
            path: plain_path(code),
        })
    }

    /// The filter as written.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// Runs the filter on `event`'s JSON view ([`Event::to_json`]); a plain
    /// path is looked up in the event instead, with the same result.
    pub fn apply_event(&self, event: &Event) -> Result<Value, ConnectorError> {
        match self.path.as_deref() {
            Some("") => return Ok(event.to_json()),
            Some(path) => {
                if let Some(v) = event.lookup(path) {
                    return Ok(v.into_owned());
                }
            }
            None => {}
        }
        self.apply(&event.to_json())
    }

    /// [`apply_event`](Self::apply_event), as JSON text: a plain path
    /// (`.data`, the usual body) is written straight from the event, without
    /// copying its value first.
    pub fn apply_event_to_vec(&self, event: &Event) -> Result<Vec<u8>, ConnectorError> {
        if let Some(path) = self.path.as_deref().filter(|p| !p.is_empty())
            && let Some(v) = event.lookup(path)
        {
            return to_vec(&v);
        }
        to_vec(&self.apply_event(event)?)
    }

    /// Runs the filter on `input`. No output, more than one output, or a jq
    /// error is a permanent error: the same event would fail the same way.
    pub fn apply(&self, input: &Value) -> Result<Value, ConnectorError> {
        // Straight from the tree: no JSON text in between.
        let val = <Val as serde::Deserialize>::deserialize(input)
            .map_err(|e| ConnectorError::permanent(format!("mapping input: {e}")))?;
        let ctx = Ctx::<data::JustLut<Val>>::new(&self.filter.lut, Vars::new([]));
        let mut out = self.filter.id.run((ctx, val)).map(unwrap_valr);
        let first = match out.next() {
            Some(Ok(v)) => v,
            Some(Err(e)) => {
                return Err(ConnectorError::permanent(format!(
                    "mapping {:?} failed: {e}",
                    self.code
                )));
            }
            None => {
                return Err(ConnectorError::permanent(format!(
                    "mapping {:?} gave no value",
                    self.code
                )));
            }
        };
        if out.next().is_some() {
            return Err(ConnectorError::permanent(format!(
                "mapping {:?} gave more than one value; wrap it in [...] to send an array",
                self.code
            )));
        }
        serde_json::from_str(&first.to_string()).map_err(|e| {
            ConnectorError::permanent(format!(
                "mapping {:?} gave a value that is not JSON: {e}",
                self.code
            ))
        })
    }
}

/// The fields a write sends: `mapping` applied to the event, or the event's
/// data when the route has none. They must be a JSON object (a record, a
/// document, an entity); anything else is a permanent error naming `what`.
///
/// ```
/// use gluefleet_core::mapping::{Mapping, fields_of};
/// use gluefleet_core::{RawMessage, event::decode};
/// let body = r#"{"type": "order.created", "data": {"id": "A1", "total": 5}}"#;
/// let event = decode(&RawMessage { data: body.into(), message_id: "1".into(), ..Default::default() }).unwrap();
/// let m = Mapping::compile("{Name: .data.id}").unwrap();
/// assert_eq!(fields_of(Some(&m), &event, "record").unwrap()["Name"], "A1");
/// let e = fields_of(Some(&Mapping::compile(".data.total").unwrap()), &event, "record").unwrap_err();
/// assert!(e.is_permanent() && e.message().contains("the record's fields must be a JSON object"));
/// ```
pub fn fields_of(
    mapping: Option<&Mapping>,
    event: &Event,
    what: &str,
) -> Result<serde_json::Map<String, Value>, ConnectorError> {
    let mapped = match mapping {
        Some(m) => m.apply_event(event)?,
        None => event.data.clone(),
    };
    match mapped {
        Value::Object(fields) => Ok(fields),
        other => {
            let mut shown = other.to_string();
            if shown.len() > 120 {
                let mut cut = 120;
                while !shown.is_char_boundary(cut) {
                    cut -= 1;
                }
                shown.truncate(cut);
                shown.push_str("...");
            }
            Err(ConnectorError::permanent(format!(
                "the {what}'s fields must be a JSON object; got {shown}"
            )))
        }
    }
}

/// In the config's JSON Schema: a string (the filter is compiled when the
/// config loads).
impl schemars::JsonSchema for Mapping {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Mapping".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A jq filter over the event, e.g. \"{id: .data.orderId, total: .data.total}\"."
        })
    }
}

impl<'de> serde::Deserialize<'de> for Mapping {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = String::deserialize(d)?;
        Mapping::compile(&code).map_err(serde::de::Error::custom)
    }
}

/// A mapped value as JSON text. A `Value` always serialises; the error
/// is kept rather than unwrapped all the same.
pub fn to_vec(v: &Value) -> Result<Vec<u8>, ConnectorError> {
    serde_json::to_vec(v).map_err(|e| {
        ConnectorError::permanent(format!("the mapped value cannot be written as JSON: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn maps_an_event() -> Result<(), ConnectorError> {
        let m = Mapping::compile(
            "{orderId: .data.id, total: (.data.lines | map(.price) | add), source}",
        )
        .map_err(ConnectorError::permanent)?;
        let input = json!({"source": "/erp", "data": {"id": "A1", "lines": [{"price": 2}, {"price": 3.5}]}});
        assert_eq!(
            m.apply(&input)?,
            json!({"orderId": "A1", "total": 5.5, "source": "/erp"})
        );
        Ok(())
    }

    fn event(data: Value) -> Event {
        let raw = crate::event::RawMessage {
            data: serde_json::to_vec(&json!({"specversion": "1.0", "id": "e1",
                "source": "/erp", "type": "order.created", "data": data}))
            .unwrap_or_default(),
            ..crate::event::RawMessage::default()
        };
        crate::event::decode(&raw).unwrap_or_else(|e| panic!("test event decodes: {e}"))
    }

    #[test]
    fn plain_paths_are_recognised_and_nothing_else() {
        assert_eq!(plain_path(" . "), Some(String::new()));
        assert_eq!(plain_path(".data"), Some("data".into()));
        assert_eq!(
            plain_path(".data.customer_id"),
            Some("data.customer_id".into())
        );
        for code in [
            ".data[0]",
            ".data.\"x-y\"",
            ".data | .a",
            "..",
            ".data.",
            ".1a",
            "data",
        ] {
            assert_eq!(plain_path(code), None, "{code}");
        }
    }

    #[test]
    fn a_plain_path_gives_what_jq_gives() -> Result<(), String> {
        let e = event(json!({"id": "A1", "lines": [1, 2], "n": null, "s": "text"}));
        for code in [
            ".",
            ".data",
            ".data.id",
            ".data.lines",
            ".data.n",
            ".data.missing",
            ".id",
            ".source",
            ".type",
            ".subject",
            ".attributes",
            ".nothing",
        ] {
            let m = Mapping::compile(code)?;
            assert!(m.path.is_some(), "{code} is a plain path");
            let fast = m.apply_event(&e).map_err(|e| e.to_string())?;
            let jq = m.apply(&e.to_json()).map_err(|e| e.to_string())?;
            assert_eq!(fast, jq, "{code}");
        }
        // jq refuses to index a string; so does the plain path, through jq.
        let m = Mapping::compile(".data.s.x")?;
        assert!(m.apply_event(&e).is_err());
        Ok(())
    }

    #[test]
    fn errors_are_permanent_and_say_why() {
        assert!(Mapping::compile("{a: .b").is_err());
        assert!(Mapping::compile("nosuchfn(1)").is_err());
        let many = Mapping::compile(".data[]").expect("compiles");
        let err = many
            .apply(&json!({"data": [1, 2]}))
            .expect_err("two outputs");
        assert!(
            err.is_permanent() && err.message().contains("more than one"),
            "{err}"
        );
        let none = Mapping::compile("empty").expect("compiles");
        assert!(
            none.apply(&json!({}))
                .expect_err("no output")
                .message()
                .contains("no value")
        );
        let fails = Mapping::compile(r#"error("bad total")"#).expect("compiles");
        assert!(
            fails
                .apply(&json!({}))
                .expect_err("jq error")
                .message()
                .contains("bad total")
        );
    }
}
