//! Part 2's sample events: what a mobile app's backend publishes about
//! accounts, the accounts that exist before the worker runs, and what
//! should become of each event and document.
//!
//! Pub/Sub keeps no order between these messages (no ordering keys) and the
//! worker handles them concurrently, so no event's outcome may depend on
//! another event of the run having been applied first: the update, the
//! second create and the delete all address accounts seeded beforehand.

use gluefleet_testkit::pubsub::OutgoingMessage;
use serde_json::{Value, json};

/// The collection the routes write to.
pub(crate) const COLLECTION: &str = "accounts";
/// Where account events come from (CloudEvents `source`).
const SOURCE: &str = "//mobile/backend";
/// Stands for "a timestamp the server set during the run" in
/// [`documents_after`]: its value cannot be known in advance.
pub(crate) const SERVER_TIME: &str = "(server time)";

/// What the demo expects to happen to an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expect {
    /// Applied: a create made the document, an update changed it.
    Written,
    /// No write of its own: the same event (same CloudEvents id) is the
    /// one in the row given.
    DuplicateOf(usize),
    /// A create of a document that exists: acked, the document left as is.
    AlreadyExisted,
    /// Sent to the dead-letter topic with this `gluefleet-error-class`
    /// and this text in `gluefleet-error`.
    DeadLettered(&'static str, &'static str),
    /// The document is gone.
    Deleted,
}

/// One event to publish.
#[derive(Debug)]
pub(crate) struct Sample {
    /// `account.created evt-2001`, for the table.
    pub(crate) label: String,
    /// The document it addresses, below [`COLLECTION`].
    pub(crate) account: &'static str,
    /// What is published.
    pub(crate) message: OutgoingMessage,
    /// What should happen.
    pub(crate) expect: Expect,
}

impl Sample {
    /// `accounts/acct-2001`.
    pub(crate) fn document(&self) -> String {
        format!("{COLLECTION}/{}", self.account)
    }
}

/// An account in the collection before the worker starts.
#[derive(Debug)]
pub(crate) struct Seed {
    pub(crate) account: &'static str,
    name: &'static str,
    email: &'static str,
    plan: &'static str,
    visits: u32,
    created_at: &'static str,
}

impl Seed {
    /// The fields as the Firestore REST API writes them.
    pub(crate) fn rest_fields(&self) -> Value {
        json!({
            "name": { "stringValue": self.name },
            "email": { "stringValue": self.email },
            "plan": { "stringValue": self.plan },
            "visits": { "integerValue": self.visits.to_string() },
            "createdAt": { "timestampValue": self.created_at },
        })
    }
}

/// The accounts that exist before the run.
pub(crate) fn seeds() -> [Seed; 2] {
    [
        Seed {
            account: "acct-0001",
            name: "Tomas Lind",
            email: "tomas@example.com",
            plan: "free",
            visits: 41,
            created_at: "2024-11-05T08:30:00Z",
        },
        Seed {
            account: "acct-0002",
            name: "Wen Okafor",
            email: "wen@example.com",
            plan: "pro",
            visits: 7,
            created_at: "2025-02-14T17:05:00Z",
        },
    ]
}

/// The collection after the run, document id → plain fields; `createdAt`
/// is [`SERVER_TIME`] where the worker's create set it.
pub(crate) fn documents_after() -> Vec<(&'static str, Value)> {
    vec![
        // Seeded; the second create left it alone, the update changed the
        // plan and counted a visit.
        (
            "acct-0001",
            json!({
                "name": "Tomas Lind", "email": "tomas@example.com", "plan": "pro",
                "visits": 42, "createdAt": "2024-11-05T08:30:00Z",
            }),
        ),
        // acct-0002 was deleted; acct-9999 never existed.
        (
            "acct-2001",
            created("Ines Varga", "ines@example.com", "free"),
        ),
        (
            "acct-2002",
            created("Kofi Mensah", "kofi@example.com", "free"),
        ),
        (
            "acct-2003",
            created("Lea Brandt", "lea@example.com", "family"),
        ),
    ]
}

/// What the account.created route writes: the mapped fields (not the
/// device) and the server's time.
fn created(name: &str, email: &str, plan: &str) -> Value {
    json!({ "name": name, "email": email, "plan": plan, "createdAt": SERVER_TIME })
}

fn sample(
    ce_id: &str,
    event_type: &str,
    account: &'static str,
    data: &Value,
    expect: Expect,
) -> Sample {
    let mut data = data.clone();
    data["accountId"] = json!(account);
    Sample {
        label: format!("{event_type} {ce_id}"),
        account,
        // In binary content mode, as the backend publishes them.
        message: OutgoingMessage::binary_cloudevent(ce_id, SOURCE, event_type, &data),
        expect,
    }
}

/// The events, in publishing order. Row numbers in the report are 1-based
/// positions in this list.
pub(crate) fn samples() -> Vec<Sample> {
    const CREATED: &str = "account.created";
    const UPDATED: &str = "account.updated";
    let ines = json!({ "name": "Ines Varga", "email": "ines@example.com", "plan": "free", "device": "ios" });
    vec![
        sample("evt-2001", CREATED, "acct-2001", &ines, Expect::Written),
        sample(
            "evt-2002",
            CREATED,
            "acct-2002",
            &json!({ "name": "Kofi Mensah", "email": "kofi@example.com", "plan": "free", "device": "android" }),
            Expect::Written,
        ),
        sample(
            "evt-2003",
            CREATED,
            "acct-2003",
            &json!({ "name": "Lea Brandt", "email": "lea@example.com", "plan": "family", "device": "ios" }),
            Expect::Written,
        ),
        // The backend published it twice (its own retry after a timeout).
        sample(
            "evt-2001",
            CREATED,
            "acct-2001",
            &ines,
            Expect::DuplicateOf(1),
        ),
        // A reinstalled app signs up again: a new event for an account
        // that exists, with the name typed differently this time.
        sample(
            "evt-2004",
            CREATED,
            "acct-0001",
            &json!({ "name": "Tom Lind", "email": "tomas@example.com", "plan": "free", "device": "android" }),
            Expect::AlreadyExisted,
        ),
        sample(
            "evt-2005",
            UPDATED,
            "acct-0001",
            &json!({ "plan": "pro" }),
            Expect::Written,
        ),
        // An update for an account that was never created.
        sample(
            "evt-2006",
            UPDATED,
            "acct-9999",
            &json!({ "plan": "pro" }),
            Expect::DeadLettered("permanent", "NOT_FOUND"),
        ),
        sample(
            "evt-2007",
            "account.deleted",
            "acct-0002",
            &json!({}),
            Expect::Deleted,
        ),
    ]
}

/// The event's `name`, for saying what an already existing account kept.
pub(crate) fn sent_name(sample: &Sample) -> Option<String> {
    let data: Value = serde_json::from_slice(&sample.message.data).ok()?;
    data.get("name")?.as_str().map(str::to_owned)
}
