//! The in-process store: right for one worker, or as a first line in front
//! of a shared store.
//!
//! Bounded twice over, so a busy worker cannot run out of memory:
//!
//! - **Time.** Claims and done keys expire on their own. Two queues, in
//!   claim order and in completion order, hold them as they were added, so
//!   the oldest is always at the front: each claim sweeps at most
//!   [`SWEEP_PER_CLAIM`] expired entries from the front of each. There is no walk
//!   over the whole map under the lock, and since every claim adds at most
//!   one entry and may remove several, expired entries never pile up.
//! - **Count.** At most `max_keys` keys. When a new key would pass it, the
//!   oldest *done* key is evicted (and counted in `evictions`): a duplicate
//!   of it that comes later is delivered again, with the same idempotency
//!   key. Claims in flight are never evicted, since that would let a second
//!   delivery run beside the first; if every key is in flight the claim fails
//!   as a store error, and the message is nacked and tried again later.
//!
//! Keys are kept as the first 16 bytes of their SHA-256, so an entry has a
//! fixed size whatever the key's length: about 95 bytes per key while the
//! store fills, and 160 once it is full and evicting (the map's table then
//! settles at twice the size, as deleted slots are reused only after a
//! rehash), measured by `tests/memory_store.rs`. A done key of a route that
//! publishes results also keeps the target's answer (a few hundred bytes of
//! JSON, at most) in a side table, so routes without results pay nothing.

use super::{Claim, ClaimToken, IdempotencyStore, StoreError};
use async_trait::async_trait;
use sha2::{Digest as _, Sha256};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Keys remembered by default: about 64 MB when full, comfortably inside a
/// 256 MiB Cloud Run instance next to the worker's own 20 to 30 MiB and the
/// messages it holds.
pub const DEFAULT_MAX_KEYS: usize = 400_000;

/// Queue items a claim sweeps at most, per queue: more than the one each
/// message adds to each.
pub const SWEEP_PER_CLAIM: usize = 8;

/// Stale claim-queue items tolerated before a compaction, on top of twice
/// the live ones.
const COMPACT_SLACK: usize = 1024;

/// 128 bits of the key's SHA-256: collisions are out of reach (2^64 keys for
/// even odds) and every entry has the same small size.
type KeyDigest = [u8; 16];

fn digest(key: &str) -> KeyDigest {
    let full = Sha256::digest(key.as_bytes());
    let mut d = [0; 16];
    d.copy_from_slice(&full[..16]);
    d
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    InFlight,
    Done,
}

#[derive(Debug)]
struct Entry {
    until: Instant,
    /// The claim that made this entry: its token, and how a queue item tells
    /// whether it still describes the entry.
    seq: u64,
    state: State,
}

/// An in-memory [`IdempotencyStore`].
#[derive(Debug)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    max_keys: usize,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<KeyDigest, Entry>,
    /// In-flight claims in claim order. Items whose entry has since been
    /// completed, released or claimed again are stale and skipped.
    in_flight: VecDeque<(KeyDigest, u64)>,
    /// When `in_flight` is longer than this, its stale items are dropped.
    compact_at: usize,
    /// Done keys in completion order, the oldest first.
    done: VecDeque<(KeyDigest, u64)>,
    next_seq: u64,
    evictions: u64,
    /// The answers of done keys that have one.
    answers: HashMap<KeyDigest, Box<str>>,
    /// Their bytes, for `approx_bytes`.
    answer_bytes: usize,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store holding at most [`DEFAULT_MAX_KEYS`] keys.
    pub fn new() -> Self {
        Self::with_max_keys(DEFAULT_MAX_KEYS)
    }

    /// An empty store holding at most `max_keys` keys (at least 1).
    pub fn with_max_keys(max_keys: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                compact_at: COMPACT_SLACK,
                ..Inner::default()
            }),
            max_keys: max_keys.max(1),
        }
    }

    /// Keys currently remembered (held or done, not yet swept).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// True when no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes the store's tables take now, from their capacities: what
    /// sizing is based on (the allocator's own overhead comes on top).
    pub fn approx_bytes(&self) -> usize {
        use std::mem::size_of;
        let inner = self.lock();
        // hashbrown keeps at most 7 of every 8 buckets full, in a power of
        // two, with one control byte per bucket.
        let cap = inner.entries.capacity();
        let buckets = if cap == 0 {
            0
        } else {
            (cap * 8 / 7).next_power_of_two()
        };
        let map = buckets * (size_of::<(KeyDigest, Entry)>() + 1);
        let queues =
            (inner.in_flight.capacity() + inner.done.capacity()) * size_of::<(KeyDigest, u64)>();
        let answers = inner.answers.capacity() * 8 / 7 * (size_of::<(KeyDigest, Box<str>)>() + 1)
            + inner.answer_bytes;
        size_of::<Self>() + map + queues + answers
    }

    /// Done keys dropped so far to stay within `max_keys`.
    pub fn evictions(&self) -> u64 {
        self.lock().evictions
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave an entry half-written,
        // so a poisoned lock is safe to keep using.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Inner {
    /// Forgets `d`, its answer included.
    fn remove(&mut self, d: &KeyDigest) {
        self.entries.remove(d);
        self.forget_answer(d);
    }

    fn forget_answer(&mut self, d: &KeyDigest) {
        if let Some(a) = self.answers.remove(d) {
            self.answer_bytes -= a.len();
        }
    }

    fn keep_answer(&mut self, d: KeyDigest, answer: Option<&str>) {
        self.forget_answer(&d);
        if let Some(a) = answer {
            self.answer_bytes += a.len();
            self.answers.insert(d, a.into());
        }
    }

    /// Removes up to `budget` expired or stale items from the front of each
    /// queue.
    fn sweep(&mut self, now: Instant, budget: usize) {
        for state in [State::InFlight, State::Done] {
            let mut budget = budget;
            while budget > 0 {
                let queue = match state {
                    State::InFlight => &mut self.in_flight,
                    State::Done => &mut self.done,
                };
                let Some(&(d, seq)) = queue.front() else {
                    break;
                };
                match self.entries.get(&d) {
                    Some(e) if e.seq == seq && e.state == state => {
                        if e.until > now {
                            break;
                        }
                        // Field by field: `queue` borrows one of them.
                        self.entries.remove(&d);
                        if let Some(a) = self.answers.remove(&d) {
                            self.answer_bytes -= a.len();
                        }
                    }
                    // Stale: the entry moved on since this item was queued.
                    _ => {}
                }
                queue.pop_front();
                budget -= 1;
            }
        }
    }

    /// Makes room for one more key by evicting the oldest done key. False
    /// when every key is a claim in flight.
    fn evict_oldest_done(&mut self) -> bool {
        while let Some((d, seq)) = self.done.pop_front() {
            if self
                .entries
                .get(&d)
                .is_some_and(|e| e.seq == seq && e.state == State::Done)
            {
                self.remove(&d);
                self.evictions += 1;
                if self.evictions == 1 {
                    tracing::warn!(
                        keys = self.entries.len() + 1,
                        "The in-memory idempotency store is full; evicting the oldest done keys \
                         (raise delivery.idempotency.max_keys, or use the Firestore ledger)."
                    );
                }
                return true;
            }
        }
        false
    }

    /// Room for `d`, which is not in the map: evicts when full.
    fn room_for_new(&mut self, max_keys: usize) -> Result<(), StoreError> {
        if self.entries.len() < max_keys || self.evict_oldest_done() {
            return Ok(());
        }
        Err(StoreError(format!(
            "in-memory store full: all {max_keys} keys are claims in flight \
             (delivery.idempotency.max_keys is below the messages processed at once)"
        )))
    }

    fn insert(&mut self, d: KeyDigest, state: State, until: Instant) -> u64 {
        // A key taken over after it expired starts without the old answer.
        self.forget_answer(&d);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.entries.insert(d, Entry { until, seq, state });
        match state {
            State::InFlight => {
                self.in_flight.push_back((d, seq));
                self.compact_in_flight();
            }
            State::Done => self.done.push_back((d, seq)),
        }
        seq
    }

    /// Drops stale items from the claim queue once it is more than twice as
    /// long as it was after the last compaction. Completed claims leave a
    /// stale item each, and the sweep only removes them from the front: one
    /// claim held for its whole lease would otherwise keep every later one
    /// queued behind it. The walk is paid for by the pushes since the last
    /// one, so it costs O(1) per claim on average.
    fn compact_in_flight(&mut self) {
        if self.in_flight.len() <= self.compact_at {
            return;
        }
        let entries = &self.entries;
        self.in_flight.retain(|(d, seq)| {
            entries
                .get(d)
                .is_some_and(|e| e.seq == *seq && e.state == State::InFlight)
        });
        self.compact_at = 2 * self.in_flight.len() + COMPACT_SLACK;
    }
}

fn seq_of(token: &ClaimToken) -> Option<u64> {
    token.as_str().parse().ok()
}

#[async_trait]
impl IdempotencyStore for MemoryStore {
    async fn claim(&self, key: &str, lease: Duration) -> Result<Claim, StoreError> {
        let now = Instant::now();
        let d = digest(key);
        let mut inner = self.lock();
        inner.sweep(now, SWEEP_PER_CLAIM);
        match inner.entries.get(&d) {
            Some(e) if e.until > now => {
                return Ok(match e.state {
                    State::Done => Claim::Done {
                        answer: inner.answers.get(&d).map(|a| a.to_string()),
                    },
                    State::InFlight => Claim::InFlight {
                        remaining: e.until - now,
                    },
                });
            }
            // Expired but not swept yet: taken over in place.
            Some(_) => {}
            None => inner.room_for_new(self.max_keys)?,
        }
        let seq = inner.insert(d, State::InFlight, now + lease);
        Ok(Claim::Acquired(ClaimToken::new(seq.to_string())))
    }

    async fn complete(
        &self,
        key: &str,
        token: &ClaimToken,
        ttl: Duration,
        answer: Option<&str>,
    ) -> Result<(), StoreError> {
        let now = Instant::now();
        let d = digest(key);
        let mut inner = self.lock();
        match inner.entries.get_mut(&d) {
            Some(e) if e.state == State::InFlight && Some(e.seq) == seq_of(token) => {
                e.state = State::Done;
                e.until = now + ttl;
                let seq = e.seq;
                inner.done.push_back((d, seq));
                inner.keep_answer(d, answer);
                return Ok(());
            }
            Some(e) if e.until > now => {
                return match e.state {
                    // Another delivery got there first: the key is done either way.
                    State::Done => Ok(()),
                    State::InFlight => Err(StoreError(format!(
                        "{key} was claimed again by another delivery after this claim's lease \
                         ran out; its claim is left alone"
                    ))),
                };
            }
            // Expired and not swept yet: nobody holds it, record the effect.
            Some(_) => {}
            None => inner.room_for_new(self.max_keys)?,
        }
        inner.insert(d, State::Done, now + ttl);
        inner.keep_answer(d, answer);
        Ok(())
    }

    async fn release(&self, key: &str, token: &ClaimToken) -> Result<(), StoreError> {
        let d = digest(key);
        let mut inner = self.lock();
        if inner
            .entries
            .get(&d)
            .is_some_and(|e| e.state == State::InFlight && Some(e.seq) == seq_of(token))
        {
            inner.remove(&d);
        }
        Ok(())
    }

    fn stats(&self) -> Vec<(&'static str, u64)> {
        let inner = self.lock();
        vec![
            (
                "idempotency_keys",
                u64::try_from(inner.entries.len()).unwrap_or(u64::MAX),
            ),
            ("idempotency_evictions", inner.evictions),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(30);
    const TTL: Duration = Duration::from_secs(60);

    async fn acquire(s: &MemoryStore, key: &str) -> ClaimToken {
        match s.claim(key, LEASE).await {
            Ok(Claim::Acquired(t)) => t,
            other => panic!("expected {key} to be acquired, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn claim_inflight_done_expire() -> Result<(), StoreError> {
        let s = MemoryStore::new();
        let t = acquire(&s, "k").await;
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(
            s.claim("k", LEASE).await?,
            Claim::InFlight {
                remaining: Duration::from_secs(20)
            }
        );
        s.complete("k", &t, TTL, None).await?;
        assert_eq!(s.claim("k", LEASE).await?, Claim::Done { answer: None });
        tokio::time::advance(TTL + Duration::from_secs(1)).await;
        assert!(
            matches!(s.claim("k", LEASE).await?, Claim::Acquired(_)),
            "done expires after its TTL"
        );
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn expired_lease_is_taken_over_and_release_frees() -> Result<(), StoreError> {
        let s = MemoryStore::new();
        acquire(&s, "k").await;
        tokio::time::advance(LEASE + Duration::from_secs(1)).await;
        let t = acquire(&s, "k").await; // a crashed holder's lease runs out
        s.release("k", &t).await?;
        let t = acquire(&s, "k").await;
        s.complete("k", &t, LEASE, None).await?;
        s.release("k", &t).await?;
        assert_eq!(
            s.claim("k", LEASE).await?,
            Claim::Done { answer: None },
            "release never undoes done"
        );
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_holder_can_neither_release_nor_complete_the_newer_claim()
    -> Result<(), StoreError> {
        let s = MemoryStore::new();
        let late = acquire(&s, "k").await;
        tokio::time::advance(LEASE + Duration::from_secs(1)).await;
        let newer = acquire(&s, "k").await;
        assert_ne!(late, newer);

        s.release("k", &late).await?;
        assert!(
            matches!(s.claim("k", LEASE).await?, Claim::InFlight { .. }),
            "the late holder's release left the newer claim alone"
        );
        assert!(
            s.complete("k", &late, TTL, None).await.is_err(),
            "the late holder's complete is refused"
        );
        assert!(
            matches!(s.claim("k", LEASE).await?, Claim::InFlight { .. }),
            "the late holder's complete did not mark the newer claim done"
        );

        s.complete("k", &newer, TTL, None).await?;
        assert_eq!(s.claim("k", LEASE).await?, Claim::Done { answer: None });
        // Done now; the late holder's complete is no error any more.
        s.complete("k", &late, TTL, None).await?;
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn full_store_evicts_the_oldest_done_keys_never_claims_in_flight()
    -> Result<(), StoreError> {
        let s = MemoryStore::with_max_keys(3);
        for k in ["a", "b"] {
            let t = acquire(&s, k).await;
            tokio::time::advance(Duration::from_secs(1)).await;
            s.complete(k, &t, TTL, None).await?;
        }
        let _held = acquire(&s, "c").await;
        assert_eq!(s.len(), 3);

        acquire(&s, "d").await;
        assert_eq!(s.len(), 3, "stays within max_keys");
        assert_eq!(s.evictions(), 1);
        assert!(
            matches!(s.claim("a", LEASE).await?, Claim::Acquired(_)),
            "the oldest done key was evicted (and is claimed anew now)"
        );
        assert_eq!(s.evictions(), 2, "b made room for a");
        assert!(
            matches!(s.claim("c", LEASE).await?, Claim::InFlight { .. }),
            "a claim in flight is never evicted"
        );
        // a, c, d are all in flight: no room for a fourth key.
        let e = s.claim("e", LEASE).await;
        assert!(e.is_err(), "{e:?}");
        assert_eq!(
            s.stats(),
            vec![("idempotency_keys", 3), ("idempotency_evictions", 2)]
        );
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn expired_keys_are_swept_a_few_per_claim() -> Result<(), StoreError> {
        let s = MemoryStore::new();
        for i in 0..100 {
            let k = format!("k{i}");
            let t = acquire(&s, &k).await;
            s.complete(&k, &t, TTL, None).await?;
        }
        tokio::time::advance(TTL + Duration::from_secs(1)).await;
        acquire(&s, "new").await;
        assert_eq!(
            s.len(),
            100 + 1 - SWEEP_PER_CLAIM,
            "one claim sweeps a bounded number"
        );
        for i in 0..20 {
            acquire(&s, &format!("n{i}")).await;
        }
        assert_eq!(s.len(), 21, "the expired keys are gone after a few claims");
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn a_done_key_hands_back_its_answer_until_it_expires() -> Result<(), StoreError> {
        let s = MemoryStore::with_max_keys(2);
        let t = acquire(&s, "a").await;
        s.complete("a", &t, TTL, Some(r#"{"id":"001"}"#)).await?;
        assert_eq!(
            s.claim("a", LEASE).await?,
            Claim::Done {
                answer: Some(r#"{"id":"001"}"#.into())
            }
        );
        let before = s.approx_bytes();
        tokio::time::advance(TTL + Duration::from_secs(1)).await;
        let t = acquire(&s, "a").await;
        assert!(
            s.approx_bytes() < before,
            "the expired answer is dropped with its key"
        );
        s.complete("a", &t, TTL, None).await?;
        assert_eq!(
            s.claim("a", LEASE).await?,
            Claim::Done { answer: None },
            "a key taken over does not keep the old answer"
        );
        // Eviction drops the answer too.
        let t = acquire(&s, "b").await;
        s.complete("b", &t, TTL, Some("x")).await?;
        assert_eq!(s.lock().answers.len(), 1);
        // Two more keys push out both "a" and "b" (the store holds two).
        acquire(&s, "c").await;
        acquire(&s, "d").await;
        assert_eq!(s.evictions(), 2);
        assert_eq!(s.lock().answers.len(), 0, "evicted with its key");
        Ok(())
    }
}
