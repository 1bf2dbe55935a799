//! The fleet's shared ledger (the core's [`IdempotencyStore`]): idempotency claims as Firestore documents, so
//! every instance of a connector on Cloud Run sees the same claims.
//!
//! One document per key in `collection`, named by the SHA-256 of the key (a
//! safe document id whatever the key holds), with fields `key`, `state`
//! (`in-flight` or `done`), `leaseUntil` and `expireAt`. `expireAt` is meant
//! for a Firestore TTL policy (deploy/terraform), which deletes old claims.
//!
//! A claim's token is the `updateTime` Firestore gave the claim document:
//! it changes with every write, so it names exactly one claim.
//!
//! - claim: create with `exists = false`. If the document exists: done →
//!   duplicate; in flight with a live lease → in flight; an expired lease or
//!   an expired done → take over with an `updateTime` precondition, so two
//!   workers cannot both take it.
//! - complete: overwrite as done with `expireAt = now + ttl`, on the
//!   precondition that `updateTime` is still the claim's own, so a worker
//!   whose lease ran out cannot overwrite another's newer claim.
//! - release: delete, on the same precondition.
//!
//! Cost: two Firestore writes per event (claim, complete), one more read for
//! a duplicate.

use crate::firestore::{Document, Firestore};
use async_trait::async_trait;
use gluefleet_core::ConnectorError;
use gluefleet_core::idempotency::{Claim, ClaimToken, IdempotencyStore, StoreError};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::time::{Duration, SystemTime};

/// How long an abandoned in-flight claim is kept after its lease, for the TTL.
const IN_FLIGHT_GRACE: Duration = Duration::from_secs(24 * 3600);

/// A Firestore-backed [`IdempotencyStore`].
#[derive(Debug)]
pub struct FirestoreStore {
    db: Firestore,
    collection: String,
}

fn store_err(e: ConnectorError) -> StoreError {
    StoreError(e.to_string())
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

fn timestamp(doc: &Document, field: &str) -> Option<SystemTime> {
    doc.fields
        .get(field)
        .and_then(|v| v["timestampValue"].as_str())
        .and_then(|s| humantime::parse_rfc3339(s).ok())
}

impl FirestoreStore {
    /// A ledger in `collection` of `db`.
    pub fn new(
        db: Firestore,
        collection: impl Into<String>,
    ) -> Result<Self, gluefleet_core::ConfigError> {
        let collection = collection.into();
        if collection.is_empty() || collection.contains('/') {
            return Err(
                format!("idempotency collection {collection:?} must be one collection id").into(),
            );
        }
        Ok(Self { db, collection })
    }

    /// Firestore requests sent so far.
    pub fn requests(&self) -> u64 {
        self.db.requests()
    }

    fn path(&self, key: &str) -> String {
        let digest = Sha256::digest(key.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("{}/{hex}", self.collection)
    }

    fn doc(&self, key: &str, state: &str, lease_until: SystemTime, expire_at: SystemTime) -> Value {
        let shown: String = key.chars().take(1000).collect();
        json!({
            "name": self.db.document_name(&self.path(key)),
            "fields": {
                "key": { "stringValue": shown },
                "state": { "stringValue": state },
                "leaseUntil": { "timestampValue": rfc3339(lease_until) },
                "expireAt": { "timestampValue": rfc3339(expire_at) },
            }
        })
    }
}

/// The token of a claim Firestore just wrote.
fn acquired(key: &str, update_time: Option<String>) -> Result<Claim, StoreError> {
    update_time
        .map(|t| Claim::Acquired(ClaimToken::new(t)))
        .ok_or_else(|| {
            StoreError(format!(
                "Firestore wrote the claim of {key} without saying its updateTime"
            ))
        })
}

#[async_trait]
impl IdempotencyStore for FirestoreStore {
    async fn claim(&self, key: &str, lease: Duration) -> Result<Claim, StoreError> {
        let now = SystemTime::now();
        let fresh = self.doc(key, "in-flight", now + lease, now + lease + IN_FLIGHT_GRACE);
        // Two rounds: a claim deleted between our create and our read is
        // simply created again.
        for _ in 0..2 {
            let create = json!({ "update": fresh, "currentDocument": { "exists": false } });
            let status = self.db.write(create).await.map_err(store_err)?;
            match status.code {
                0 => return acquired(key, status.update_time),
                6 => {}
                _ => {
                    return Err(StoreError(
                        status.error(&format!("claiming {key}")).to_string(),
                    ));
                }
            }
            let Some(doc) = self.db.get(&self.path(key)).await.map_err(store_err)? else {
                continue;
            };
            let state = doc
                .fields
                .get("state")
                .and_then(|v| v["stringValue"].as_str())
                .unwrap_or_default();
            let now = SystemTime::now();
            if state == "done" && timestamp(&doc, "expireAt").is_some_and(|t| t > now) {
                let answer = doc
                    .fields
                    .get("answer")
                    .and_then(|v| v["stringValue"].as_str())
                    .map(str::to_owned);
                return Ok(Claim::Done { answer });
            }
            if state == "in-flight"
                && let Some(remaining) =
                    timestamp(&doc, "leaseUntil").and_then(|t| t.duration_since(now).ok())
                && !remaining.is_zero()
            {
                return Ok(Claim::InFlight { remaining });
            }
            // The holder's lease ran out (or the done record expired): take over.
            let takeover =
                json!({ "update": fresh, "currentDocument": { "updateTime": doc.update_time } });
            let status = self.db.write(takeover).await.map_err(store_err)?;
            return match status.code {
                0 => acquired(key, status.update_time),
                // Someone else took it over first.
                9 => Ok(Claim::InFlight { remaining: lease }),
                _ => Err(StoreError(
                    status.error(&format!("taking over {key}")).to_string(),
                )),
            };
        }
        Err(StoreError(format!("claim for {key} kept disappearing")))
    }

    async fn complete(
        &self,
        key: &str,
        token: &ClaimToken,
        ttl: Duration,
        answer: Option<&str>,
    ) -> Result<(), StoreError> {
        let now = SystemTime::now();
        let mut doc = self.doc(key, "done", now, now + ttl);
        if let Some(answer) = answer {
            // Read back by a redelivery that republishes the result.
            doc["fields"]["answer"] = json!({ "stringValue": answer });
        }
        let write = json!({
            "update": doc,
            "currentDocument": { "updateTime": token.as_str() },
        });
        let status = self.db.write(write).await.map_err(store_err)?;
        match status.code {
            0 => Ok(()),
            // Gone, or written since: another delivery took the claim over
            // after ours ran out. Its claim is left alone.
            5 | 9 => Err(StoreError(format!(
                "{key} was claimed again by another delivery after this claim's lease ran out; \
                 its claim is left alone"
            ))),
            _ => Err(StoreError(
                status.error(&format!("marking {key} done")).to_string(),
            )),
        }
    }

    async fn release(&self, key: &str, token: &ClaimToken) -> Result<(), StoreError> {
        let delete = json!({
            "delete": self.db.document_name(&self.path(key)),
            "currentDocument": { "updateTime": token.as_str() },
        });
        let status = self.db.write(delete).await.map_err(store_err)?;
        match status.code {
            // Gone already, or someone else's claim now: leave it.
            0 | 5 | 9 => Ok(()),
            _ => Err(StoreError(
                status.error(&format!("releasing {key}")).to_string(),
            )),
        }
    }
}
