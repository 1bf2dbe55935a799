//! Property tests of event decoding, the first thing every message from
//! Pub/Sub goes through: whatever a publisher sends, `decode` must return an
//! event or a `DecodeError` (never panic), every accepted shape must give
//! back exactly what it was built from, and a broken event must be refused
//! with a reason that names what is wrong, because that reason is what the
//! dead letter carries.

use base64::Engine as _;
use gluefleet_core::event::{Event, Format, RawMessage, decode};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// Attribute names decoding reads, so generated maps hit every branch.
static KNOWN_ATTRIBUTES: [&str; 10] = [
    "ce-specversion",
    "ce-id",
    "ce-source",
    "ce-type",
    "ce-subject",
    "ce-time",
    "ce-datacontenttype",
    "content-type",
    "type",
    "source",
];

/// Field names of the structured and envelope shapes.
static KNOWN_FIELDS: [&str; 9] = [
    "specversion",
    "id",
    "source",
    "type",
    "data",
    "data_base64",
    "datacontenttype",
    "subject",
    "time",
];

/// Any JSON value, a few levels deep. Floats are eighths, whose decimal form
/// is short and exact, so a value survives being written and read back.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1_000_000_i32..1_000_000).prop_map(|n| Value::from(f64::from(n) / 8.0)),
        ".{0,16}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map(".{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Attribute maps mixing the names decoding reads with arbitrary ones.
fn attributes() -> impl Strategy<Value = BTreeMap<String, String>> {
    let name = prop_oneof![
        3 => select(&KNOWN_ATTRIBUTES[..]).prop_map(str::to_owned),
        1 => ".{0,12}",
    ];
    let value = prop_oneof![Just(String::new()), "1\\.0", ".{0,24}"];
    btree_map(name, value, 0..8)
}

/// A JSON object body with some of the fields decoding reads, each holding
/// any JSON value: reaches the structured and envelope error paths far more
/// often than random bytes do.
fn object_body() -> impl Strategy<Value = Vec<u8>> {
    let name = prop_oneof![
        4 => select(&KNOWN_FIELDS[..]).prop_map(str::to_owned),
        1 => "[a-z]{1,8}",
    ];
    let value = prop_oneof![
        2 => json_value(),
        1 => "[A-Za-z0-9+/=]{0,24}".prop_map(Value::String),
    ];
    btree_map(name, value, 0..8).prop_map(|m| {
        Value::Object(m.into_iter().collect::<Map<_, _>>())
            .to_string()
            .into_bytes()
    })
}

/// What must hold of any decoding result, whatever the input.
fn check_any(msg: &RawMessage) -> Result<(), TestCaseError> {
    let result = decode(msg);
    prop_assert_eq!(&result, &decode(msg), "decoding is deterministic");
    match result {
        Ok(e) => {
            prop_assert!(!e.event_type.is_empty(), "an event always has a type");
            prop_assert_eq!(&e.attributes, &msg.attributes);
            prop_assert_eq!(&e.message_id, &msg.message_id);
            prop_assert_eq!(e.delivery_attempt, msg.delivery_attempt);
            if e.format.is_cloudevents() {
                prop_assert!(
                    !e.id.is_empty() && !e.source.is_empty(),
                    "a CloudEvent has an id and a source: {e:?}"
                );
            }
            if e.format == Format::CloudEventsBinary {
                let attr = |k: &str| msg.attributes.get(k).map(String::as_str);
                prop_assert_eq!(Some(e.id.as_str()), attr("ce-id"));
                prop_assert_eq!(Some(e.source.as_str()), attr("ce-source"));
                prop_assert_eq!(Some(e.event_type.as_str()), attr("ce-type"));
            }
        }
        Err(err) => prop_assert!(!err.to_string().is_empty(), "an error gives a reason"),
    }
    Ok(())
}

fn raw(data: Vec<u8>, attributes: BTreeMap<String, String>) -> RawMessage {
    RawMessage {
        data,
        attributes,
        message_id: "m-prop".into(),
        delivery_attempt: Some(3),
        ..RawMessage::default()
    }
}

fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A non-empty attribute or field value, as producers write ids and types.
fn token() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z][a-z0-9.\\-/]{0,20}", "\\PC{1,16}"]
}

fn opt_token() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(token())
}

/// The data a non-JSON binary body decodes to: UTF-8 text as a string,
/// anything else as base64, nothing as null.
fn opaque_data(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return Value::Null;
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => Value::String(text.to_owned()),
        Err(_) => Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
    }
}

fn structured_body(id: &str, source: &str, event_type: &str, data: &Value) -> Map<String, Value> {
    [
        ("specversion", json!("1.0")),
        ("id", json!(id)),
        ("source", json!(source)),
        ("type", json!(event_type)),
        ("data", data.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn expect_error(msg: &RawMessage) -> Result<String, TestCaseError> {
    match decode(msg) {
        Ok(e) => Err(TestCaseError::fail(format!("expected poison, got {e:?}"))),
        Err(err) => Ok(err.to_string()),
    }
}

fn expect_event(msg: &RawMessage) -> Result<Event, TestCaseError> {
    decode(msg).map_err(|e| TestCaseError::fail(format!("expected an event, got: {e}")))
}

proptest! {
    #[test]
    fn arbitrary_bytes_and_attributes_never_panic(
        data in vec(any::<u8>(), 0..512),
        attributes in attributes(),
    ) {
        check_any(&raw(data, attributes))?;
    }

    #[test]
    fn arbitrary_json_objects_never_panic(body in object_body(), attributes in attributes()) {
        check_any(&raw(body, attributes))?;
    }

    #[test]
    fn structured_events_decode_to_what_they_were_built_from(
        id in token(),
        source in token(),
        event_type in token(),
        subject in opt_token(),
        time in opt_token(),
        data in proptest::option::of(json_value()),
    ) {
        let mut body = structured_body(&id, &source, &event_type, &Value::Null);
        match &data {
            Some(d) => { body.insert("data".into(), d.clone()); }
            None => { body.remove("data"); }
        }
        if let Some(s) = &subject { body.insert("subject".into(), json!(s)); }
        if let Some(t) = &time { body.insert("time".into(), json!(t)); }
        let msg = raw(Value::Object(body).to_string().into_bytes(), BTreeMap::new());
        let e = expect_event(&msg)?;
        prop_assert_eq!(e.format, Format::CloudEventsStructured);
        prop_assert_eq!((&e.id, &e.source, &e.event_type), (&id, &source, &event_type));
        prop_assert_eq!(&e.data, &data.unwrap_or(Value::Null));
        prop_assert_eq!((&e.subject, &e.time), (&subject, &time));
    }

    #[test]
    fn structured_data_base64_decodes_to_the_bytes_it_encodes(
        bytes in vec(any::<u8>(), 0..128),
        text in ".{1,40}",
        json_data in json_value(),
    ) {
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        for (content_type, encoded, want) in [
            ("application/octet-stream", b64(&bytes), opaque_data(&bytes)),
            ("text/plain", b64(text.as_bytes()), Value::String(text.clone())),
            ("application/json", b64(json_data.to_string().as_bytes()), json_data.clone()),
        ] {
            let mut body = structured_body("e-1", "/s", "t", &Value::Null);
            body.remove("data");
            body.insert("datacontenttype".into(), json!(content_type));
            body.insert("data_base64".into(), json!(encoded));
            let msg = raw(Value::Object(body).to_string().into_bytes(), BTreeMap::new());
            prop_assert_eq!(expect_event(&msg)?.data, want, "{}", content_type);
        }
    }

    #[test]
    fn binary_events_decode_to_what_they_were_built_from(
        id in token(),
        source in token(),
        event_type in token(),
        subject in opt_token(),
        data in json_value(),
        extensions in btree_map("x[a-z]{1,8}", ".{0,16}", 0..4),
        with_specversion in any::<bool>(),
    ) {
        let mut attributes: BTreeMap<String, String> = extensions;
        attributes.extend(attrs(&[
            ("ce-id", id.as_str()),
            ("ce-source", source.as_str()),
            ("ce-type", event_type.as_str()),
            ("content-type", "application/json"),
        ]));
        // ce-id with ce-type is enough to pick binary mode.
        if with_specversion {
            attributes.insert("ce-specversion".into(), "1.0".into());
        }
        if let Some(s) = &subject {
            attributes.insert("ce-subject".into(), s.clone());
        }
        let msg = raw(data.to_string().into_bytes(), attributes.clone());
        let e = expect_event(&msg)?;
        prop_assert_eq!(e.format, Format::CloudEventsBinary);
        prop_assert_eq!((&e.id, &e.source, &e.event_type), (&id, &source, &event_type));
        prop_assert_eq!(&e.subject, &subject);
        prop_assert_eq!(&e.data, &data);
        prop_assert_eq!(&e.attributes, &attributes);
    }

    #[test]
    fn binary_events_with_opaque_bodies_keep_every_byte(
        body in vec(any::<u8>(), 0..256),
        content_type in select(&["text/plain", "application/octet-stream", "application/xml"][..]),
    ) {
        let msg = raw(body.clone(), attrs(&[
            ("ce-specversion", "1.0"),
            ("ce-id", "e-1"),
            ("ce-source", "/s"),
            ("ce-type", "t"),
            ("ce-datacontenttype", content_type),
        ]));
        prop_assert_eq!(expect_event(&msg)?.data, opaque_data(&body));
    }

    #[test]
    fn envelopes_decode_to_what_they_were_built_from(
        event_type in token(),
        type_in_attribute in any::<bool>(),
        id in opt_token(),
        source in opt_token(),
        data in json_value(),
    ) {
        let mut body = Map::new();
        let mut attributes = BTreeMap::new();
        if type_in_attribute {
            attributes.insert("type".to_owned(), event_type.clone());
        } else {
            body.insert("type".into(), json!(event_type));
        }
        if let Some(i) = &id { body.insert("id".into(), json!(i)); }
        if let Some(s) = &source { body.insert("source".into(), json!(s)); }
        body.insert("data".into(), data.clone());
        let msg = raw(Value::Object(body).to_string().into_bytes(), attributes);
        let e = expect_event(&msg)?;
        prop_assert_eq!(e.format, Format::Envelope);
        prop_assert_eq!(&e.event_type, &event_type);
        prop_assert_eq!(&e.id, id.as_ref().unwrap_or(&msg.message_id), "id falls back to the message id");
        prop_assert_eq!(&e.source, &source.unwrap_or_default());
        prop_assert_eq!(&e.data, &data);
    }

    #[test]
    fn a_body_that_is_not_an_object_is_poison_naming_its_kind(value in json_value()) {
        let kind = match &value {
            Value::Object(_) => return Ok(()),
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
        };
        let err = expect_error(&raw(value.to_string().into_bytes(), BTreeMap::new()))?;
        prop_assert!(err.contains(&format!("body is a JSON {kind}, expected an object")), "{}", err);
    }

    #[test]
    fn a_structured_event_lacking_a_required_field_is_poison_naming_it(
        missing in select(&["id", "source", "type"][..]),
        data in json_value(),
    ) {
        let mut body = structured_body("e-1", "/s", "order.created", &data);
        body.remove(missing);
        let err = expect_error(&raw(Value::Object(body).to_string().into_bytes(), BTreeMap::new()))?;
        prop_assert!(err.contains(&format!("lacks the required field {missing}")), "{}", err);
    }

    #[test]
    fn a_structured_event_with_a_bad_required_field_is_poison_naming_it(
        field in select(&["id", "source", "type"][..]),
        bad in json_value(),
    ) {
        // Anything but a non-empty string is refused.
        let bad = match bad {
            Value::String(_) => Value::String(String::new()),
            other => other,
        };
        let mut body = structured_body("e-1", "/s", "order.created", &Value::Null);
        body.insert(field.to_owned(), bad);
        let err = expect_error(&raw(Value::Object(body).to_string().into_bytes(), BTreeMap::new()))?;
        prop_assert!(err.contains(&format!("field {field} must be a non-empty string")), "{}", err);
    }

    #[test]
    fn a_binary_event_lacking_a_required_attribute_is_poison_naming_it(
        missing in select(&["ce-id", "ce-source", "ce-type"][..]),
        empty_instead in any::<bool>(),
        data in json_value(),
    ) {
        let mut attributes = attrs(&[
            ("ce-specversion", "1.0"),
            ("ce-id", "e-1"),
            ("ce-source", "/s"),
            ("ce-type", "order.created"),
        ]);
        if empty_instead {
            attributes.insert(missing.to_owned(), String::new());
        } else {
            attributes.remove(missing);
        }
        let err = expect_error(&raw(data.to_string().into_bytes(), attributes))?;
        prop_assert!(err.contains(&format!("lacks the required attribute {missing}")), "{}", err);
    }

    #[test]
    fn an_envelope_without_data_is_poison_naming_its_type(event_type in token()) {
        let body = json!({"type": &event_type}).to_string().into_bytes();
        let err = expect_error(&raw(body, BTreeMap::new()))?;
        prop_assert!(err.contains(&format!("envelope of type {event_type} lacks the data field")), "{}", err);
    }
}

#[test]
fn deeply_nested_json_is_poison_not_a_stack_overflow() {
    for depth in [200, 100_000] {
        let body = format!(
            r#"{{"type":"t","data":{}{}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let err = decode(&raw(body.into_bytes(), BTreeMap::new())).expect_err("too deep");
        assert!(err.to_string().contains("not JSON"), "{err}");
    }
}
