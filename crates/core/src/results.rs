//! Result events: what a route with `results` reports about each outcome.
//!
//! The pipeline gathers the facts ([`ResultFacts`]) and the runtime publishes
//! them, before it acks the original: a result is never lost, because a
//! failed result publish nacks the original, and the redelivery finds the
//! effect done in the idempotency store, with the target's answer kept
//! beside it, so it republishes the same result without calling the target
//! again.

use serde_json::{Map, Value};

/// The CloudEvents type of a result after the effect is done (delivered,
/// already done at the target, or a duplicate of a done event).
pub const DELIVERED: &str = "gluefleet.delivered";

/// The CloudEvents type of a result after the original was dead-lettered.
pub const DEAD_LETTERED: &str = "gluefleet.dead-lettered";

/// Everything a result event says, apart from the outcome itself.
#[derive(Clone, Debug, PartialEq)]
pub struct ResultFacts {
    /// The route's results topic, as configured.
    pub topic: String,
    /// The connector (`gluefleet-<name>`'s name).
    pub connector: &'static str,
    /// The route that took the event.
    pub route: String,
    /// The event's idempotency key: the result's id is derived from it, so
    /// a republished result has the id of the first, and a consumer that
    /// dedupes on ids sees one result per effect.
    pub key: String,
    /// The original event's id.
    pub event_id: String,
    /// The original event's source.
    pub event_source: String,
    /// The original event's type.
    pub event_type: String,
    /// The original event's subject, if any.
    pub event_subject: Option<String>,
    /// The original's Pub/Sub message id.
    pub message_id: String,
    /// The original event's data: the next step usually needs it beside
    /// the answer (the customer's name as well as its new id).
    pub data: Value,
    /// What the target answered, when it was recorded (none for a dead
    /// letter, nor for a duplicate whose answer the store did not keep).
    pub answer: Option<Map<String, Value>>,
    /// True when the answer comes from the idempotency store, not from a
    /// call made for this delivery.
    pub replayed: bool,
}
