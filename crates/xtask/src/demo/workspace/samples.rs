//! Part 4's sample events: what the HR and sales systems publish, each
//! naming the user it is about (the order's owner, the seller, the
//! organizer, the administrator who hired), and what should become of it
//! in Google Workspace.
//!
//! Pub/Sub keeps no order between these messages and the worker handles
//! them concurrently, so no event's outcome may depend on another event of
//! the run having been applied first: the cancelled meeting was booked
//! before the run ([`BOOKED_BEFORE`]), and the order published twice is
//! judged by the rows the sheet ends with, whichever copy came first.

use gluefleet_testkit::pubsub::OutgoingMessage;
use serde_json::{Value, json};

/// The spreadsheet and sheet (tab) the orders go to.
pub(crate) const SPREADSHEET: &str = "sales-2026";
/// The orders table's sheet.
pub(crate) const SHEET: &str = "Orders";
/// Where the events come from (CloudEvents `source`).
const SOURCE: &str = "//hr-and-sales";
/// The administrator the HR system acts as.
pub(crate) const ADMIN: &str = "admin@example.com";
/// A sales rep; also the seller who mails, and the HR clerk who is no
/// administrator.
pub(crate) const ALICE: &str = "alice@example.com";
/// A sales rep and meeting organizer.
pub(crate) const BOB: &str = "bob@example.com";
/// The buyer, outside the domain.
pub(crate) const BUYER: &str = "carol@customer.example";
/// How often the quota fault answers the meeting's insert before it lands.
pub(crate) const RATE_LIMITED_INSERTS: u32 = 2;
/// What the Workspace double records for the hire without a name: the
/// Discovery document requires `name.givenName`, and Google answers 400 in
/// these words. The one request outside the documents the demo makes on
/// purpose.
pub(crate) const NAMELESS_VIOLATION: &str =
    "directory.users.insert: Invalid Given/Family Name: GivenName";

/// What the demo expects the worker to do with an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expect {
    /// Acked as applied (`Delivered`).
    Applied,
    /// One of two events for one order: applied, or acked as already done
    /// because the key column had the order; the sheet has one row for it.
    AppliedOnce,
    /// Sent to the dead-letter topic with this `gluefleet-error-class`,
    /// this text in `gluefleet-error` and this `gluefleet-http-status`.
    DeadLettered(&'static str, &'static str, u16),
}

/// One event to publish.
#[derive(Debug)]
pub(crate) struct Sample {
    /// `order.created evt-4001`, for the table.
    pub(crate) label: String,
    /// The user the route acts as (its `subject`, from the event).
    pub(crate) acting_as: &'static str,
    /// The event's `data`.
    pub(crate) data: Value,
    /// What is published.
    pub(crate) message: OutgoingMessage,
    /// What should happen.
    pub(crate) expect: Expect,
}

impl Sample {
    /// The CloudEvents type.
    pub(crate) fn event_type(&self) -> &str {
        self.message
            .attributes
            .get("ce-type")
            .map_or("", String::as_str)
    }

    /// The event's `data.<field>`, or empty.
    pub(crate) fn field(&self, name: &str) -> &str {
        self.data.get(name).and_then(Value::as_str).unwrap_or("")
    }
}

/// A CloudEvent in binary content mode, as the HR and sales systems
/// publish them; `acting_as` is the `data` field the route's subject names.
fn sample(
    ce_id: &str,
    event_type: &str,
    acting_as: &'static str,
    data: Value,
    expect: Expect,
) -> Sample {
    Sample {
        label: format!("{event_type} {ce_id}"),
        acting_as,
        message: OutgoingMessage::binary_cloudevent(ce_id, SOURCE, event_type, &data),
        data,
        expect,
    }
}

/// The meeting on bob's calendar before the run, booked through the same
/// worker (a run of its own, from a local file), which the run cancels.
pub(crate) fn booked_before() -> Sample {
    sample(
        "evt-3990",
        "meeting.booked",
        BOB,
        json!({ "meetingId": BOOKED_BEFORE, "organizer": BOB, "title": "Quarterly planning",
                "start": "2026-12-09T14:00:00Z", "end": "2026-12-09T15:00:00Z" }),
        Expect::Applied,
    )
}

/// The meeting id of [`booked_before`].
pub(crate) const BOOKED_BEFORE: &str = "M-0900";

/// The title of the meeting the run books.
pub(crate) const BOOKED_TITLE: &str = "Design review with Carol";

/// The events, in publishing order. Row numbers in the report are 1-based
/// positions in this list.
pub(crate) fn samples() -> Vec<Sample> {
    let order = |id: &str, owner: &str, customer: &str, total: Value| json!({ "id": id, "owner": owner, "customer": customer, "total": total });
    let hire = |email: &str, first: Option<&str>, last: &str, by: &str| {
        let mut data = json!({ "email": email, "last": last, "initialPassword": "Welcome-2026!",
                               "hiredBy": by });
        if let Some(first) = first {
            data["first"] = json!(first);
        }
        data
    };
    vec![
        sample(
            "evt-4001",
            "order.created",
            ALICE,
            order("A-1001", ALICE, "Carol's Bakery", json!(1250)),
            Expect::AppliedOnce,
        ),
        sample(
            "evt-4002",
            "order.created",
            BOB,
            order("A-1002", BOB, "Fjord Logistics", json!(480.5)),
            Expect::Applied,
        ),
        // The shop published A-1001 again under a new event id (a retry of
        // its own): the idempotency store cannot tell, the key column can.
        sample(
            "evt-4003",
            "order.created",
            ALICE,
            order("A-1001", ALICE, "Carol's Bakery", json!(1250)),
            Expect::AppliedOnce,
        ),
        sample(
            "evt-4004",
            "order.shipped",
            ALICE,
            json!({ "id": "A-1001", "seller": ALICE, "buyer": BUYER }),
            Expect::Applied,
        ),
        // Calendar answers its first inserts 403 userRateLimitExceeded
        // (bob's per-user quota): retried, it lands.
        sample(
            "evt-4005",
            "meeting.booked",
            BOB,
            json!({ "meetingId": "M-2001", "organizer": BOB, "title": BOOKED_TITLE,
                    "start": "2026-12-10T10:00:00Z", "end": "2026-12-10T11:00:00Z" }),
            Expect::Applied,
        ),
        sample(
            "evt-4006",
            "meeting.cancelled",
            BOB,
            json!({ "meetingId": BOOKED_BEFORE, "organizer": BOB }),
            Expect::Applied,
        ),
        sample(
            "evt-4007",
            "employee.hired",
            ADMIN,
            hire("dana@example.com", Some("Dana"), "Ng", ADMIN),
            Expect::Applied,
        ),
        // The HR system left the first name out: Google refuses the user,
        // which no retry can change.
        sample(
            "evt-4008",
            "employee.hired",
            ADMIN,
            hire("erik@example.com", None, "Lund", ADMIN),
            Expect::DeadLettered("permanent", "Invalid Given/Family Name", 400),
        ),
        // Entered by an HR clerk who is no Workspace administrator: only an
        // administrator may create users.
        sample(
            "evt-4009",
            "employee.hired",
            ALICE,
            hire("finn@example.com", Some("Finn"), "Berg", ALICE),
            Expect::DeadLettered("permanent", "Not Authorized", 403),
        ),
    ]
}
