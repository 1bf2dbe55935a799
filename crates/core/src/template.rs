//! Path templates: `/orders/{data.orderId}/lines`.
//!
//! A placeholder names a field of the event ([`Event::lookup`]); its value is
//! percent-encoded as one path segment, so no event can change the host, add a
//! query or climb out of the path (`..` is refused outright).

use crate::error::ConnectorError;
use crate::event::Event;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

/// Everything but RFC 3986 unreserved characters is encoded.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `text` as one URL path segment: RFC 3986's unreserved characters
/// (letters, digits, `-`, `.`, `_`, `~`) stay as they are, everything else
/// is percent-encoded, so a value can never add a segment, a query or a
/// fragment. The encoding of every rendered template, and of values a
/// connector puts in a path itself.
pub fn segment(text: &str) -> String {
    utf8_percent_encode(text, SEGMENT).to_string()
}

#[derive(Clone, Debug, PartialEq)]
enum Part {
    Literal(String),
    Field(String),
}

/// A parsed template. Parse once at config load, render per event.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

impl Template {
    /// Parses `text`; `{` and `}` must pair and enclose a field path.
    pub fn parse(text: &str) -> Result<Self, crate::config::ConfigError> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            let (lit, after) = rest.split_at(open);
            if lit.contains('}') {
                return Err(format!("unmatched }} in template {text:?}").into());
            }
            if !lit.is_empty() {
                parts.push(Part::Literal(lit.to_owned()));
            }
            let close = after
                .find('}')
                .ok_or_else(|| format!("unclosed {{ in template {text:?}"))?;
            let field = after[1..close].trim();
            if field.is_empty() || field.contains('{') {
                return Err(format!("empty or nested placeholder in template {text:?}").into());
            }
            parts.push(Part::Field(field.to_owned()));
            rest = &after[close + 1..];
        }
        if rest.contains('}') {
            return Err(format!("unmatched }} in template {text:?}").into());
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_owned()));
        }
        Ok(Self {
            source: text.to_owned(),
            parts,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Renders the template for `event`, each value percent-encoded as one
    /// URL path segment. A missing field, or a value that is not a string,
    /// number or boolean, is a permanent error naming the field.
    pub fn render(&self, event: &Event) -> Result<String, ConnectorError> {
        self.render_with(event, |text, _| Ok(segment(text)))
    }

    /// Renders with a vendor's own rule for values: `encode(value, field)`
    /// returns the text to insert or why the value cannot be used.
    pub fn render_with(
        &self,
        event: &Event,
        encode: impl Fn(&str, &str) -> Result<String, String>,
    ) -> Result<String, ConnectorError> {
        let mut out = String::with_capacity(self.source.len() + 16);
        for part in &self.parts {
            match part {
                Part::Literal(l) => out.push_str(l),
                Part::Field(f) => {
                    let value = event.lookup(f).ok_or_else(|| {
                        ConnectorError::permanent(format!(
                            "template {:?}: the event has no field {f}",
                            self.source
                        ))
                    })?;
                    let text = match value.as_ref() {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        other => {
                            return Err(ConnectorError::permanent(format!(
                                "template {:?}: field {f} is {other}, expected a string or number",
                                self.source
                            )));
                        }
                    };
                    if text.is_empty() || text == "." || text == ".." {
                        return Err(ConnectorError::permanent(format!(
                            "template {:?}: field {f} is {text:?}, which is not a valid path segment",
                            self.source
                        )));
                    }
                    let encoded = encode(&text, f).map_err(|e| {
                        ConnectorError::permanent(format!(
                            "template {:?}: field {f}: {e}",
                            self.source
                        ))
                    })?;
                    out.push_str(&encoded);
                }
            }
        }
        Ok(out)
    }

    /// The literal text between placeholders, in order (for config checks).
    pub fn literals(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Literal(l) => Some(l.as_str()),
            Part::Field(_) => None,
        })
    }
}

/// In the config's JSON Schema: a string (its placeholders are checked when
/// the config loads).
impl schemars::JsonSchema for Template {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Template".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A template: text with {field.path} placeholders filled from the event, e.g. \"/orders/{data.orderId}\"."
        })
    }
}

impl<'de> serde::Deserialize<'de> for Template {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Template::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{RawMessage, decode};

    fn event(data: &str) -> Event {
        let raw = RawMessage {
            data: format!(r#"{{"type":"t","data":{data}}}"#).into_bytes(),
            message_id: "m".into(),
            ..RawMessage::default()
        };
        decode(&raw).expect("test event decodes")
    }

    #[test]
    fn renders_and_encodes() {
        let t = Template::parse("/orders/{data.id}/lines/{data.n}").expect("parses");
        let e = event(r#"{"id":"a/b?c#d@evil.com:80 x","n":3}"#);
        assert_eq!(
            t.render(&e).expect("renders"),
            "/orders/a%2Fb%3Fc%23d%40evil.com%3A80%20x/lines/3"
        );
    }

    #[test]
    fn refuses_dot_segments_and_missing_fields() {
        let t = Template::parse("/x/{data.id}").expect("parses");
        for bad in [
            r#"{"id":".."}"#,
            r#"{"id":""}"#,
            r#"{"id":{"a":1}}"#,
            r#"{}"#,
        ] {
            let err = t.render(&event(bad)).expect_err("refused");
            assert!(err.is_permanent());
            assert!(err.message().contains("data.id"), "{err}");
        }
    }

    #[test]
    fn parse_errors() {
        assert!(Template::parse("/x/{data.id").is_err());
        assert!(Template::parse("/x/}").is_err());
        assert!(Template::parse("/x/{}").is_err());
        assert_eq!(Template::parse("/plain").map(|t| t.parts.len()), Ok(1));
    }
}
