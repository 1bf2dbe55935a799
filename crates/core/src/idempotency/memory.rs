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
//! Compact, since the store is most of what a worker's memory grows by: a
//! key is kept as the first 16 bytes of its SHA-256, in a 32-byte slot of
//! one array (digest, deadline, claim number); the hash index holds 4-byte
//! slot numbers, and a queue item is 12 bytes (slot and claim number). A
//! freed slot is reused before the array grows, so a full store stays the
//! size it reached. About 60 bytes per key while the store fills and 70
//! once it is full and evicting, measured by `tests/memory_store.rs` (std's
//! map of entries with two queues of keys beside it took 95 and 160). A
//! done key of a route that publishes results also keeps the target's
//! answer (a few hundred bytes of JSON, at most) in a side table, so routes
//! without results pay nothing.

use super::{Claim, ClaimToken, IdempotencyStore, StoreError};
use async_trait::async_trait;
use hashbrown::{DefaultHashBuilder, HashTable};
use sha2::{Digest as _, Sha256};
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher as _;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Keys remembered by default: about 28 MB when full, comfortably inside a
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

/// A slot's place in [`Inner::slots`]: 4 bytes, so `max_keys` is capped at
/// `u32::MAX`.
type SlotId = u32;

/// The low bit of a [`Slot::tag`]: set once the key is done.
const DONE: u64 = 1;

/// The tag of a free slot: no claim number makes it (they stay below 2^63).
const FREE: u64 = u64::MAX;

/// One remembered key.
#[derive(Debug, Clone, Copy)]
struct Slot {
    digest: KeyDigest,
    /// When the claim or the done key runs out, in nanoseconds since the
    /// store's epoch (584 years of range).
    until: u64,
    /// The claim that made this entry, shifted left once, with [`DONE`]:
    /// the claim's token, its state, and how a queue item tells whether it
    /// still describes the slot. [`FREE`] when the slot holds no key.
    tag: u64,
}

impl Slot {
    fn is_done(&self) -> bool {
        self.tag & DONE == DONE
    }

    fn is_claim(&self, seq: Option<u64>) -> bool {
        !self.is_done() && seq.is_some_and(|s| self.tag == s << 1)
    }
}

/// A queue item: a slot and the tag it had when queued, in 12 bytes (a
/// `(u32, u64)` would be padded to 16).
#[derive(Debug, Clone, Copy)]
struct Mark {
    slot: SlotId,
    tag: [u32; 2],
}

impl Mark {
    fn new(slot: SlotId, tag: u64) -> Self {
        // Split on purpose: the two halves go back together in `tag()`.
        #[allow(clippy::cast_possible_truncation)]
        let halves = [tag as u32, (tag >> 32) as u32];
        Self { slot, tag: halves }
    }

    fn tag(self) -> u64 {
        u64::from(self.tag[0]) | (u64::from(self.tag[1]) << 32)
    }
}

/// An in-memory [`IdempotencyStore`].
#[derive(Debug)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    max_keys: usize,
}

#[derive(Debug)]
struct Inner {
    /// The instant slot deadlines count from.
    epoch: Instant,
    /// Randomly seeded per store: keys come from publishers, and a table
    /// hashed by a fixed function could be filled with colliding ones.
    hasher: DefaultHashBuilder,
    /// The slot of each remembered key, hashed by its digest.
    index: HashTable<SlotId>,
    slots: Vec<Slot>,
    /// Slots whose key is gone, reused before `slots` grows.
    free: Vec<SlotId>,
    /// In-flight claims in claim order. Items whose slot has since been
    /// completed, released or claimed again are stale and skipped.
    in_flight: VecDeque<Mark>,
    /// When `in_flight` is longer than this, its stale items are dropped.
    compact_at: usize,
    /// Done keys in completion order, the oldest first.
    done: VecDeque<Mark>,
    next_seq: u64,
    evictions: u64,
    /// The answers of done keys that have one, by slot.
    answers: HashMap<SlotId, Box<str>>,
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

    /// An empty store holding at most `max_keys` keys (at least 1, at most
    /// `u32::MAX`).
    pub fn with_max_keys(max_keys: usize) -> Self {
        let cap = usize::try_from(u32::MAX).unwrap_or(usize::MAX);
        Self {
            inner: Mutex::new(Inner {
                epoch: Instant::now(),
                hasher: DefaultHashBuilder::default(),
                index: HashTable::new(),
                slots: Vec::new(),
                free: Vec::new(),
                in_flight: VecDeque::new(),
                compact_at: COMPACT_SLACK,
                done: VecDeque::new(),
                next_seq: 0,
                evictions: 0,
                answers: HashMap::new(),
                answer_bytes: 0,
            }),
            max_keys: max_keys.clamp(1, cap),
        }
    }

    /// Keys currently remembered (held or done, not yet swept).
    pub fn len(&self) -> usize {
        self.lock().index.len()
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
        let index = hash_table_bytes(inner.index.capacity(), size_of::<SlotId>());
        let slots = inner.slots.capacity() * size_of::<Slot>();
        let free = inner.free.capacity() * size_of::<SlotId>();
        let queues = (inner.in_flight.capacity() + inner.done.capacity()) * size_of::<Mark>();
        let answers = hash_table_bytes(inner.answers.capacity(), size_of::<(SlotId, Box<str>)>())
            + inner.answer_bytes;
        size_of::<Self>() + index + slots + free + queues + answers
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

/// A hashbrown table's bytes for `capacity` items of `item` bytes: at most
/// 7 of every 8 buckets full, in a power of two, one control byte each.
fn hash_table_bytes(capacity: usize, item: usize) -> usize {
    if capacity == 0 {
        return 0;
    }
    (capacity * 8 / 7).next_power_of_two() * (item + 1)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Inner {
    fn now(&self, now: Instant) -> u64 {
        nanos(now.saturating_duration_since(self.epoch))
    }

    fn find(&self, d: &KeyDigest) -> Option<SlotId> {
        let slots = &self.slots;
        self.index
            .find(self.hasher.hash_one(d), |&id| {
                slots[id as usize].digest == *d
            })
            .copied()
    }

    fn slot(&self, id: SlotId) -> Slot {
        self.slots[id as usize]
    }

    fn slot_mut(&mut self, id: SlotId) -> &mut Slot {
        &mut self.slots[id as usize]
    }

    /// Whether `mark` still describes its slot.
    fn is_current(&self, mark: Mark) -> bool {
        self.slot(mark.slot).tag == mark.tag()
    }

    /// A new slot for `d`, which is not in the index.
    fn add(&mut self, d: KeyDigest) -> Result<SlotId, StoreError> {
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                let id = SlotId::try_from(self.slots.len())
                    .map_err(|_| StoreError("in-memory store: more than 2^32 slots".into()))?;
                self.slots.push(Slot {
                    digest: d,
                    until: 0,
                    tag: FREE,
                });
                id
            }
        };
        self.slots[id as usize].digest = d;
        let Self {
            index,
            slots,
            hasher,
            ..
        } = self;
        index.insert_unique(hasher.hash_one(d), id, |&i| {
            hasher.hash_one(slots[i as usize].digest)
        });
        Ok(id)
    }

    /// Forgets the key in slot `id`, its answer included.
    fn remove(&mut self, id: SlotId) {
        let hash = self.hasher.hash_one(self.slot(id).digest);
        if let Ok(entry) = self.index.find_entry(hash, |&i| i == id) {
            entry.remove();
        }
        self.slot_mut(id).tag = FREE;
        self.free.push(id);
        self.forget_answer(id);
    }

    fn forget_answer(&mut self, id: SlotId) {
        if let Some(a) = self.answers.remove(&id) {
            self.answer_bytes -= a.len();
        }
    }

    fn keep_answer(&mut self, id: SlotId, answer: Option<&str>) {
        self.forget_answer(id);
        if let Some(a) = answer {
            self.answer_bytes += a.len();
            self.answers.insert(id, a.into());
        }
    }

    /// Removes up to `budget` expired or stale items from the front of each
    /// queue.
    fn sweep(&mut self, now: u64, budget: usize) {
        for done in [false, true] {
            let mut budget = budget;
            while budget > 0 {
                let queue = if done { &self.done } else { &self.in_flight };
                let Some(&mark) = queue.front() else {
                    break;
                };
                // Stale items (the slot moved on since) are just dropped.
                if self.is_current(mark) {
                    if self.slot(mark.slot).until > now {
                        break;
                    }
                    self.remove(mark.slot);
                }
                if done {
                    self.done.pop_front();
                } else {
                    self.in_flight.pop_front();
                }
                budget -= 1;
            }
        }
    }

    /// Makes room for one more key by evicting the oldest done key. False
    /// when every key is a claim in flight.
    fn evict_oldest_done(&mut self) -> bool {
        while let Some(mark) = self.done.pop_front() {
            if self.is_current(mark) {
                self.remove(mark.slot);
                self.evictions += 1;
                if self.evictions == 1 {
                    tracing::warn!(
                        keys = self.index.len() + 1,
                        "The in-memory idempotency store is full; evicting the oldest done keys \
                         (raise delivery.idempotency.max_keys, or use the Firestore ledger)."
                    );
                }
                return true;
            }
        }
        false
    }

    /// The slot for `d`, which is not in the index: evicts when full.
    fn add_new(&mut self, d: KeyDigest, max_keys: usize) -> Result<SlotId, StoreError> {
        if self.index.len() < max_keys || self.evict_oldest_done() {
            return self.add(d);
        }
        Err(StoreError(format!(
            "in-memory store full: all {max_keys} keys are claims in flight \
             (delivery.idempotency.max_keys is below the messages processed at once)"
        )))
    }

    /// Gives slot `id` a new claim number, `done` or in flight until
    /// `until`, and queues it. Returns the claim number.
    fn set(&mut self, id: SlotId, done: bool, until: u64) -> u64 {
        // A key taken over after it expired starts without the old answer.
        self.forget_answer(id);
        let seq = self.next_seq;
        self.next_seq += 1;
        let tag = (seq << 1) | u64::from(done);
        let slot = self.slot_mut(id);
        slot.until = until;
        slot.tag = tag;
        if done {
            self.done.push_back(Mark::new(id, tag));
        } else {
            self.in_flight.push_back(Mark::new(id, tag));
            self.compact_in_flight();
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
        let slots = &self.slots;
        self.in_flight
            .retain(|m| slots[m.slot as usize].tag == m.tag());
        self.compact_at = 2 * self.in_flight.len() + COMPACT_SLACK;
    }
}

fn seq_of(token: &ClaimToken) -> Option<u64> {
    token.as_str().parse().ok()
}

#[async_trait]
impl IdempotencyStore for MemoryStore {
    async fn claim(&self, key: &str, lease: Duration) -> Result<Claim, StoreError> {
        let d = digest(key);
        let mut inner = self.lock();
        let now = inner.now(Instant::now());
        inner.sweep(now, SWEEP_PER_CLAIM);
        let id = match inner.find(&d) {
            Some(id) => {
                let slot = inner.slot(id);
                if slot.until > now {
                    return Ok(if slot.is_done() {
                        Claim::Done {
                            answer: inner.answers.get(&id).map(|a| a.to_string()),
                        }
                    } else {
                        Claim::InFlight {
                            remaining: Duration::from_nanos(slot.until - now),
                        }
                    });
                }
                // Expired but not swept yet: taken over in place.
                id
            }
            None => inner.add_new(d, self.max_keys)?,
        };
        let seq = inner.set(id, false, now.saturating_add(nanos(lease)));
        Ok(Claim::Acquired(ClaimToken::new(seq.to_string())))
    }

    async fn complete(
        &self,
        key: &str,
        token: &ClaimToken,
        ttl: Duration,
        answer: Option<&str>,
    ) -> Result<(), StoreError> {
        let d = digest(key);
        let mut inner = self.lock();
        let now = inner.now(Instant::now());
        let until = now.saturating_add(nanos(ttl));
        let id = match inner.find(&d) {
            Some(id) if inner.slot(id).is_claim(seq_of(token)) => {
                let slot = inner.slot_mut(id);
                slot.tag |= DONE;
                slot.until = until;
                let tag = slot.tag;
                inner.done.push_back(Mark::new(id, tag));
                inner.keep_answer(id, answer);
                return Ok(());
            }
            Some(id) if inner.slot(id).until > now => {
                return if inner.slot(id).is_done() {
                    // Another delivery got there first: the key is done either way.
                    Ok(())
                } else {
                    Err(StoreError(format!(
                        "{key} was claimed again by another delivery after this claim's lease \
                         ran out; its claim is left alone"
                    )))
                };
            }
            // Expired and not swept yet: nobody holds it, record the effect.
            Some(id) => id,
            None => inner.add_new(d, self.max_keys)?,
        };
        inner.set(id, true, until);
        inner.keep_answer(id, answer);
        Ok(())
    }

    async fn release(&self, key: &str, token: &ClaimToken) -> Result<(), StoreError> {
        let d = digest(key);
        let mut inner = self.lock();
        if let Some(id) = inner.find(&d)
            && inner.slot(id).is_claim(seq_of(token))
        {
            inner.remove(id);
        }
        Ok(())
    }

    fn stats(&self) -> Vec<(&'static str, u64)> {
        let inner = self.lock();
        vec![
            (
                "idempotency_keys",
                u64::try_from(inner.index.len()).unwrap_or(u64::MAX),
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
        assert_eq!(s.lock().answer_bytes, 12);
        tokio::time::advance(TTL + Duration::from_secs(1)).await;
        let t = acquire(&s, "a").await;
        let kept = {
            let inner = s.lock();
            (inner.answers.len(), inner.answer_bytes)
        };
        assert_eq!(kept, (0, 0), "the expired answer is dropped with its key");
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

    /// What a key is in the reference model of the store's contract.
    #[derive(Debug, Clone)]
    struct Model {
        done: bool,
        until: Instant,
        /// The token that completes or releases it; none after a
        /// completion without a claim.
        token: Option<ClaimToken>,
        answer: Option<String>,
    }

    /// Random claims, completions and releases of a few keys, with time
    /// moving on across leases and TTLs, against a plain map of what each
    /// key should be: slots are freed, reused and swept all along, and
    /// every answer must match the model's.
    #[tokio::test(start_paused = true)]
    async fn random_operations_match_a_reference_model() -> Result<(), StoreError> {
        let s = MemoryStore::new();
        let mut rng = fastrand::Rng::with_seed(18);
        let keys = ["a", "b", "c", "d", "e"];
        let mut model: HashMap<&str, Model> = HashMap::new();
        let mut tokens: Vec<ClaimToken> = Vec::new();
        for step in 0..20_000 {
            let key = keys[rng.usize(..keys.len())];
            let now = Instant::now();
            let live = model.get(key).filter(|m| m.until > now).cloned();
            match rng.u8(..4) {
                0 => tokio::time::advance(Duration::from_secs(rng.u64(0..12))).await,
                1 => {
                    let got = s.claim(key, LEASE).await?;
                    match (&live, got) {
                        (Some(m), Claim::Done { answer }) if m.done => {
                            assert_eq!(answer, m.answer, "step {step}: {key}'s answer");
                        }
                        (Some(m), Claim::InFlight { remaining }) if !m.done => {
                            assert_eq!(remaining, m.until - now, "step {step}: {key}");
                        }
                        (None, Claim::Acquired(t)) => {
                            tokens.push(t.clone());
                            model.insert(
                                key,
                                Model {
                                    done: false,
                                    until: now + LEASE,
                                    token: Some(t),
                                    answer: None,
                                },
                            );
                        }
                        (m, got) => panic!("step {step}: claim {key}: {got:?}, model {m:?}"),
                    }
                }
                2 if !tokens.is_empty() => {
                    let t = tokens[rng.usize(..tokens.len())].clone();
                    let answer = rng.bool().then(|| format!("answer {step}"));
                    let got = s.complete(key, &t, TTL, answer.as_deref()).await;
                    let entry = model.get(key);
                    let holds = entry.is_some_and(|m| !m.done && m.token.as_ref() == Some(&t));
                    if holds || live.is_none() {
                        assert!(got.is_ok(), "step {step}: complete {key}: {got:?}");
                        let token = if holds { Some(t) } else { None };
                        model.insert(
                            key,
                            Model {
                                done: true,
                                until: now + TTL,
                                token,
                                answer,
                            },
                        );
                    } else if live.as_ref().is_some_and(|m| m.done) {
                        assert!(got.is_ok(), "step {step}: complete of a done {key}");
                    } else {
                        assert!(
                            got.is_err(),
                            "step {step}: a late complete of {key} refused"
                        );
                    }
                }
                _ if !tokens.is_empty() => {
                    let t = tokens[rng.usize(..tokens.len())].clone();
                    s.release(key, &t).await?;
                    if model
                        .get(key)
                        .is_some_and(|m| !m.done && m.token.as_ref() == Some(&t))
                    {
                        model.remove(key);
                    }
                }
                _ => {}
            }
        }
        assert!(s.len() <= keys.len(), "{} keys remembered", s.len());
        assert!(
            s.lock().slots.len() <= keys.len() + 1,
            "freed slots are reused: {} slots",
            s.lock().slots.len()
        );
        Ok(())
    }
}
