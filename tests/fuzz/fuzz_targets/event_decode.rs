//! Fuzzes event decoding, which every Pub/Sub message goes through before
//! anything else: whatever the body and attributes, `decode` must return an
//! event or a `DecodeError`, never panic, and an event it returns must be one
//! the rest of the path can use (routing, lookups, the JSON view for
//! mappings).
//!
//! Input format, so that seeds are readable and mutations stay meaningful:
//! leading lines that start with `@` are attributes (`@name=value`), one
//! empty line may follow them, and the rest is the message body. An input
//! that does not start with `@` is all body.

#![no_main]

use gluefleet_core::event::{Format, RawMessage, decode};
use gluefleet_core::retry::RetrySettings;
use gluefleet_core::route::{RouteConfig, RouteTable};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use std::sync::LazyLock;

fn split(input: &[u8]) -> (BTreeMap<String, String>, &[u8]) {
    let mut attributes = BTreeMap::new();
    let mut rest = input;
    while let Some(line) = rest.strip_prefix(b"@") {
        let (head, tail) = match line.iter().position(|&b| b == b'\n') {
            Some(i) => (&line[..i], &line[i + 1..]),
            None => (line, &[][..]),
        };
        let text = String::from_utf8_lossy(head);
        let (name, value) = text.split_once('=').unwrap_or((&text, ""));
        attributes.insert(name.to_owned(), value.to_owned());
        rest = tail;
    }
    (attributes, rest.strip_prefix(b"\n").unwrap_or(rest))
}

/// A small table with a catch-all, built once.
static ROUTES: LazyLock<RouteTable<()>> = LazyLock::new(|| {
    let raw = ["order.created", "order.*", "invoice.*", "*"]
        .into_iter()
        .map(|t| RouteConfig {
            name: None,
            event_type: t.to_owned(),
            timeout: None,
            retry: None,
            rate_limit: None,
            idempotency_key: None,
            subject: None,
            results: None,
            action: (),
        })
        .collect();
    RouteTable::build(raw, &RetrySettings::default(), Ok::<_, gluefleet_core::ConfigError>).expect("fixed routes build")
});

fuzz_target!(|input: &[u8]| {
    let (attributes, data) = split(input);
    let msg = RawMessage {
        data: data.to_vec(),
        attributes,
        message_id: "m-fuzz".into(),
        delivery_attempt: Some(1),
        ..RawMessage::default()
    };
    let event = match decode(&msg) {
        Ok(e) => e,
        Err(e) => {
            assert!(!e.to_string().is_empty(), "a poison message needs a reason");
            return;
        }
    };
    assert!(!event.event_type.is_empty(), "an event has a type");
    assert_eq!(event.attributes, msg.attributes);
    if event.format.is_cloudevents() {
        assert!(!event.id.is_empty() && !event.source.is_empty());
    }
    if event.format == Format::CloudEventsBinary {
        assert_eq!(Some(&event.id), msg.attributes.get("ce-id"));
        assert_eq!(Some(&event.event_type), msg.attributes.get("ce-type"));
    }
    assert!(
        ROUTES.find(&event.event_type).is_some(),
        "the catch-all route matches any type"
    );
    for path in [
        "data",
        "data.orderId",
        "data.lines.0.sku",
        "attributes.type",
        "subject",
        "id",
    ] {
        let _ = event.lookup(path);
    }
    let view = event.to_json();
    assert_eq!(view["type"].as_str(), Some(event.event_type.as_str()));
});
