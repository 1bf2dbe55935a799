//! Rate limits per target, shared by every task of the process.
//!
//! A bucket is a `governor` GCRA limiter; with a `key` template it is keyed
//! (one quota per tenant or user, for vendors that meter that way). Callers
//! wait, never drop. The limiter sits inside the retry loop, so retries spend
//! quota too: a vendor counts them, so must we.
//!
//! Limits are per process. With N Cloud Run instances, give each bucket the
//! vendor's quota divided by N (`max-instances`); see deploy/README.md.
//!
//! A keyed bucket keeps one state per key it has seen. A key whose state is
//! indistinguishable from a fresh one (its cells have all refilled) carries no
//! information, so it is evicted: a sweep runs whenever the number of keys has
//! doubled since the last one (and at least [`SWEEP_FLOOR`] keys are held), so
//! memory follows the keys active within one refill window, not every key ever
//! seen, and the sweeps cost O(1) per new key amortised.

use crate::event::Event;
use crate::template::Template;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// A bucket as configured in `[rate_limits.NAME]`.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Requests allowed per `per`.
    pub requests: u32,
    /// The period (default 1 s).
    #[serde(default = "one_second", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub per: Duration,
    /// Requests that may go at once after a quiet spell (default 1: smooth).
    #[serde(default)]
    pub burst: Option<u32>,
}

fn one_second() -> Duration {
    Duration::from_secs(1)
}

/// A route's use of a bucket: `rate_limit = { bucket = "crm", key = "{data.tenant}" }`.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateLimitRef {
    /// Name of a `[rate_limits.NAME]` bucket.
    pub bucket: String,
    /// Template of the key within the bucket (default: one shared key).
    #[serde(default)]
    pub key: Option<Template>,
}

/// Keys a keyed bucket may hold before its first sweep.
pub const SWEEP_FLOOR: usize = 1024;

#[derive(Debug)]
struct Bucket {
    limiter: DefaultKeyedRateLimiter<String>,
    /// Sweep once the bucket holds this many keys.
    sweep_at: AtomicUsize,
    /// Idle keys evicted so far.
    evicted: AtomicU64,
    /// Acquires since the key count was last looked at.
    ticks: AtomicU64,
}

/// The key count is looked at once every this many acquires: counting the
/// keys walks every shard of the map, too much to do on each call, and the
/// map can outgrow the sweep bar by at most this many keys meanwhile.
const SWEEP_CHECK_EVERY: u64 = 64;

impl Bucket {
    /// Evicts idle keys once the key count has doubled since the last sweep.
    fn maybe_sweep(&self) {
        if !self
            .ticks
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(SWEEP_CHECK_EVERY)
        {
            return;
        }
        let len = self.limiter.len();
        if len < self.sweep_at.load(Ordering::Relaxed) {
            return;
        }
        // One task sweeps; the others go on (the bar is raised first).
        let bar = self.sweep_at.load(Ordering::Relaxed);
        if self
            .sweep_at
            .compare_exchange(bar, usize::MAX, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
        let kept = self.limiter.len();
        self.evicted
            .fetch_add(len.saturating_sub(kept) as u64, Ordering::Relaxed);
        self.sweep_at
            .store(kept.saturating_mul(2).max(SWEEP_FLOOR), Ordering::Release);
    }
}

/// All buckets of a connector.
#[derive(Clone, Debug, Default)]
pub struct RateLimits {
    buckets: Arc<BTreeMap<String, Bucket>>,
    clock: DefaultClock,
}

/// Waits a pause that a vendor's own usage signal calls for (Salesforce's
/// `Sforce-Limit-Info` above the soft share, say). The connector decides how
/// long; the waiting is the core's, like every other wait.
pub async fn pace(pause: Duration) {
    tokio::time::sleep(pause).await;
}

/// The longest window a bucket may describe (`per`, and `burst` periods).
const MAX_WINDOW: Duration = Duration::from_secs(366 * 24 * 3600);

/// The limiter says: not before this long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MustWait(pub Duration);

impl RateLimits {
    /// Builds the buckets; errors name the bucket.
    pub fn new(
        config: &BTreeMap<String, RateLimitConfig>,
    ) -> Result<Self, crate::config::ConfigError> {
        let mut buckets = BTreeMap::new();
        for (name, c) in config {
            let requests = NonZeroU32::new(c.requests)
                .ok_or_else(|| format!("rate_limits.{name}.requests must be at least 1"))?;
            let burst = NonZeroU32::new(c.burst.unwrap_or(1))
                .ok_or_else(|| format!("rate_limits.{name}.burst must be at least 1"))?;
            if c.per > MAX_WINDOW {
                return Err(format!(
                    "rate_limits.{name}.per is {}: at most 366 days",
                    humantime::format_duration(c.per)
                )
                .into());
            }
            let period = c.per / requests.get();
            // The bucket refills `burst` cells over `burst` periods; beyond a
            // year that is a mistake, and the limiter's arithmetic overflows.
            if period
                .checked_mul(burst.get())
                .is_none_or(|w| w > MAX_WINDOW)
            {
                return Err(format!(
                    "rate_limits.{name}.burst {burst} is too big for {} requests per {}: \
                     burst × per / requests must be at most 366 days",
                    requests,
                    humantime::format_duration(c.per)
                )
                .into());
            }
            let quota = Quota::with_period(period)
                .ok_or_else(|| format!("rate_limits.{name}.per must be more than zero"))?
                .allow_burst(burst);
            buckets.insert(
                name.clone(),
                Bucket {
                    limiter: DefaultKeyedRateLimiter::keyed(quota),
                    sweep_at: AtomicUsize::new(SWEEP_FLOOR),
                    evicted: AtomicU64::new(0),
                    ticks: AtomicU64::new(0),
                },
            );
        }
        Ok(Self {
            buckets: Arc::new(buckets),
            clock: DefaultClock::default(),
        })
    }

    /// Checks that a route's reference names a configured bucket.
    pub fn check_ref(&self, r: &RateLimitRef) -> Result<(), crate::config::ConfigError> {
        if !self.buckets.contains_key(&r.bucket) {
            return Err(format!(
                "rate_limit.bucket {:?} is not a [rate_limits.*] entry",
                r.bucket
            )
            .into());
        }
        Ok(())
    }

    /// Takes one cell from the bucket, or says how long to wait for it.
    /// An unknown bucket (checked at load) or an unrenderable key never blocks.
    pub fn try_acquire(&self, r: &RateLimitRef, event: &Event) -> Result<(), MustWait> {
        let Some(bucket) = self.buckets.get(&r.bucket) else {
            return Ok(());
        };
        let key = r
            .key
            .as_ref()
            .and_then(|t| t.render(event).ok())
            .unwrap_or_default();
        let result = match bucket.limiter.check_key(&key) {
            Ok(()) => Ok(()),
            Err(not_until) => Err(MustWait(not_until.wait_time_from(self.clock.now()))),
        };
        if r.key.is_some() {
            bucket.maybe_sweep();
        }
        result
    }

    /// Keys a bucket holds now, and idle keys it has evicted so far.
    pub fn keys(&self, bucket: &str) -> Option<(usize, u64)> {
        self.buckets
            .get(bucket)
            .map(|b| (b.limiter.len(), b.evicted.load(Ordering::Relaxed)))
    }

    /// Idle keys evicted from every bucket so far (for the summary).
    pub fn evicted_keys(&self) -> u64 {
        self.buckets
            .values()
            .map(|b| b.evicted.load(Ordering::Relaxed))
            .sum()
    }

    /// Waits for a cell as long as it takes, up to `max_wait`, and says how
    /// long it waited; beyond that returns how long the caller would have
    /// had to wait.
    pub async fn acquire(
        &self,
        r: &RateLimitRef,
        event: &Event,
        max_wait: Duration,
    ) -> Result<Duration, MustWait> {
        let mut waited = Duration::ZERO;
        loop {
            match self.try_acquire(r, event) {
                Ok(()) => return Ok(waited),
                Err(MustWait(w)) if waited + w > max_wait => return Err(MustWait(w)),
                Err(MustWait(w)) => {
                    // A little jitter, so that many waiters do not wake as one.
                    let w = w + crate::retry::backoff::full_jitter(w / 8);
                    tokio::time::sleep(w).await;
                    waited += w;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{RawMessage, decode};

    fn event(tenant: &str) -> Event {
        let raw = RawMessage {
            data: format!(r#"{{"type":"t","data":{{"tenant":"{tenant}"}}}}"#).into_bytes(),
            ..RawMessage::default()
        };
        decode(&raw).expect("decodes")
    }

    fn limits(requests: u32, per: Duration) -> RateLimits {
        let cfg = BTreeMap::from([(
            "crm".to_owned(),
            RateLimitConfig {
                requests,
                per,
                burst: None,
            },
        )]);
        RateLimits::new(&cfg).expect("valid")
    }

    #[test]
    fn windows_beyond_a_year_are_refused_naming_the_bucket() {
        let one = |requests, per, burst| {
            let cfg = BTreeMap::from([(
                "erp".to_owned(),
                RateLimitConfig {
                    requests,
                    per,
                    burst,
                },
            )]);
            RateLimits::new(&cfg).err()
        };
        let year = Duration::from_secs(365 * 24 * 3600);
        assert_eq!(one(1, year, None), None, "a yearly quota is fine");
        let e = one(1, year * 1000, None).expect("1000 years refused");
        assert!(e.message().contains("rate_limits.erp.per"), "{e}");
        let e = one(1, Duration::from_secs(10), Some(4_000_000_000)).expect("huge burst refused");
        assert!(e.message().contains("rate_limits.erp.burst"), "{e}");
        assert_eq!(one(10, Duration::from_secs(1), Some(10)), None);
    }

    #[test]
    fn keyed_buckets_are_independent() {
        let l = limits(1, Duration::from_secs(60));
        let r = RateLimitRef {
            bucket: "crm".into(),
            key: Some(Template::parse("{data.tenant}").expect("valid")),
        };
        assert_eq!(l.try_acquire(&r, &event("a")), Ok(()));
        assert_eq!(l.try_acquire(&r, &event("b")), Ok(()));
        let again = l.try_acquire(&r, &event("a"));
        assert!(
            matches!(again, Err(MustWait(w)) if w > Duration::from_secs(50)),
            "{again:?}"
        );
    }

    #[test]
    fn idle_keys_are_evicted_so_keyed_buckets_stay_bounded() {
        // 1,000 requests per second: a key refills 1 ms after its one cell.
        let l = limits(1000, Duration::from_secs(1));
        let r = RateLimitRef {
            bucket: "crm".into(),
            key: Some(Template::parse("{data.tenant}").expect("valid")),
        };
        let mut most = 0;
        for round in 0..20 {
            for i in 0..1000 {
                let e = event(&format!("user-{round}-{i}"));
                assert_eq!(l.try_acquire(&r, &e), Ok(()), "a new key has its cell");
                most = most.max(l.keys("crm").map_or(0, |(n, _)| n));
            }
            // Every key used so far is idle again well before the next round.
            std::thread::sleep(Duration::from_millis(5));
        }
        let (held, evicted) = l.keys("crm").expect("bucket");
        assert!(
            most <= 2 * SWEEP_FLOOR + 1000,
            "20,000 keys seen, at most {most} held at once"
        );
        assert!(
            held < 20_000 && evicted > 15_000,
            "held {held}, evicted {evicted}"
        );
        assert_eq!(l.evicted_keys(), evicted);
    }

    #[test]
    fn a_key_still_waiting_is_never_evicted() {
        // One request per minute: every key stays spent for the whole test.
        let l = limits(1, Duration::from_secs(60));
        let r = RateLimitRef {
            bucket: "crm".into(),
            key: Some(Template::parse("{data.tenant}").expect("valid")),
        };
        for i in 0..3 * SWEEP_FLOOR {
            assert_eq!(l.try_acquire(&r, &event(&format!("t{i}"))), Ok(()));
        }
        // Sweeps ran, yet nothing was idle: the first key must still wait.
        assert_eq!(l.keys("crm").map(|(_, e)| e), Some(0));
        assert!(l.try_acquire(&r, &event("t0")).is_err(), "quota kept");
    }

    #[tokio::test]
    async fn acquire_waits_then_gives_up_past_max_wait() {
        let l = limits(20, Duration::from_secs(1)); // one every 50 ms
        let r = RateLimitRef {
            bucket: "crm".into(),
            key: None,
        };
        let e = event("a");
        let start = std::time::Instant::now();
        let mut waited = Duration::ZERO;
        for _ in 0..3 {
            waited += l
                .acquire(&r, &e, Duration::from_secs(1))
                .await
                .expect("within a second");
        }
        assert!(
            start.elapsed() >= Duration::from_millis(90),
            "two waits of ~50 ms"
        );
        // What it says it waited is what it slept, jitter included.
        assert!(waited >= Duration::from_millis(90), "{waited:?}");
        assert!(waited <= start.elapsed(), "{waited:?}");
        let l = limits(1, Duration::from_secs(60));
        assert_eq!(l.acquire(&r, &e, Duration::ZERO).await, Ok(Duration::ZERO));
        assert!(l.acquire(&r, &e, Duration::from_millis(10)).await.is_err());
    }

    #[test]
    fn config_errors_name_the_bucket() {
        let cfg = BTreeMap::from([(
            "erp".to_owned(),
            RateLimitConfig {
                requests: 0,
                per: one_second(),
                burst: None,
            },
        )]);
        let err = RateLimits::new(&cfg).expect_err("zero requests");
        assert!(err.message().contains("rate_limits.erp.requests"), "{err}");
        let l = limits(1, one_second());
        assert!(
            l.check_ref(&RateLimitRef {
                bucket: "nope".into(),
                key: None
            })
            .is_err()
        );
    }
}
