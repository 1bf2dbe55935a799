//! A bounded per-subject cache of short-lived values (tokens), the mechanism
//! apart from what is fetched:
//!
//! - bounded: at most `max_subjects` entries; the least recently used one
//!   goes when a new subject comes and the cache is full;
//! - refreshed ahead: a value that lives `lifetime` is fetched again once
//!   less than `refresh_ahead` of it is left, so no call goes out with a
//!   token about to expire; if that refresh fails while the old value is
//!   still valid, the old value is served;
//! - single flight per subject: N callers asking for one subject at once
//!   cause one fetch, the others wait for it; subjects do not wait on each
//!   other;
//! - invalidated per subject and per generation: each fetched value gets a
//!   generation number, and [`SubjectCache::invalidate`] drops the entry only
//!   while it still holds the refused generation, so N callers refused at
//!   once cause one refresh.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

/// A value held for one subject.
#[derive(Clone, Debug)]
struct Held<V> {
    value: V,
    generation: u64,
    /// From here on, the next caller fetches a new value.
    refresh_at: Instant,
    /// Past here the value is not served at all.
    expires_at: Instant,
}

/// One subject's slot: the value, and the lock that makes fetches single.
#[derive(Debug)]
struct Slot<V> {
    held: Mutex<Option<Held<V>>>,
    flight: tokio::sync::Mutex<()>,
}

#[derive(Debug)]
struct Entry<V> {
    slot: Arc<Slot<V>>,
    used: u64,
}

#[derive(Debug)]
struct Index<V> {
    entries: HashMap<String, Entry<V>>,
    /// Last use → subject: the first key is the least recently used.
    by_use: BTreeMap<u64, String>,
    tick: u64,
}

/// The cache. `V` is cloned out to every caller.
#[derive(Debug)]
pub struct SubjectCache<V> {
    index: Mutex<Index<V>>,
    max_subjects: usize,
    refresh_ahead: Duration,
    generation: AtomicU64,
    evictions: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<V: Clone> SubjectCache<V> {
    /// A cache of at most `max_subjects` (at least 1) entries, refreshing
    /// `refresh_ahead` before a value's lifetime runs out.
    pub fn new(max_subjects: usize, refresh_ahead: Duration) -> Self {
        Self {
            index: Mutex::new(Index {
                entries: HashMap::new(),
                by_use: BTreeMap::new(),
                tick: 0,
            }),
            max_subjects: max_subjects.max(1),
            refresh_ahead,
            generation: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        }
    }

    /// Subjects held now.
    pub fn len(&self) -> usize {
        lock(&self.index).entries.len()
    }

    /// True when no subject is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Subjects dropped to make room so far.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    /// The subject's slot, created (evicting the least recently used one
    /// when full) if needed, and marked as just used.
    fn slot(&self, subject: &str) -> Arc<Slot<V>> {
        let mut index = lock(&self.index);
        index.tick += 1;
        let tick = index.tick;
        if let Some(entry) = index.entries.get_mut(subject) {
            let old = std::mem::replace(&mut entry.used, tick);
            let slot = entry.slot.clone();
            index.by_use.remove(&old);
            index.by_use.insert(tick, subject.to_owned());
            return slot;
        }
        while index.entries.len() >= self.max_subjects {
            let Some((_, oldest)) = index.by_use.pop_first() else {
                break;
            };
            index.entries.remove(&oldest);
            self.evictions.fetch_add(1, Ordering::Relaxed);
        }
        let slot = Arc::new(Slot {
            held: Mutex::new(None),
            flight: tokio::sync::Mutex::new(()),
        });
        index.entries.insert(
            subject.to_owned(),
            Entry {
                slot: slot.clone(),
                used: tick,
            },
        );
        index.by_use.insert(tick, subject.to_owned());
        slot
    }

    /// The value for `subject`: the held one while it is fresh, else one
    /// `fetch` gives (called with the new value's generation; it answers
    /// the value and how long it lives).
    pub async fn get<F, Fut, E>(&self, subject: &str, fetch: F) -> Result<V, E>
    where
        F: FnOnce(u64) -> Fut,
        Fut: Future<Output = Result<(V, Duration), E>>,
    {
        let slot = self.slot(subject);
        if let Some(v) = fresh(&slot, Instant::now()) {
            return Ok(v);
        }
        let _flight = slot.flight.lock().await;
        // Whoever held the flight before us may have fetched it.
        let now = Instant::now();
        if let Some(v) = fresh(&slot, now) {
            return Ok(v);
        }
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        match fetch(generation).await {
            Ok((value, lifetime)) => {
                let now = Instant::now();
                // A value shorter-lived than the margin is refreshed halfway.
                let ahead = if self.refresh_ahead < lifetime {
                    self.refresh_ahead
                } else {
                    lifetime / 2
                };
                *lock(&slot.held) = Some(Held {
                    value: value.clone(),
                    generation,
                    refresh_at: now + (lifetime - ahead),
                    expires_at: now + lifetime,
                });
                Ok(value)
            }
            Err(e) => {
                // A refresh ahead that failed: the old value still works.
                let held = lock(&slot.held);
                match held.as_ref() {
                    Some(h) if Instant::now() < h.expires_at => Ok(h.value.clone()),
                    _ => Err(e),
                }
            }
        }
    }

    /// The target refused `subject`'s value of `generation`: drop it, unless
    /// the subject already holds a newer one. True when something was dropped.
    pub fn invalidate(&self, subject: &str, generation: u64) -> bool {
        let slot = match lock(&self.index).entries.get(subject) {
            Some(e) => e.slot.clone(),
            None => return false,
        };
        let mut held = lock(&slot.held);
        if held.as_ref().is_some_and(|h| h.generation == generation) {
            *held = None;
            true
        } else {
            false
        }
    }
}

fn fresh<V: Clone>(slot: &Slot<V>, now: Instant) -> Option<V> {
    lock(&slot.held)
        .as_ref()
        .filter(|h| now < h.refresh_at)
        .map(|h| h.value.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    const HOUR: Duration = Duration::from_secs(3600);
    const AHEAD: Duration = Duration::from_secs(300);

    /// A fetch that counts itself and answers `subject#generation`.
    fn counted(
        calls: &Arc<AtomicUsize>,
        subject: &str,
    ) -> impl FnOnce(u64) -> std::future::Ready<Result<(String, Duration), String>> {
        let calls = calls.clone();
        let subject = subject.to_owned();
        move |g| {
            calls.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Ok((format!("{subject}#{g}"), HOUR)))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn one_fetch_per_subject() {
        let cache = SubjectCache::new(10_000, AHEAD);
        let calls = Arc::new(AtomicUsize::new(0));
        for i in 0..100 {
            let s = format!("user{i}@example.com");
            cache.get(&s, counted(&calls, &s)).await.expect("value");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 100);
        let calls = Arc::new(AtomicUsize::new(0));
        let cache = SubjectCache::new(10_000, AHEAD);
        for i in 0..1000 {
            let s = format!("user{}@example.com", i % 10);
            let v = cache.get(&s, counted(&calls, &s)).await.expect("value");
            assert!(v.starts_with(&s), "{v} is {s}'s");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 10);
        assert_eq!(cache.len(), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn a_value_is_refreshed_ahead_of_expiry() {
        let cache = SubjectCache::new(10, AHEAD);
        let calls = Arc::new(AtomicUsize::new(0));
        let s = "a@example.com";
        let first = cache.get(s, counted(&calls, s)).await.expect("value");
        tokio::time::advance(HOUR - AHEAD - Duration::from_secs(1)).await;
        assert_eq!(
            cache.get(s, counted(&calls, s)).await.ok(),
            Some(first.clone())
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        tokio::time::advance(Duration::from_secs(2)).await;
        let second = cache.get(s, counted(&calls, s)).await.expect("value");
        assert_ne!(second, first, "refreshed before the hour ran out");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_refresh_ahead_serves_the_still_valid_value() {
        let cache = SubjectCache::new(10, AHEAD);
        let calls = Arc::new(AtomicUsize::new(0));
        let s = "a@example.com";
        let first = cache.get(s, counted(&calls, s)).await.expect("value");
        tokio::time::advance(HOUR - Duration::from_secs(60)).await;
        let failing = |_| std::future::ready(Err::<(String, Duration), _>("down".to_owned()));
        assert_eq!(cache.get(s, failing).await, Ok(first));
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(cache.get(s, failing).await, Err("down".to_owned()));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_of_one_subject_share_one_fetch() {
        let cache = Arc::new(SubjectCache::new(10, AHEAD));
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..50 {
            let (cache, calls) = (cache.clone(), calls.clone());
            // Two subjects: one fetch each, and neither waits for the other's.
            let s = if i % 2 == 0 { "slow@x" } else { "fast@x" };
            tasks.push(tokio::spawn(async move {
                let started = Instant::now();
                cache
                    .get(s, |g| async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        let pause = if s == "slow@x" { 10 } else { 1 };
                        tokio::time::sleep(Duration::from_secs(pause)).await;
                        Ok::<_, String>((format!("{s}#{g}"), HOUR))
                    })
                    .await
                    .map(|v| (s, v, started.elapsed()))
            }));
        }
        let mut seen = std::collections::HashSet::new();
        for t in tasks {
            let (s, v, waited) = t.await.expect("task").expect("value");
            seen.insert(v);
            if s == "fast@x" {
                assert!(waited < Duration::from_secs(10), "fast waited {waited:?}");
            }
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(seen.len(), 2, "{seen:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn invalidate_drops_only_that_subjects_stale_generation() {
        let cache = SubjectCache::new(10, AHEAD);
        let calls = Arc::new(AtomicUsize::new(0));
        let a = cache.get("a", counted(&calls, "a")).await.expect("a");
        let b = cache.get("b", counted(&calls, "b")).await.expect("b");
        let generation_of = |v: &str| -> u64 {
            v.rsplit('#')
                .next()
                .and_then(|g| g.parse().ok())
                .unwrap_or(0)
        };
        // N callers refused with a's token at once: one drop, one refresh.
        assert!(cache.invalidate("a", generation_of(&a)));
        for _ in 0..9 {
            assert!(!cache.invalidate("a", generation_of(&a)));
        }
        let a2 = cache.get("a", counted(&calls, "a")).await.expect("a");
        assert_ne!(a2, a);
        assert!(
            !cache.invalidate("a", generation_of(&a)),
            "the newer one stays"
        );
        for _ in 0..10 {
            assert_eq!(
                cache.get("a", counted(&calls, "a")).await.ok(),
                Some(a2.clone())
            );
        }
        assert_eq!(
            cache.get("b", counted(&calls, "b")).await.ok(),
            Some(b),
            "b untouched"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert!(!cache.invalidate("nobody", 1));
    }

    #[tokio::test(start_paused = true)]
    async fn the_least_recently_used_subject_goes_when_full() {
        let cache = SubjectCache::new(3, AHEAD);
        let calls = Arc::new(AtomicUsize::new(0));
        for s in ["a", "b", "c"] {
            cache.get(s, counted(&calls, s)).await.expect("value");
        }
        // a is used again, so b is the least recently used.
        cache.get("a", counted(&calls, "a")).await.expect("a");
        cache.get("d", counted(&calls, "d")).await.expect("d");
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.evictions(), 1);
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        cache.get("a", counted(&calls, "a")).await.expect("a");
        cache.get("c", counted(&calls, "c")).await.expect("c");
        assert_eq!(calls.load(Ordering::SeqCst), 4, "a and c were kept");
        cache.get("b", counted(&calls, "b")).await.expect("b");
        assert_eq!(calls.load(Ordering::SeqCst), 5, "b was evicted");
    }
}
