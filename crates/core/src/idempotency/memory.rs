//! The in-process store: right for one worker, or as a first line in front
//! of a shared store. Entries expire on their own; a sweep every 4,096 claims
//! keeps memory bounded by the keys seen within the TTL.

use super::{Claim, IdempotencyStore, StoreError};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
enum State {
    InFlight,
    Done,
}

#[derive(Debug)]
struct Entry {
    state: State,
    until: Instant,
}

/// An in-memory [`IdempotencyStore`].
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    claims: u64,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keys currently remembered (held or done, not yet expired or swept).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// True when no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave an entry half-written,
        // so a poisoned lock is safe to keep using.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl IdempotencyStore for MemoryStore {
    async fn claim(&self, key: &str, lease: Duration) -> Result<Claim, StoreError> {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.claims += 1;
        if inner.claims.is_multiple_of(4096) {
            inner.entries.retain(|_, e| e.until > now);
        }
        if let Some(e) = inner.entries.get(key)
            && e.until > now
        {
            return Ok(match e.state {
                State::Done => Claim::Done,
                State::InFlight => Claim::InFlight {
                    remaining: e.until - now,
                },
            });
        }
        inner.entries.insert(
            key.to_owned(),
            Entry {
                state: State::InFlight,
                until: now + lease,
            },
        );
        Ok(Claim::Acquired)
    }

    async fn complete(&self, key: &str, ttl: Duration) -> Result<(), StoreError> {
        let until = Instant::now() + ttl;
        self.lock().entries.insert(
            key.to_owned(),
            Entry {
                state: State::Done,
                until,
            },
        );
        Ok(())
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if matches!(
            inner.entries.get(key),
            Some(Entry {
                state: State::InFlight,
                ..
            })
        ) {
            inner.entries.remove(key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(30);

    #[tokio::test(start_paused = true)]
    async fn claim_inflight_done_expire() -> Result<(), StoreError> {
        let s = MemoryStore::new();
        assert_eq!(s.claim("k", LEASE).await?, Claim::Acquired);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(
            s.claim("k", LEASE).await?,
            Claim::InFlight {
                remaining: Duration::from_secs(20)
            }
        );
        s.complete("k", Duration::from_secs(60)).await?;
        assert_eq!(s.claim("k", LEASE).await?, Claim::Done);
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(
            s.claim("k", LEASE).await?,
            Claim::Acquired,
            "done expires after its TTL"
        );
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn expired_lease_is_taken_over_and_release_frees() -> Result<(), StoreError> {
        let s = MemoryStore::new();
        assert_eq!(s.claim("k", LEASE).await?, Claim::Acquired);
        tokio::time::advance(LEASE + Duration::from_secs(1)).await;
        assert_eq!(
            s.claim("k", LEASE).await?,
            Claim::Acquired,
            "a crashed holder's lease runs out"
        );
        s.release("k").await?;
        assert_eq!(s.claim("k", LEASE).await?, Claim::Acquired);
        s.complete("k", LEASE).await?;
        s.release("k").await?;
        assert_eq!(
            s.claim("k", LEASE).await?,
            Claim::Done,
            "release never undoes done"
        );
        Ok(())
    }
}
