//! The target goes down for 30 s in the middle of a run: first nothing
//! listens (connection refused), then it answers 503. The worker must keep
//! retrying with backoff and delayed nacks, not exit, not dead-letter
//! anything (a 30 s outage is far from `max_delivery_attempts`), and
//! deliver every event once the target is back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gluefleet_testkit::http_target::Reply;

use crate::harness::{self, Fleet, Setup, by_reason, logged, running, secs, tail};

const EVENTS: usize = 2_000;
/// The outage starts once this many events have been applied.
const OUTAGE_AT: usize = 400;
/// Nothing listens for this long…
const REFUSED_FOR: Duration = Duration::from_secs(15);
/// …then every request is answered 503 for this long.
const UNAVAILABLE_FOR: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_30_s_outage_delays_events_but_loses_none() {
    let _turn = harness::one_at_a_time().await;
    let mut setup = Setup::new("outage");
    setup.pubsub = "concurrency = 64".into();
    // Per delivery: up to 10 calls with backoff doubling from 200 ms to 4 s,
    // within 20 s; then a delayed nack of 4 s. So a message sees 2 or 3
    // deliveries during the outage, far below the 10 of the dead-letter
    // policy.
    setup.tables = r#"
[delivery.retry]
max_attempts = 10
initial_backoff = "200ms"
max_backoff = "4s"
budget = "20s"
"#
    .into();
    let mut fleet = Fleet::start(setup).await;
    fleet.target.set_delay(Duration::from_millis(50));
    let unavailable = Arc::new(AtomicBool::new(false));
    let down = unavailable.clone();
    fleet.target.rule(move |_| {
        down.load(Ordering::SeqCst)
            .then(|| Reply::status(503).body("down for maintenance"))
    });
    let expected = fleet.publish_new_orders(EVENTS).await;

    let mut worker = fleet.worker(&["run"]).await;
    fleet
        .assert_applied_at_least(
            OUTAGE_AT,
            Duration::from_secs(60),
            "before the outage",
            &worker,
        )
        .await;

    // Down: connection refused.
    let outage_started = Instant::now();
    fleet.target.stop();
    let applied_before = fleet.target.applied().len();
    tokio::time::sleep(REFUSED_FOR).await;
    // Back, but answering 503.
    unavailable.store(true, Ordering::SeqCst);
    fleet
        .target
        .restart()
        .await
        .expect("the target listens again");
    tokio::time::sleep(UNAVAILABLE_FOR).await;
    unavailable.store(false, Ordering::SeqCst);
    let outage_ended = Instant::now();
    assert!(
        running(&mut worker).await,
        "the worker keeps running through the outage\n{}",
        tail(&worker)
    );
    let answered_503 = fleet
        .target
        .requests()
        .iter()
        .filter(|r| r.status == 503)
        .count();
    assert!(
        answered_503 > 0,
        "the worker kept trying while the target answered 503"
    );
    assert!(
        applied_before < EVENTS,
        "the outage started in the middle of the run"
    );

    fleet
        .assert_all_applied(
            &expected,
            Duration::from_secs(120),
            " after the outage",
            &worker,
        )
        .await;
    let last_first_apply = fleet
        .target
        .requests_with_replays()
        .iter()
        .filter(|(r, replayed)| (200..300).contains(&r.status) && !replayed)
        .map(|(r, _)| r.at)
        .max()
        .expect("something was applied");
    let recovered_in = last_first_apply.saturating_duration_since(outage_ended);
    fleet.settle_and_stop(&mut worker).await;
    fleet.assert_nothing_left().await;
    let dead = fleet.dead_letters().await;
    assert!(
        dead.is_empty(),
        "a 30 s outage dead-letters nothing: {:?}",
        dead.iter().map(|d| &d.attributes).collect::<Vec<_>>()
    );
    let nacks = logged(&worker, "Nacked with a delay.");
    let tally = fleet.tally(&expected);
    tally.assert_exactly_once(&tail(&worker));
    fleet.report(
        &tally,
        dead.len(),
        &[
            ("applied_before_outage", applied_before.to_string()),
            ("refused_for", secs(REFUSED_FOR)),
            ("unavailable_for", secs(UNAVAILABLE_FOR)),
            ("answered_503", answered_503.to_string()),
            ("delayed_nacks", format!("{:?}", by_reason(&nacks))),
            ("outage", secs(outage_ended - outage_started)),
            ("all_applied_after_outage", secs(recovered_in)),
        ],
    );
}
