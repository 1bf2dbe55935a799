//! One input record as one Pub/Sub message, in one of the three shapes the
//! workers decode ([`gluefleet_core::event`]): what is published here is
//! read back there as the same event, which the tests check by decoding.

use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::fmt;

/// How an event is laid out in the message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Envelope {
    /// CloudEvents binary content mode (the Pub/Sub protocol binding): the
    /// context in `ce-*` attributes, the record as the body. The default:
    /// attributes can be filtered on by subscriptions, and the body stays
    /// the publisher's own JSON.
    #[default]
    Binary,
    /// CloudEvents structured content mode: one JSON body holding the
    /// context and the record as `data`.
    Structured,
    /// `{"type": ..., "data": ...}`: no id or source; the workers derive an
    /// id from the body.
    Plain,
}

/// What each input record is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Records {
    /// The event's data; the type, source and id come from the options.
    #[default]
    Data,
    /// A whole CloudEvent in its JSON format (`specversion`, `id`,
    /// `source`, `type`, optional `subject`, `time`, extensions and
    /// `data`): events exported from elsewhere, or a test's fixtures,
    /// republished as they are, each with its own type and id.
    Cloudevents,
}

/// What every message of one run shares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shape {
    /// What a record is.
    pub records: Records,
    /// The layout.
    pub envelope: Envelope,
    /// CloudEvents `type`, e.g. `order.created`.
    pub event_type: String,
    /// CloudEvents `source`, e.g. `//erp/orders`.
    pub source: String,
    /// The record field whose value is the event id; `None`: a new UUID per
    /// event (a re-run then publishes new events, which idempotency cannot
    /// recognise as repeats).
    pub id_field: Option<String>,
    /// The record field whose value is the ordering key.
    pub ordering_key_field: Option<String>,
    /// The record field whose value is the CloudEvents `subject`.
    pub subject_field: Option<String>,
    /// Attributes set on every message.
    pub attributes: BTreeMap<String, String>,
}

/// One message, ready to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoded {
    /// The event id (empty for [`Envelope::Plain`]).
    pub id: String,
    /// The body.
    pub data: Vec<u8>,
    /// The attributes.
    pub attributes: BTreeMap<String, String>,
    /// The ordering key, empty for none.
    pub ordering_key: String,
}

/// Why a record cannot be published; names the field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodeError(String);

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Pub/Sub's limit on a message: data plus attributes.
pub const MAX_MESSAGE_BYTES: usize = 10_000_000;

/// A field's value as a string: strings as they are, numbers in JSON form.
/// Anything else (or an empty string) is refused: an id, key or subject
/// must name something.
fn field(record: &Value, name: &str, what: &str) -> Result<String, EncodeError> {
    match record.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(Value::String(_)) => Err(EncodeError(format!(
            "field {name:?} (the {what}) is an empty string"
        ))),
        Some(other) => Err(EncodeError(format!(
            "field {name:?} (the {what}) is {}, expected a non-empty string or a number",
            kind(other)
        ))),
        None if record.is_object() => Err(EncodeError(format!(
            "field {name:?} (the {what}) is missing"
        ))),
        None => Err(EncodeError(format!(
            "the record is {}, so it has no field {name:?} (the {what})",
            kind(record)
        ))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The CloudEvents context attributes a [`Records::Cloudevents`] record
/// must have (all but `type` only in a CloudEvents envelope).
const REQUIRED: [&str; 4] = ["specversion", "id", "source", "type"];

/// A context attribute or extension of a CloudEvent record as an attribute
/// value: CloudEvents' type system maps every attribute to a string.
fn context_value(name: &str, v: &Value) -> Result<String, EncodeError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(EncodeError(format!(
            "attribute {name:?} is {}, expected a string, number or boolean",
            kind(other)
        ))),
    }
}

/// CloudEvents attribute names are lower-case ASCII letters and digits.
fn valid_attribute_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// `datacontenttype` values whose data the workers can read: JSON.
fn is_json(content_type: &str) -> bool {
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    media == "application/json" || media.ends_with("+json")
}

impl Shape {
    /// `record` as a message; `new_id` is called when the id is generated.
    pub fn encode(
        &self,
        record: &Value,
        new_id: impl FnOnce() -> String,
    ) -> Result<Encoded, EncodeError> {
        if self.records == Records::Cloudevents {
            return self.encode_cloudevent(record);
        }
        let id = match (&self.id_field, self.envelope) {
            (_, Envelope::Plain) => String::new(),
            (Some(f), _) => field(record, f, "event id")?,
            (None, _) => new_id(),
        };
        let ordering_key = match &self.ordering_key_field {
            Some(f) => field(record, f, "ordering key")?,
            None => String::new(),
        };
        let subject = match &self.subject_field {
            Some(f) => Some(field(record, f, "subject")?),
            None => None,
        };
        let mut attributes = self.attributes.clone();
        let data = match self.envelope {
            Envelope::Binary => {
                attributes.insert("ce-specversion".into(), "1.0".into());
                attributes.insert("ce-id".into(), id.clone());
                attributes.insert("ce-type".into(), self.event_type.clone());
                attributes.insert("ce-source".into(), self.source.clone());
                if let Some(s) = subject {
                    attributes.insert("ce-subject".into(), s);
                }
                attributes.insert("content-type".into(), "application/json".into());
                serde_json::to_vec(record)
            }
            Envelope::Structured => {
                let mut event = Map::new();
                event.insert("specversion".into(), json!("1.0"));
                event.insert("id".into(), json!(id));
                event.insert("type".into(), json!(self.event_type));
                event.insert("source".into(), json!(self.source));
                if let Some(s) = subject {
                    event.insert("subject".into(), json!(s));
                }
                event.insert("datacontenttype".into(), json!("application/json"));
                event.insert("data".into(), record.clone());
                attributes.insert("content-type".into(), "application/cloudevents+json".into());
                serde_json::to_vec(&Value::Object(event))
            }
            Envelope::Plain => {
                serde_json::to_vec(&json!({"type": self.event_type, "data": record}))
            }
        }
        .map_err(|e| EncodeError(format!("cannot serialise the record: {e}")))?;
        sized(Encoded {
            id,
            data,
            attributes,
            ordering_key,
        })
    }

    /// A [`Records::Cloudevents`] record in the run's envelope: its own
    /// context (type, source, id, subject, time, extensions) kept, checked
    /// as the workers' decoder would read it.
    fn encode_cloudevent(&self, record: &Value) -> Result<Encoded, EncodeError> {
        let Some(event) = record.as_object() else {
            return Err(EncodeError(format!(
                "the record is {}, expected a CloudEvent (an object with specversion, id, source, type)",
                kind(record)
            )));
        };
        let needed: &[&str] = if self.envelope == Envelope::Plain {
            &["type"]
        } else {
            &REQUIRED
        };
        for name in needed {
            field(record, name, "CloudEvents attribute")?;
        }
        if let Some(v) = event.get("specversion")
            && v != "1.0"
        {
            return Err(EncodeError(format!(
                "specversion is {v}: only CloudEvents 1.0 is supported"
            )));
        }
        if event.contains_key("data_base64") {
            return Err(EncodeError(
                "data_base64 is not supported: workers read JSON data, so give it as \"data\""
                    .to_owned(),
            ));
        }
        if let Some(ct) = event.get("datacontenttype") {
            let ct = context_value("datacontenttype", ct)?;
            if !is_json(&ct) {
                return Err(EncodeError(format!(
                    "datacontenttype {ct:?} is not JSON: workers read JSON data"
                )));
            }
        }
        let data = event.get("data").cloned().unwrap_or(Value::Null);
        let ordering_key = match &self.ordering_key_field {
            Some(f) => field(&data, f, "ordering key")?,
            None => String::new(),
        };
        let event_type = context_value("type", &event["type"])?;
        let id = match event.get("id") {
            Some(v) if self.envelope != Envelope::Plain => context_value("id", v)?,
            _ => String::new(),
        };
        let mut attributes = self.attributes.clone();
        let body = match self.envelope {
            Envelope::Binary => {
                for (name, v) in event {
                    if name == "data" || name == "datacontenttype" {
                        continue;
                    }
                    if !valid_attribute_name(name) {
                        return Err(EncodeError(format!(
                            "attribute {name:?} is not a CloudEvents attribute name (lower-case letters and digits)"
                        )));
                    }
                    attributes.insert(format!("ce-{name}"), context_value(name, v)?);
                }
                let ct = match event.get("datacontenttype") {
                    Some(v) => context_value("datacontenttype", v)?,
                    None => "application/json".to_owned(),
                };
                attributes.insert("content-type".into(), ct);
                serde_json::to_vec(&data)
            }
            Envelope::Structured => {
                attributes.insert("content-type".into(), "application/cloudevents+json".into());
                serde_json::to_vec(record)
            }
            Envelope::Plain => serde_json::to_vec(&json!({"type": event_type, "data": data})),
        }
        .map_err(|e| EncodeError(format!("cannot serialise the event: {e}")))?;
        sized(Encoded {
            id,
            data: body,
            attributes,
            ordering_key,
        })
    }
}

/// `e`, unless it is over Pub/Sub's limit.
fn sized(e: Encoded) -> Result<Encoded, EncodeError> {
    let size = e
        .attributes
        .iter()
        .fold(e.data.len(), |n, (k, v)| n + k.len() + v.len());
    if size > MAX_MESSAGE_BYTES {
        return Err(EncodeError(format!(
            "the message would be {size} bytes, over Pub/Sub's {MAX_MESSAGE_BYTES}-byte limit"
        )));
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gluefleet_core::event::{Format, RawMessage, decode};

    fn shape(envelope: Envelope) -> Shape {
        Shape {
            records: Records::Data,
            envelope,
            event_type: "order.created".into(),
            source: "//erp/orders".into(),
            id_field: Some("order".into()),
            ordering_key_field: Some("customer".into()),
            subject_field: Some("order".into()),
            attributes: BTreeMap::from([("tenant".into(), "eu".into())]),
        }
    }

    fn raw(e: &Encoded) -> RawMessage {
        RawMessage {
            data: e.data.clone(),
            attributes: e.attributes.clone(),
            message_id: "m-1".into(),
            ordering_key: e.ordering_key.clone(),
            ..RawMessage::default()
        }
    }

    #[test]
    fn every_envelope_decodes_as_the_event_it_was_made_from() {
        let record = json!({"order": 42, "customer": "C-7", "total": 9.5});
        for (envelope, format) in [
            (Envelope::Binary, Format::CloudEventsBinary),
            (Envelope::Structured, Format::CloudEventsStructured),
            (Envelope::Plain, Format::Envelope),
        ] {
            let encoded = shape(envelope)
                .encode(&record, || unreachable!("the id is a field"))
                .expect("encodes");
            assert_eq!(encoded.ordering_key, "C-7");
            assert_eq!(
                encoded.attributes.get("tenant").map(String::as_str),
                Some("eu")
            );
            let event = decode(&raw(&encoded)).expect("decodes");
            assert_eq!(event.format, format, "{envelope:?}");
            assert_eq!(event.event_type, "order.created");
            assert_eq!(event.data, record);
            if envelope == Envelope::Plain {
                assert_eq!(encoded.id, "");
            } else {
                assert_eq!(encoded.id, "42");
                assert_eq!(event.id, "42");
                assert_eq!(event.source, "//erp/orders");
                assert_eq!(event.subject.as_deref(), Some("42"));
            }
        }
    }

    #[test]
    fn a_generated_id_is_used_only_without_an_id_field() {
        let mut s = shape(Envelope::Binary);
        s.id_field = None;
        let e = s
            .encode(&json!({"customer": "C-1", "order": 1}), || "gen-1".into())
            .expect("encodes");
        assert_eq!(e.attributes.get("ce-id").map(String::as_str), Some("gen-1"));
    }

    #[test]
    fn a_missing_or_unusable_field_is_named() {
        let s = shape(Envelope::Binary);
        let err = |record: Value| {
            s.encode(&record, || "x".into())
                .expect_err("refused")
                .to_string()
        };
        assert_eq!(
            err(json!({"customer": "C-1"})),
            "field \"order\" (the event id) is missing"
        );
        assert_eq!(
            err(json!({"order": 1, "customer": null})),
            "field \"customer\" (the ordering key) is null, expected a non-empty string or a number"
        );
        assert_eq!(
            err(json!({"order": "", "customer": "C"})),
            "field \"order\" (the event id) is an empty string"
        );
        assert_eq!(
            err(json!([1, 2])),
            "the record is an array, so it has no field \"order\" (the event id)"
        );
    }

    #[test]
    fn an_oversized_message_is_refused_before_publishing() {
        let mut s = shape(Envelope::Plain);
        s.ordering_key_field = None;
        s.subject_field = None;
        let big = json!({"blob": "x".repeat(MAX_MESSAGE_BYTES)});
        let err = s
            .encode(&big, String::new)
            .expect_err("too big")
            .to_string();
        assert!(err.contains("over Pub/Sub's 10000000-byte limit"), "{err}");
    }

    fn cloudevents(envelope: Envelope) -> Shape {
        Shape {
            records: Records::Cloudevents,
            envelope,
            event_type: String::new(),
            source: String::new(),
            id_field: None,
            ordering_key_field: Some("customer".into()),
            subject_field: None,
            attributes: BTreeMap::from([("tenant".into(), "eu".into())]),
        }
    }

    #[test]
    fn a_cloudevent_record_keeps_its_own_context_in_every_envelope() {
        let data = json!({"customer": "C-7", "total": 9.5});
        let record = json!({
            "specversion": "1.0", "id": "evt-1", "source": "//erp/orders",
            "type": "order.created", "subject": "A-1", "time": "2026-12-06T10:00:00Z",
            "tenantregion": "eu-west", "data": data,
        });
        for (envelope, format) in [
            (Envelope::Binary, Format::CloudEventsBinary),
            (Envelope::Structured, Format::CloudEventsStructured),
            (Envelope::Plain, Format::Envelope),
        ] {
            let encoded = cloudevents(envelope)
                .encode(&record, || unreachable!("the event has its id"))
                .expect("encodes");
            assert_eq!(encoded.ordering_key, "C-7");
            let event = decode(&raw(&encoded)).expect("decodes");
            assert_eq!(event.format, format, "{envelope:?}");
            assert_eq!(event.event_type, "order.created");
            assert_eq!(event.data, data);
            if envelope != Envelope::Plain {
                assert_eq!(event.id, "evt-1");
                assert_eq!(event.source, "//erp/orders");
                assert_eq!(event.subject.as_deref(), Some("A-1"));
            }
        }
        let binary = cloudevents(Envelope::Binary)
            .encode(&record, String::new)
            .expect("encodes");
        for (k, v) in [
            ("ce-time", "2026-12-06T10:00:00Z"),
            ("ce-tenantregion", "eu-west"),
            ("tenant", "eu"),
            ("content-type", "application/json"),
        ] {
            assert_eq!(binary.attributes.get(k).map(String::as_str), Some(v), "{k}");
        }
    }

    #[test]
    fn a_cloudevent_record_the_workers_could_not_read_is_named() {
        let err = |envelope: Envelope, record: Value| {
            cloudevents(envelope)
                .encode(&record, String::new)
                .expect_err("refused")
                .to_string()
        };
        let ok = json!({"specversion": "1.0", "id": "e", "source": "//s", "type": "t",
                        "data": {"customer": "C"}});
        let with = |k: &str, v: Value| {
            let mut r = ok.clone();
            r[k] = v;
            r
        };
        let without = |k: &str| {
            let mut r = ok.clone();
            r.as_object_mut().map(|o| o.remove(k));
            r
        };
        assert_eq!(
            err(Envelope::Binary, without("source")),
            "field \"source\" (the CloudEvents attribute) is missing"
        );
        assert_eq!(
            err(Envelope::Binary, with("specversion", json!("0.3"))),
            "specversion is \"0.3\": only CloudEvents 1.0 is supported"
        );
        assert_eq!(
            err(Envelope::Binary, with("datacontenttype", json!("text/xml"))),
            "datacontenttype \"text/xml\" is not JSON: workers read JSON data"
        );
        assert_eq!(
            err(Envelope::Binary, with("Region", json!("eu"))),
            "attribute \"Region\" is not a CloudEvents attribute name (lower-case letters and digits)"
        );
        assert_eq!(
            err(Envelope::Binary, with("tags", json!(["a"]))),
            "attribute \"tags\" is an array, expected a string, number or boolean"
        );
        assert!(err(Envelope::Binary, with("data_base64", json!("eA=="))).contains("data_base64"));
        assert_eq!(
            err(Envelope::Binary, with("data", json!({}))),
            "field \"customer\" (the ordering key) is missing"
        );
        assert_eq!(
            err(Envelope::Structured, json!("evt")),
            "the record is a string, expected a CloudEvent (an object with specversion, id, source, type)"
        );
        // The plain envelope carries only the type and the data.
        assert!(
            cloudevents(Envelope::Plain)
                .encode(
                    &json!({"type": "t", "data": {"customer": "C"}}),
                    String::new
                )
                .is_ok()
        );
    }
}
