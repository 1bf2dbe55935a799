//! `kill -9` the worker three times during a 5,000-event run, restarting it
//! each time.
//!
//! A killed worker never acks what it was doing: the messages it held come
//! back once their lease runs out, and those whose call had already reached
//! the target are sent again with the same idempotency key. The in-memory
//! idempotency store dies with the process, so it is the target's own
//! handling of the key that absorbs them: they must show up as replays,
//! never as second effects, and no event may be lost.
//!
//! **The emulator and dead streams.** The Pub/Sub emulator (0.8.20, in the
//! Google Cloud SDK here) never notices that a worker's streaming pull is
//! gone once the process has exited, killed or stopped cleanly: it keeps
//! handing that dead stream its share of every delivery, and each share
//! comes back only when its 10 s deadline runs out, to be shared out again
//! (the delivery attempt grows by one each time). Seen with REST pulls: on
//! a subscription no worker ever read, a fresh backlog comes at once; after
//! one worker ran and exited, 100 messages come and then nothing for 15 s,
//! and what a killed worker held trickles back 100 at a time, every 10 s,
//! for minutes. Real Pub/Sub ends a stream whose connection is gone. So the
//! killed workers open one stream each (one dead stream per kill) and the
//! last worker opens 32, the most the config allows, which gives it most of
//! every share: it gets everything within two or three 10 s rounds, where
//! with one stream it was seen to get nothing for minutes behind three dead
//! streams. For the same reason the subscription is not checked for
//! leftovers at the end: the dead streams keep re-leasing redeliveries of
//! events already applied.

use std::os::unix::process::ExitStatusExt as _;
use std::time::{Duration, Instant};

use crate::harness::{self, Fleet, Setup, tail};

const EVENTS: usize = 5_000;
/// The first kill: when this many events have been applied.
const FIRST_KILL_AT: usize = 1_000;
/// The later kills: when the restarted worker has applied this many more.
const KILL_AFTER: usize = 250;
/// Calls take this long at the target, so each kill cuts calls off.
const CALL_TIME: Duration = Duration::from_millis(100);
/// Streams of the last worker; see the module comment.
const LAST_WORKER_STREAMS: &str = "streams = 32";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_three_times_loses_nothing_and_applies_each_event_once() {
    let _turn = harness::one_at_a_time().await;
    let mut setup = Setup::new("kill9");
    setup.pubsub = "concurrency = 64".into();
    setup.tables = r#"
[delivery.retry]
initial_backoff = "100ms"
max_backoff = "1s"
"#
    .into();
    let mut fleet = Fleet::start(setup).await;
    fleet.target.set_delay(CALL_TIME);
    let expected = fleet.publish_new_orders(EVENTS).await;

    let mut worker = fleet.worker(&["run"]).await;
    let mut threshold = FIRST_KILL_AT;
    let mut applied_at_kill = Vec::new();
    let mut cut_off = Vec::new();
    let mut last_kill = Instant::now();
    for kill in 1..=3 {
        let reached = fleet
            .wait_applied_at_least(threshold, Duration::from_secs(120))
            .await;
        assert!(
            reached,
            "{threshold} events applied before kill {kill}\n{}",
            tail(&worker)
        );
        worker.kill_hard();
        last_kill = Instant::now();
        let status = worker
            .wait(Duration::from_secs(10))
            .await
            .expect("a SIGKILLed worker exits");
        assert_eq!(status.signal(), Some(9), "killed by SIGKILL: {status:?}");
        // Calls whose answer the dead worker never read.
        cut_off.push(
            fleet
                .target
                .requests()
                .iter()
                .filter(|r| r.at + CALL_TIME > last_kill)
                .count(),
        );
        let applied = fleet.target.applied().len();
        applied_at_kill.push(applied);
        threshold = applied + KILL_AFTER;
        worker = if kill < 3 {
            fleet.worker(&["run"]).await
        } else {
            fleet.worker_with(LAST_WORKER_STREAMS, &["run"]).await
        };
    }
    assert!(
        cut_off.iter().all(|n| *n > 0),
        "every kill cut calls off: {cut_off:?}"
    );

    fleet
        .assert_all_applied(
            &expected,
            Duration::from_secs(150),
            " after three kills",
            &worker,
        )
        .await;
    let recovered_in = last_kill.elapsed();
    // The calls the kills cut off had reached the target; their messages
    // come back, with the same key, and the target answers them as replays.
    let replayed = harness::until(Duration::from_secs(60), || fleet.target.replays() > 0).await;
    assert!(
        replayed,
        "a redelivered cut-off call reached the target as a replay"
    );
    fleet.settle_and_stop(&mut worker).await;
    let tally = fleet.assert_clean_end(&expected, &worker).await;
    fleet.report(
        &tally,
        0,
        &[
            ("kills", "3".to_owned()),
            ("applied_at_kills", format!("{applied_at_kill:?}")),
            ("calls_cut_off", format!("{cut_off:?}")),
            ("all_applied_after_last_kill", harness::secs(recovered_in)),
        ],
    );
}
