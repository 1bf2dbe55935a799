//! The sample events the demo publishes, and what should become of each.
//!
//! They cover the three shapes gluefleet accepts (CloudEvents binary and
//! structured, the plain `{"type", "data"}` envelope) and the paths a
//! message can take: delivered, a duplicate suppressed, a 503 retried, and
//! three kinds of dead letter.

use gluefleet_testkit::pubsub::OutgoingMessage;
use serde_json::{Value, json};

/// Where order events come from (CloudEvents `source`).
const SOURCE: &str = "//erp/orders";

/// What the demo expects to happen to an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expect {
    /// One call, answered 2xx.
    Delivered,
    /// No effect of its own: the same event (same CloudEvents id) was
    /// already delivered, shown in the row given.
    DuplicateOf(usize),
    /// The order system answered 503 first; the worker retried.
    RetriedThenDelivered,
    /// Sent to the dead-letter topic with this `gluefleet-error-class`.
    DeadLettered(&'static str),
}

/// One event to publish.
#[derive(Debug)]
pub(crate) struct Sample {
    /// `order.created evt-1001`, for the table.
    pub(crate) label: String,
    /// How it is encoded, for the table.
    pub(crate) shape: &'static str,
    /// The order it is about, if any.
    pub(crate) order: Option<&'static str>,
    /// What is published.
    pub(crate) message: OutgoingMessage,
    /// The path the order system should see for it (below its root), if
    /// the worker should call at all.
    pub(crate) path: Option<String>,
    /// What should happen.
    pub(crate) expect: Expect,
}

/// A CloudEvent in binary content mode: the context in `ce-*` attributes,
/// the data as the body.
fn binary(id: &str, event_type: &str, data: &Value) -> OutgoingMessage {
    OutgoingMessage::binary_cloudevent(id, SOURCE, event_type, data)
}

/// A CloudEvent in structured content mode: one JSON body.
fn structured(id: &str, event_type: &str, data: Value) -> OutgoingMessage {
    OutgoingMessage::json(&json!({
        "specversion": "1.0",
        "id": id,
        "source": SOURCE,
        "type": event_type,
        "datacontenttype": "application/json",
        "data": data,
    }))
}

fn order(id: &str, customer: &str, total: Value) -> Value {
    json!({ "orderId": id, "customer": customer, "total": total, "currency": "EUR" })
}

fn created(
    ce_id: &str,
    order_id: &'static str,
    shape: &'static str,
    message: OutgoingMessage,
    expect: Expect,
) -> Sample {
    Sample {
        label: format!("order.created {ce_id}"),
        shape,
        order: Some(order_id),
        message,
        path: Some(format!("/orders/{order_id}")),
        expect,
    }
}

/// The events, in publishing order. Row numbers in the report are 1-based
/// positions in this list.
pub(crate) fn samples() -> Vec<Sample> {
    const BINARY: &str = "CloudEvent, binary";
    const STRUCTURED: &str = "CloudEvent, structured";
    let a1001 = order("A-1001", "Northwind Traders", json!(120.5));
    vec![
        created(
            "evt-1001",
            "A-1001",
            BINARY,
            binary("evt-1001", "order.created", &a1001),
            Expect::Delivered,
        ),
        // The producer published it twice (it happens: retries on its side).
        created(
            "evt-1001",
            "A-1001",
            BINARY,
            binary("evt-1001", "order.created", &a1001),
            Expect::DuplicateOf(1),
        ),
        created(
            "evt-1002",
            "A-1002",
            STRUCTURED,
            structured(
                "evt-1002",
                "order.created",
                order("A-1002", "Blue Harbor Foods", json!(35)),
            ),
            Expect::Delivered,
        ),
        // The order system answers the first call for A-1003 with 503.
        created(
            "evt-1003",
            "A-1003",
            BINARY,
            binary(
                "evt-1003",
                "order.created",
                &order("A-1003", "Kestrel Outfitters", json!(980)),
            ),
            Expect::RetriedThenDelivered,
        ),
        // A total the order system refuses: 400 is permanent, no retry.
        created(
            "evt-1004",
            "A-1004",
            STRUCTURED,
            structured(
                "evt-1004",
                "order.created",
                order("A-1004", "Lumen Optics", json!("abc")),
            ),
            Expect::DeadLettered("permanent"),
        ),
        created(
            "evt-1005",
            "A-1005",
            BINARY,
            binary(
                "evt-1005",
                "order.created",
                &order("A-1005", "Northwind Traders", json!(12.99)),
            ),
            Expect::Delivered,
        ),
        Sample {
            label: "order.paid".to_owned(),
            shape: "envelope",
            order: Some("A-1002"),
            message: OutgoingMessage::json(&json!({
                "type": "order.paid",
                "data": { "orderId": "A-1002", "amount": 35, "method": "card" },
            })),
            path: Some("/orders/A-1002/payments".to_owned()),
            expect: Expect::Delivered,
        },
        // Not an event at all: poison.
        Sample {
            label: "(body: not json)".to_owned(),
            shape: "malformed",
            order: None,
            message: OutgoingMessage {
                data: b"not json".to_vec(),
                ..OutgoingMessage::default()
            },
            path: None,
            expect: Expect::DeadLettered("poison"),
        },
        // A type no route handles: unroutable.
        Sample {
            label: "invoice.sent".to_owned(),
            shape: "envelope",
            order: Some("A-1002"),
            message: OutgoingMessage::json(&json!({
                "type": "invoice.sent",
                "data": { "invoiceId": "INV-7", "orderId": "A-1002" },
            })),
            path: None,
            expect: Expect::DeadLettered("unroutable"),
        },
    ]
}
