//! Decoding a Pub/Sub message into one [`Event`].
//!
//! Three shapes are accepted, tried in this order:
//! 1. CloudEvents binary mode: `ce-id`, `ce-source`, `ce-type`, `ce-specversion`
//!    attributes, the body is the data (what Eventarc and the CloudEvents
//!    Pub/Sub binding send).
//! 2. CloudEvents structured mode: a JSON body with `specversion`.
//! 3. The plain envelope publishers write by hand: `{"type": ..., "data": ...}`,
//!    where `type` may also come from a `type` attribute.
//!
//! Anything else is poison: [`decode`] returns a [`DecodeError`] naming what is
//! wrong, and the message goes to the dead-letter topic. Decoding never panics.

use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::SystemTime;

/// A message as it came from Pub/Sub (or a JSONL file), before decoding.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RawMessage {
    /// The message body.
    pub data: Vec<u8>,
    /// The message attributes.
    pub attributes: BTreeMap<String, String>,
    /// Pub/Sub's message id.
    pub message_id: String,
    /// When Pub/Sub accepted the message.
    pub publish_time: Option<SystemTime>,
    /// The ordering key, empty when none.
    pub ordering_key: String,
    /// Pub/Sub's count of deliveries, when the subscription tracks it.
    pub delivery_attempt: Option<i32>,
}

impl RawMessage {
    /// The message's size as Pub/Sub counts it against its 10 MB limit:
    /// data plus every attribute's key and value.
    pub fn size(&self) -> usize {
        self.attributes
            .iter()
            .fold(self.data.len(), |n, (k, v)| n + k.len() + v.len())
    }
}

/// Which of the accepted shapes a message had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// CloudEvents, binary content mode (attributes + body).
    CloudEventsBinary,
    /// CloudEvents, structured content mode (JSON body).
    CloudEventsStructured,
    /// `{"type": ..., "data": ...}`.
    Envelope,
}

impl Format {
    /// True for both CloudEvents modes, whose `source` + `id` identify an event.
    pub fn is_cloudevents(self) -> bool {
        matches!(
            self,
            Format::CloudEventsBinary | Format::CloudEventsStructured
        )
    }
}

/// One event, whatever shape it arrived in.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Event id (CloudEvents `id`; the envelope's `id`, else the message id).
    pub id: String,
    /// Producer (CloudEvents `source`; the envelope's `source`, else empty).
    pub source: String,
    /// Event type: what routes match on.
    pub event_type: String,
    /// CloudEvents `subject`, if any.
    pub subject: Option<String>,
    /// Event time as sent (RFC 3339), if any.
    pub time: Option<String>,
    /// The payload.
    pub data: Value,
    /// The message attributes (CloudEvents extensions among them).
    pub attributes: BTreeMap<String, String>,
    /// Pub/Sub message id.
    pub message_id: String,
    /// When Pub/Sub accepted the message.
    pub publish_time: Option<SystemTime>,
    /// Ordering key, empty when none.
    pub ordering_key: String,
    /// Delivery attempt, when known.
    pub delivery_attempt: Option<i32>,
    /// The shape the message had.
    pub format: Format,
}

/// Why a message is poison. The text names what is missing or malformed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(String);

impl DecodeError {
    fn new(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }
}

/// Decodes one message; see the module docs for the accepted shapes.
pub fn decode(msg: &RawMessage) -> Result<Event, DecodeError> {
    if msg.attributes.contains_key("ce-specversion")
        || (msg.attributes.contains_key("ce-id") && msg.attributes.contains_key("ce-type"))
    {
        return decode_binary(msg);
    }
    let body: Value = serde_json::from_slice(&msg.data).map_err(|e| {
        DecodeError::new(format!(
            "body is not JSON ({e}) and there are no CloudEvents ce-* attributes"
        ))
    })?;
    let Value::Object(obj) = body else {
        return Err(DecodeError::new(format!(
            "body is a JSON {}, expected an object (a CloudEvent or {{\"type\": ..., \"data\": ...}})",
            kind(&body)
        )));
    };
    if obj.contains_key("specversion") {
        decode_structured(msg, obj)
    } else {
        decode_envelope(msg, obj)
    }
}

fn decode_binary(msg: &RawMessage) -> Result<Event, DecodeError> {
    let attr = |name: &str| -> Result<String, DecodeError> {
        match msg.attributes.get(name) {
            Some(v) if !v.is_empty() => Ok(v.clone()),
            _ => Err(DecodeError::new(format!(
                "CloudEvents binary message lacks the required attribute {name}"
            ))),
        }
    };
    let id = attr("ce-id")?;
    let source = attr("ce-source")?;
    let event_type = attr("ce-type")?;
    let content_type = msg
        .attributes
        .get("content-type")
        .or_else(|| msg.attributes.get("ce-datacontenttype"));
    let data = binary_data(&msg.data, content_type.map(String::as_str))?;
    Ok(Event {
        id,
        source,
        event_type,
        subject: msg.attributes.get("ce-subject").cloned(),
        time: msg.attributes.get("ce-time").cloned(),
        data,
        ..meta(msg, Format::CloudEventsBinary)
    })
}

fn binary_data(body: &[u8], content_type: Option<&str>) -> Result<Value, DecodeError> {
    let json = content_type.is_none_or(|ct| ct.contains("json"));
    if body.is_empty() {
        return Ok(Value::Null);
    }
    if json {
        return serde_json::from_slice(body).map_err(|e| {
            DecodeError::new(format!("CloudEvents binary data is not valid JSON: {e}"))
        });
    }
    Ok(match std::str::from_utf8(body) {
        Ok(text) => Value::String(text.to_owned()),
        Err(_) => {
            use base64::Engine as _;
            Value::String(base64::engine::general_purpose::STANDARD.encode(body))
        }
    })
}

fn decode_structured(msg: &RawMessage, mut obj: Map<String, Value>) -> Result<Event, DecodeError> {
    let mut field = |name: &str| -> Result<String, DecodeError> {
        match obj.remove(name) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s),
            Some(other) => Err(DecodeError::new(format!(
                "CloudEvent field {name} must be a non-empty string, found {}",
                kind(&other)
            ))),
            None => Err(DecodeError::new(format!(
                "CloudEvent (specversion present) lacks the required field {name}"
            ))),
        }
    };
    let id = field("id")?;
    let source = field("source")?;
    let event_type = field("type")?;
    let data = match (obj.remove("data"), obj.remove("data_base64")) {
        (Some(d), _) => d,
        (None, Some(Value::String(b64))) => {
            use base64::Engine as _;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64.as_bytes())
                .map_err(|e| {
                    DecodeError::new(format!("CloudEvent data_base64 is not base64: {e}"))
                })?;
            binary_data(&bytes, obj.get("datacontenttype").and_then(Value::as_str))?
        }
        (None, Some(other)) => {
            return Err(DecodeError::new(format!(
                "CloudEvent data_base64 must be a string, found {}",
                kind(&other)
            )));
        }
        (None, None) => Value::Null,
    };
    Ok(Event {
        id,
        source,
        event_type,
        subject: string_field(&obj, "subject"),
        time: string_field(&obj, "time"),
        data,
        ..meta(msg, Format::CloudEventsStructured)
    })
}

fn decode_envelope(msg: &RawMessage, mut obj: Map<String, Value>) -> Result<Event, DecodeError> {
    let event_type = match obj.remove("type") {
        Some(Value::String(t)) if !t.is_empty() => t,
        Some(other) => {
            return Err(DecodeError::new(format!(
                "envelope field type must be a non-empty string, found {}",
                kind(&other)
            )));
        }
        None => match msg.attributes.get("type") {
            Some(t) if !t.is_empty() => t.clone(),
            _ => {
                return Err(DecodeError::new(
                    "no event type: neither a type field in the body nor a type attribute",
                ));
            }
        },
    };
    let Some(data) = obj.remove("data") else {
        return Err(DecodeError::new(format!(
            "envelope of type {event_type} lacks the data field"
        )));
    };
    let m = meta(msg, Format::Envelope);
    Ok(Event {
        id: string_field(&obj, "id").unwrap_or_else(|| msg.message_id.clone()),
        source: string_field(&obj, "source")
            .or_else(|| msg.attributes.get("source").cloned())
            .unwrap_or_default(),
        event_type,
        subject: string_field(&obj, "subject"),
        time: string_field(&obj, "time"),
        data,
        ..m
    })
}

fn meta(msg: &RawMessage, format: Format) -> Event {
    Event {
        id: String::new(),
        source: String::new(),
        event_type: String::new(),
        subject: None,
        time: None,
        data: Value::Null,
        attributes: msg.attributes.clone(),
        message_id: msg.message_id.clone(),
        publish_time: msg.publish_time,
        ordering_key: msg.ordering_key.clone(),
        delivery_attempt: msg.delivery_attempt,
        format,
    }
}

fn string_field(obj: &Map<String, Value>, name: &str) -> Option<String> {
    obj.get(name).and_then(Value::as_str).map(str::to_owned)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

impl Event {
    /// Looks up a dotted path in the event's JSON view: `id`, `source`, `type`,
    /// `subject`, `time`, `message_id`, `data.<path>` (array items by index),
    /// `attributes.<name>`.
    pub fn lookup(&self, path: &str) -> Option<Cow<'_, Value>> {
        let (head, rest) = match path.split_once('.') {
            Some((h, r)) => (h, Some(r)),
            None => (path, None),
        };
        let owned = |s: &str| Some(Cow::Owned(Value::String(s.to_owned())));
        match (head, rest) {
            ("data", None) => Some(Cow::Borrowed(&self.data)),
            ("data", Some(rest)) => {
                let mut cur = &self.data;
                for seg in rest.split('.') {
                    cur = match cur {
                        Value::Object(m) => m.get(seg)?,
                        Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
                        _ => return None,
                    };
                }
                Some(Cow::Borrowed(cur))
            }
            ("attributes", Some(name)) => self.attributes.get(name).and_then(|v| owned(v)),
            ("id", None) => owned(&self.id),
            ("source", None) => owned(&self.source),
            ("type", None) => owned(&self.event_type),
            ("message_id", None) => owned(&self.message_id),
            ("subject", None) => self.subject.as_deref().and_then(owned),
            ("time", None) => self.time.as_deref().and_then(owned),
            _ => None,
        }
    }

    /// The event as one JSON object, the input of mappings (jq filters):
    /// `{id, source, type, subject, time, data, attributes, message_id}`.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "id": self.id,
            "source": self.source,
            "type": self.event_type,
            "subject": self.subject,
            "time": self.time,
            "data": self.data,
            "attributes": self.attributes,
            "message_id": self.message_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msg(data: &[u8], attrs: &[(&str, &str)]) -> RawMessage {
        RawMessage {
            data: data.to_vec(),
            attributes: attrs
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
            message_id: "m-1".into(),
            ..RawMessage::default()
        }
    }

    #[test]
    fn cloudevents_binary() {
        let m = msg(
            br#"{"orderId":"A1"}"#,
            &[
                ("ce-specversion", "1.0"),
                ("ce-id", "e-1"),
                ("ce-source", "//erp/orders"),
                ("ce-type", "order.created"),
                ("ce-subject", "A1"),
                ("content-type", "application/json"),
            ],
        );
        let e = decode(&m).expect("binary event decodes");
        assert_eq!(e.format, Format::CloudEventsBinary);
        assert_eq!((e.id.as_str(), e.source.as_str()), ("e-1", "//erp/orders"));
        assert_eq!(e.event_type, "order.created");
        assert_eq!(e.subject.as_deref(), Some("A1"));
        assert_eq!(e.data, json!({"orderId": "A1"}));
    }

    #[test]
    fn cloudevents_binary_text_data_and_missing_source() {
        let m = msg(
            b"hello",
            &[
                ("ce-specversion", "1.0"),
                ("ce-id", "1"),
                ("ce-source", "s"),
                ("ce-type", "t"),
                ("content-type", "text/plain"),
            ],
        );
        assert_eq!(decode(&m).map(|e| e.data), Ok(json!("hello")));
        let m = msg(
            b"{}",
            &[("ce-specversion", "1.0"), ("ce-id", "1"), ("ce-type", "t")],
        );
        let err = decode(&m).expect_err("missing ce-source is poison");
        assert!(err.to_string().contains("ce-source"), "{err}");
    }

    #[test]
    fn cloudevents_structured() {
        let body = json!({"specversion": "1.0", "id": "e-2", "source": "/crm", "type": "contact.updated",
                          "time": "2026-11-28T10:00:00Z", "data": {"email": "a@b.c"}});
        let e = decode(&msg(body.to_string().as_bytes(), &[])).expect("structured decodes");
        assert_eq!(e.format, Format::CloudEventsStructured);
        assert_eq!(e.id, "e-2");
        assert_eq!(e.time.as_deref(), Some("2026-11-28T10:00:00Z"));
        assert_eq!(e.data, json!({"email": "a@b.c"}));
    }

    #[test]
    fn structured_data_base64() {
        let body = json!({"specversion": "1.0", "id": "e", "source": "s", "type": "t",
                          "datacontenttype": "application/json", "data_base64": "eyJhIjoxfQ=="});
        assert_eq!(
            decode(&msg(body.to_string().as_bytes(), &[])).map(|e| e.data),
            Ok(json!({"a": 1}))
        );
    }

    #[test]
    fn plain_envelope_with_type_in_body_or_attribute() {
        let e = decode(&msg(br#"{"type":"order.created","data":{"n":1}}"#, &[])).expect("envelope");
        assert_eq!(e.format, Format::Envelope);
        assert_eq!(e.event_type, "order.created");
        assert_eq!(e.id, "m-1", "falls back to the message id");
        let e = decode(&msg(br#"{"data":{"n":1}}"#, &[("type", "order.paid")])).expect("envelope");
        assert_eq!(e.event_type, "order.paid");
    }

    #[test]
    fn garbage_is_poison_with_a_reason() {
        for (body, needle) in [
            (&b"\xff\xfe not json"[..], "not JSON"),
            (b"[1,2]", "array"),
            (br#"{"data":{}}"#, "no event type"),
            (br#"{"type":"x"}"#, "lacks the data field"),
            (br#"{"specversion":"1.0","id":"1","type":"t"}"#, "source"),
            (br#"{"type":7,"data":{}}"#, "non-empty string"),
        ] {
            let err = decode(&msg(body, &[])).expect_err("poison");
            assert!(
                err.to_string().contains(needle),
                "{err} should mention {needle}"
            );
        }
    }

    #[test]
    fn lookup_paths() {
        let e = decode(&msg(
            br#"{"type":"t","id":"i","data":{"a":{"b":[10,{"c":"x"}]}}}"#,
            &[("k", "v")],
        ))
        .expect("decodes");
        assert_eq!(e.lookup("data.a.b.1.c").as_deref(), Some(&json!("x")));
        assert_eq!(e.lookup("data.a.b.0").as_deref(), Some(&json!(10)));
        assert_eq!(e.lookup("attributes.k").as_deref(), Some(&json!("v")));
        assert_eq!(e.lookup("id").as_deref(), Some(&json!("i")));
        assert!(e.lookup("data.missing").is_none());
        assert!(e.lookup("nope").is_none());
    }
}
