//! A 429 storm with `Retry-After`.
//!
//! What the worker does (crates/core/src/retry/policy.rs, pipeline.rs): a 429
//! is rate-limited, per event, not a global pause. The event's task waits
//! `Retry-After`, capped at `max_retry_after`, and calls again, while other
//! events go on; once `max_attempts` calls are spent, or the wait does not
//! fit what is left of the retry budget, the message is nacked with that
//! wait as its delay (held, then nacked), so even the redelivery comes no
//! sooner. So, from the target's log, per idempotency key: after a 429 with
//! `Retry-After: N` at time t, no call for that key before t + min(N, cap).
//!
//! The storm: for 6 s every request gets `429 Retry-After: 2`, long enough
//! for events to spend all 3 attempts and be nacked with a 2 s delay. Ten
//! events get `429 Retry-After: 3600` on their first call, which the 3 s
//! cap must cut to 3 s: their next call comes 3 s later, not an hour.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use gluefleet_testkit::http_target::Reply;
use serde_json::Value;

use crate::harness::{self, Fleet, Setup, by_reason, logged, millis, secs, spread};

const EVENTS: usize = 1_000;
/// The storm starts once this many events have been applied…
const STORM_AT: usize = 200;
/// …and lasts this long.
const STORM_FOR: Duration = Duration::from_secs(6);
/// `Retry-After` during the storm, seconds.
const STORM_RETRY_AFTER: u64 = 2;
/// `Retry-After` of each capped event's first call, seconds.
const HUGE_RETRY_AFTER: u64 = 3_600;
/// `[delivery.retry] max_retry_after`.
const CAP: Duration = Duration::from_secs(3);
/// Order numbers that get the huge `Retry-After` on their first call.
const CAPPED_EVERY: usize = 100;
/// Clock slack: both timestamps come from this process's monotonic clock,
/// the worker's sleeps never end early, so only rounding is allowed for.
const SLACK: Duration = Duration::from_millis(5);
/// A capped wait ends within this much of the cap (an in-process retry,
/// not a redelivery).
const CAPPED_WITHIN: Duration = Duration::from_millis(1_500);

/// A 429 the target answered.
#[derive(Clone, Debug)]
struct Throttled {
    key: String,
    at: Instant,
    retry_after: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_per_event_and_capped_and_nothing_is_lost() {
    let _turn = harness::one_at_a_time().await;
    let mut setup = Setup::new("throttle");
    setup.pubsub = "concurrency = 64".into();
    setup.tables = format!(
        r#"
[delivery.retry]
max_attempts = 3
initial_backoff = "100ms"
max_backoff = "1s"
budget = "30s"
max_retry_after = "{}s"
"#,
        CAP.as_secs()
    );
    let mut fleet = Fleet::start(setup).await;
    // ~640 events/s, so the storm catches the run in the middle.
    fleet.target.set_delay(Duration::from_millis(100));

    let throttled: Arc<Mutex<Vec<Throttled>>> = Arc::default();
    let capped: BTreeSet<String> = (0..EVENTS)
        .filter(|i| i % CAPPED_EVERY == CAPPED_EVERY / 2)
        .map(|i| fleet.order(i).key)
        .collect();
    // First rule: each capped event's first call gets the huge Retry-After.
    let seen: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let (log, first_calls) = (throttled.clone(), capped.clone());
    fleet.target.rule(move |r| {
        let key = r.idempotency_key()?.to_owned();
        let first = first_calls.contains(&key)
            && seen
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(key.clone());
        first.then(|| {
            record(&log, key, r.at, HUGE_RETRY_AFTER);
            Reply::status(429).header("Retry-After", HUGE_RETRY_AFTER.to_string())
        })
    });
    // Second rule: the storm.
    let storm: Arc<Mutex<Option<(Instant, Instant)>>> = Arc::default();
    let (log, window) = (throttled.clone(), storm.clone());
    fleet.target.rule(move |r| {
        let now = r.at;
        let on = window
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|(from, to)| from <= now && now < to);
        let key = r.idempotency_key()?.to_owned();
        on.then(|| {
            record(&log, key, r.at, STORM_RETRY_AFTER);
            Reply::status(429).header("Retry-After", STORM_RETRY_AFTER.to_string())
        })
    });

    let expected = fleet.publish_new_orders(EVENTS).await;
    let mut worker = fleet.worker(&["run"]).await;
    fleet
        .assert_applied_at_least(
            STORM_AT,
            Duration::from_secs(60),
            "before the storm",
            &worker,
        )
        .await;
    let storm_from = Instant::now();
    *storm.lock().unwrap_or_else(PoisonError::into_inner) =
        Some((storm_from, storm_from + STORM_FOR));
    let applied_before_storm = fleet.target.applied().len();

    fleet
        .assert_all_applied(
            &expected,
            Duration::from_secs(120),
            " after the storm",
            &worker,
        )
        .await;
    fleet.settle_and_stop(&mut worker).await;

    // The request log, per key, in arrival order.
    let requests = fleet.target.requests();
    let mut calls: BTreeMap<&str, Vec<Instant>> = BTreeMap::new();
    for r in &requests {
        if let Some(key) = r.idempotency_key() {
            calls.entry(key).or_default().push(r.at);
        }
    }
    let throttled = throttled
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let storm_429s = throttled
        .iter()
        .filter(|t| t.retry_after == STORM_RETRY_AFTER)
        .count();
    assert!(
        storm_429s > 0,
        "the storm caught events in the middle of the run"
    );
    assert_eq!(
        throttled
            .iter()
            .filter(|t| t.retry_after == HUGE_RETRY_AFTER)
            .count(),
        capped.len(),
        "each capped event got its huge Retry-After once"
    );

    // No call for a key before its Retry-After (capped) has passed.
    let mut storm_waits = Vec::new();
    let mut capped_waits = Vec::new();
    let mut others_during_capped = 0;
    for t in &throttled {
        let must_wait = Duration::from_secs(t.retry_after).min(CAP);
        let next = calls
            .get(t.key.as_str())
            .and_then(|at| at.iter().find(|a| **a > t.at))
            .unwrap_or_else(|| panic!("{}: called again after its 429", t.key));
        let waited = next.duration_since(t.at);
        assert!(
            waited + SLACK >= must_wait,
            "{}: called again {} after a 429 with Retry-After {} (capped to {})",
            t.key,
            millis(waited),
            t.retry_after,
            millis(must_wait)
        );
        if t.retry_after == HUGE_RETRY_AFTER {
            assert!(
                waited <= CAP + CAPPED_WITHIN,
                "{}: Retry-After {} is capped at {}: called again after {}",
                t.key,
                t.retry_after,
                millis(CAP),
                millis(waited)
            );
            capped_waits.push(waited);
            others_during_capped += requests
                .iter()
                .filter(|r| r.at > t.at && r.at < *next)
                .filter(|r| r.idempotency_key() != Some(t.key.as_str()))
                .count();
        } else {
            storm_waits.push(waited);
        }
    }
    // A 429 holds back its own event, not the worker.
    assert!(
        others_during_capped > 0,
        "other events were called while capped events waited"
    );
    // Events that spent their attempts in the storm were nacked with the
    // Retry-After as their delay.
    let nacks = logged(&worker, "Nacked with a delay.");
    let rate_limited_nacks: Vec<&Value> = nacks
        .iter()
        .filter(|n| n.get("reason").and_then(Value::as_str) == Some("rate-limited"))
        .collect();
    assert!(
        !rate_limited_nacks.is_empty(),
        "3 attempts in a 6 s storm end in delayed nacks"
    );
    let nack_delays: BTreeSet<u64> = rate_limited_nacks
        .iter()
        .filter_map(|n| n.get("delay_ms").and_then(Value::as_u64))
        .collect();
    assert_eq!(
        nack_delays,
        BTreeSet::from([STORM_RETRY_AFTER * 1_000]),
        "a rate-limited nack is delayed by the Retry-After"
    );

    fleet.assert_nothing_left().await;
    let tally = fleet.assert_clean_end(&expected, &worker).await;
    assert_eq!(
        tally.replays, 0,
        "one process: its own idempotency store answers duplicates"
    );
    let keys_throttled: BTreeSet<&str> = throttled.iter().map(|t| t.key.as_str()).collect();
    fleet.report(
        &tally,
        0,
        &[
            ("applied_before_storm", applied_before_storm.to_string()),
            ("storm", secs(STORM_FOR)),
            ("answered_429", throttled.len().to_string()),
            ("events_throttled", keys_throttled.len().to_string()),
            (
                "wait_after_retry_after_2s(min/median/max)",
                spread(storm_waits),
            ),
            ("capped_events", capped.len().to_string()),
            (
                "wait_after_retry_after_3600s_capped_3s(min/median/max)",
                spread(capped_waits),
            ),
            (
                "calls_by_others_during_capped_waits",
                others_during_capped.to_string(),
            ),
            ("delayed_nacks", format!("{:?}", by_reason(&nacks))),
        ],
    );
}

fn record(log: &Mutex<Vec<Throttled>>, key: String, at: Instant, retry_after: u64) {
    log.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Throttled {
            key,
            at,
            retry_after,
        });
}
