//! The one Pub/Sub action each message ends in.
//!
//! | result                                   | outcome                         |
//! |------------------------------------------|---------------------------------|
//! | delivered, or the target says already done | [`Outcome::Ack`]              |
//! | duplicate of a done event                | [`Outcome::Ack`] (no call made) |
//! | duplicate of an event in flight          | [`Outcome::Nack`] with the lease left as delay |
//! | transient / rate limited, budget spent   | [`Outcome::Nack`] with the next backoff as delay |
//! | permanent, poison, unroutable, last attempt | [`Outcome::DeadLetter`] (publish, then ack; nack if the publish fails) |

use crate::error::ErrorClass;
use std::time::Duration;

/// Why a message was acked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AckReason {
    /// The target applied the event.
    Delivered,
    /// The target said it already had it (e.g. 409 on an idempotent create).
    AlreadyDone,
    /// The idempotency store says the effect already happened.
    Duplicate,
    /// No route matched and the config says drop.
    Dropped,
}

impl AckReason {
    /// The name in logs and the `reason` metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            AckReason::Delivered => "delivered",
            AckReason::AlreadyDone => "already-done",
            AckReason::Duplicate => "duplicate",
            AckReason::Dropped => "dropped",
        }
    }
}

/// Why a message is handed back for redelivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NackReason {
    /// Retries in process ran out on a retryable error.
    Retryable,
    /// The target (or our own limiter) asked for a longer wait than fits.
    RateLimited,
    /// Another delivery of the same event is in flight.
    InFlight,
    /// The idempotency store could not be reached.
    StoreUnavailable,
    /// The worker is shutting down.
    Shutdown,
}

impl NackReason {
    /// The name in logs and the `reason` metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            NackReason::Retryable => "retryable",
            NackReason::RateLimited => "rate-limited",
            NackReason::InFlight => "in-flight",
            NackReason::StoreUnavailable => "store-unavailable",
            NackReason::Shutdown => "shutdown",
        }
    }
}

/// Everything the dead-letter message needs besides the original.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// `permanent` (a second 401 included), `poison`, `unroutable`, or
    /// `max-attempts` (still transient or rate limited on the last attempt).
    pub class: String,
    /// What went wrong, in words.
    pub error: String,
    /// The target's HTTP status, if any.
    pub http_status: Option<u16>,
    /// The route's name, empty when none matched.
    pub route: String,
    /// Calls made to the target for this delivery.
    pub attempts: u32,
}

/// What to do with a message.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Ack it.
    Ack(AckReason),
    /// Hand it back, to be redelivered after `delay`.
    Nack {
        /// How long Pub/Sub should wait before redelivering.
        delay: Duration,
        /// Why.
        reason: NackReason,
    },
    /// Publish to the dead-letter topic, then ack.
    DeadLetter(DeadLetter),
}

impl Outcome {
    /// A dead-letter outcome for an error of `class`.
    pub fn dead_letter(
        class: impl Into<String>,
        error: impl Into<String>,
        http_status: Option<u16>,
        route: &str,
        attempts: u32,
    ) -> Self {
        Outcome::DeadLetter(DeadLetter {
            class: class.into(),
            error: error.into(),
            http_status,
            route: route.to_owned(),
            attempts,
        })
    }

    /// Short label for logs and summaries: `acked`, `nacked`, `dead-lettered`.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Ack(_) => "acked",
            Outcome::Nack { .. } => "nacked",
            Outcome::DeadLetter(_) => "dead-lettered",
        }
    }
}

/// The dead-letter class name for an error class.
pub fn class_label(class: ErrorClass) -> &'static str {
    class.as_str()
}
