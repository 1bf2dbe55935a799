//! Part 3's sample events: what an order system publishes about its
//! business partners, the partners SAP has before the worker runs, and
//! what should become of each event and entity.
//!
//! Pub/Sub keeps no order between these messages and the worker handles
//! them concurrently, so no event's outcome may depend on another event of
//! the run having been applied first: the second create, the updates and
//! the delete all address the partners the SAP CAP sandbox starts with.

use gluefleet_testkit::pubsub::OutgoingMessage;
use serde_json::{Value, json};

/// The entity set the routes write to.
pub(crate) const ENTITY_SET: &str = "BusinessPartners";
/// Where partner events come from (CloudEvents `source`).
const SOURCE: &str = "//orders/partners";
/// An ETag no entity has: the version an event was based on, long changed.
const STALE_ETAG: &str = "W/\"2000-01-01T00:00:00.000Z\"";

/// The partners every SAP CAP sandbox starts with (`db/data`):
/// key, name, city.
pub(crate) const SEEDED: [(&str, &str, &str); 2] = [
    ("BP0001", "Seed Partner One", "Walldorf"),
    ("BP0002", "Seed Partner Two", "Berlin"),
];

/// What the demo expects to happen to an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expect {
    /// A create (or an upsert of a new partner) made the entity, with the
    /// event's name and city.
    Created,
    /// A create of a partner SAP already has: 409, acked as already done,
    /// the event's name not written.
    AlreadyExisted,
    /// An update applied: the entity has the event's name.
    Renamed,
    /// Sent to the dead-letter topic with this `gluefleet-error-class`,
    /// this text in `gluefleet-error` and this `gluefleet-http-status`.
    DeadLettered(&'static str, &'static str, u16),
    /// The entity is gone.
    Deleted,
}

/// One event to publish.
#[derive(Debug)]
pub(crate) struct Sample {
    /// `partner.created evt-3001`, for the table.
    pub(crate) label: String,
    /// The partner's key (`ID`).
    pub(crate) partner: &'static str,
    /// What is published.
    pub(crate) message: OutgoingMessage,
    /// What should happen.
    pub(crate) expect: Expect,
}

impl Sample {
    /// The event's `data.<field>`, if a string.
    pub(crate) fn sent(&self, field: &str) -> Option<String> {
        let data: Value = serde_json::from_slice(&self.message.data).ok()?;
        data.get(field)?.as_str().map(str::to_owned)
    }

    /// The CloudEvents type.
    pub(crate) fn event_type(&self) -> &str {
        self.message
            .attributes
            .get("ce-type")
            .map_or("", String::as_str)
    }

    /// Whether SAP could hold this key (`ID` is `String(10)`).
    pub(crate) fn key_fits(&self) -> bool {
        self.partner.chars().count() <= 10
    }
}

/// The `BusinessPartners` the demo looks at after the run, key → name and
/// city; `None` where there should be none.
pub(crate) fn partners_after() -> Vec<(&'static str, Option<(&'static str, &'static str)>)> {
    vec![
        // Seeded; the second create left it alone, the rename changed the
        // name, the rename from a stale version did not.
        ("BP0001", Some(("Walldorf Instruments SE", "Walldorf"))),
        // Seeded, then deleted.
        ("BP0002", None),
        ("BP1001", Some(("Nordlicht Handel GmbH", "Hamburg"))),
        ("BP1003", Some(("Atlas Components Ltd", "Leeds"))),
    ]
}

/// A CloudEvent in binary content mode, as the order system publishes them.
fn sample(
    ce_id: &str,
    event_type: &str,
    partner: &'static str,
    data: &Value,
    expect: Expect,
) -> Sample {
    let mut data = data.clone();
    data["id"] = json!(partner);
    Sample {
        label: format!("{event_type} {ce_id}"),
        partner,
        message: OutgoingMessage::binary_cloudevent(ce_id, SOURCE, event_type, &data),
        expect,
    }
}

/// The events, in publishing order. Row numbers in the report are 1-based
/// positions in this list.
pub(crate) fn samples() -> Vec<Sample> {
    const CREATED: &str = "partner.created";
    const RENAMED: &str = "partner.renamed";
    vec![
        sample(
            "evt-3001",
            CREATED,
            "BP1001",
            &json!({ "name": "Nordlicht Handel GmbH", "city": "Hamburg" }),
            Expect::Created,
        ),
        // The order system's keys are longer than SAP's String(10): SAP
        // refuses it (400), which no retry can change.
        sample(
            "evt-3002",
            CREATED,
            "BP-1002-BERGEN",
            &json!({ "name": "Fjord Logistics AS", "city": "Bergen" }),
            Expect::DeadLettered("permanent", "String(10)", 400),
        ),
        // A partner SAP already has, announced again (another system
        // created it first).
        sample(
            "evt-3003",
            CREATED,
            "BP0001",
            &json!({ "name": "Seed Partner 1", "city": "Walldorf" }),
            Expect::AlreadyExisted,
        ),
        // No version in the event: the worker reads the ETag first.
        sample(
            "evt-3004",
            RENAMED,
            "BP0001",
            &json!({ "name": "Walldorf Instruments SE" }),
            Expect::Renamed,
        ),
        // Based on a version SAP has long changed: 412, a conflict for a
        // person to look at, not something to overwrite.
        sample(
            "evt-3005",
            "partner.renamed.from",
            "BP0001",
            &json!({ "name": "Walldorf Instruments (old)", "etag": STALE_ETAG }),
            Expect::DeadLettered("permanent", "conflict", 412),
        ),
        // An upsert of a partner SAP does not have yet: created.
        sample(
            "evt-3006",
            "partner.upserted",
            "BP1003",
            &json!({ "name": "Atlas Components Ltd", "city": "Leeds" }),
            Expect::Created,
        ),
        sample(
            "evt-3007",
            "partner.deleted",
            "BP0002",
            &json!({}),
            Expect::Deleted,
        ),
    ]
}
