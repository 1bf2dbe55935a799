//! Idempotency: one effect per event, however often Pub/Sub delivers it.
//!
//! Before calling the target the pipeline *claims* the event's key. A claim
//! is either taken (go ahead), already held by another delivery that is still
//! working (its lease has not run out: nack with a delay and let it finish), or
//! done (the effect happened: ack without calling the target). After success
//! the key is marked done for a TTL; after a failure it is released so the
//! redelivery can claim it again.
//!
//! Claims are fenced: [`Claim::Acquired`] hands out a [`ClaimToken`], and
//! `complete` and `release` act only while the key is still held under that
//! token. A delivery whose lease ran out and whose key another delivery has
//! since claimed can therefore neither delete nor overwrite the newer claim.
//!
//! The store sits outside the rate limiter and retries, so duplicates never
//! spend vendor quota.

pub mod key;
pub mod memory;

pub use memory::MemoryStore;

use async_trait::async_trait;
use std::time::Duration;

/// Proof of one claim, handed back to `complete` or `release`. Opaque: each
/// store puts in it what tells its own claims apart (the memory store a
/// sequence number, the Firestore ledger the claim's `updateTime`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClaimToken(String);

impl ClaimToken {
    /// A token holding `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// What the store put in it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The state of a key when a delivery tries to claim it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Claim {
    /// The caller now holds the key for the lease, under this token.
    Acquired(ClaimToken),
    /// Another delivery holds it; its lease ends in this long.
    InFlight {
        /// Time left on the other delivery's lease.
        remaining: Duration,
    },
    /// The effect already happened; with the target's answer (JSON text)
    /// when it was recorded with one.
    Done {
        /// What [`IdempotencyStore::complete`] was given, if anything.
        answer: Option<String>,
    },
}

/// A store failed; the message is nacked and tried again later.
#[derive(Debug, thiserror::Error)]
#[error("idempotency store: {0}")]
pub struct StoreError(pub String);

/// Where claims live. In memory for one process; a shared ledger (the
/// Firestore one in gluefleet-google) for a fleet.
#[async_trait]
pub trait IdempotencyStore: Send + Sync + std::fmt::Debug {
    /// Claims `key` for `lease`, unless it is held or done.
    async fn claim(&self, key: &str, lease: Duration) -> Result<Claim, StoreError>;
    /// Marks `key` done for `ttl`, if `token`'s claim still holds it (or
    /// nobody does), keeping `answer` (the target's answer as JSON text, for
    /// routes that publish results) to hand back with [`Claim::Done`]. A key
    /// claimed by someone else since is left alone and reported as an error.
    async fn complete(
        &self,
        key: &str,
        token: &ClaimToken,
        ttl: Duration,
        answer: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Gives `key` up after a failure, so a redelivery may claim it; only
    /// while `token`'s claim still holds it.
    async fn release(&self, key: &str, token: &ClaimToken) -> Result<(), StoreError>;
    /// Counters worth reporting in the job summary (evictions, say).
    fn stats(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
}
