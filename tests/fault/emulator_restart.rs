//! The Pub/Sub emulator restarts in the middle of a run.
//!
//! A restart on the same port loses every topic, subscription and message,
//! as a regional outage with data loss would look to a worker. The test
//! creates them again and, as a publisher with an outbox would, republishes
//! every event whose effect the target has not seen. The worker is not
//! restarted: it must reopen its stream by itself (the Pub/Sub client
//! retries a broken stream; the worker's pull loop reopens one the client
//! gives up on, e.g. while the subscription does not exist yet) and deliver
//! the rest.
//! Events it already applied and that are
//! republished anyway (their ack was lost with the emulator) are recognised
//! by its own idempotency store, or by the target. Only half the events are
//! published before the restart (the emulator hands a stream everything it
//! has, whatever the stream's flow control says, so the worker may hold all
//! of them by then); the other half can only arrive through the reopened
//! stream.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::harness::{self, Fleet, Setup, keys, logged, running, secs, tail};

const EVENTS: usize = 2_000;
/// The emulator restarts once this many events have been applied.
const RESTART_AT: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_reconnects_by_itself_after_the_emulator_restarts() {
    let _turn = harness::one_at_a_time().await;
    let mut setup = Setup::new("pubsub-restart");
    setup.pubsub = "concurrency = 64".into();
    let mut fleet = Fleet::start(setup).await;
    // ~200 events/s: the restart lands in the middle of the first half,
    // with events the worker holds and has not applied yet.
    fleet.target.set_delay(Duration::from_millis(300));
    let orders = fleet.orders(EVENTS);
    let expected = keys(&orders);
    let (before, after) = orders.split_at(EVENTS / 2);
    fleet.publish_orders(before).await;

    let (mut worker, port) = fleet.worker_with_port(&["run"]).await;
    let pid = worker.pid().expect("the worker runs");
    fleet
        .assert_applied_at_least(
            RESTART_AT,
            Duration::from_secs(60),
            "before the restart",
            &worker,
        )
        .await;
    let restart_started = Instant::now();
    fleet
        .emulator
        .restart()
        .await
        .expect("the emulator restarts on the same port");
    fleet.create_pubsub().await;
    let back = Instant::now();
    let applied = fleet.target.applied();
    let republish: Vec<_> = before
        .iter()
        .filter(|o| !applied.contains_key(&o.key))
        .cloned()
        .collect();
    fleet.publish_orders(&republish).await;
    fleet.publish_orders(after).await;
    let new_keys: BTreeSet<String> = keys(after);

    fleet
        .assert_all_applied(
            &expected,
            Duration::from_secs(120),
            " after the emulator restart",
            &worker,
        )
        .await;
    assert!(
        running(&mut worker).await && worker.pid() == Some(pid),
        "the same worker process did it, without a restart\n{}",
        tail(&worker)
    );
    // The first event applied that was only published after the restart.
    let first_after = fleet
        .target
        .requests_with_replays()
        .iter()
        .filter(|(r, replayed)| r.at > back && (200..300).contains(&r.status) && !replayed)
        .filter(|(r, _)| r.idempotency_key().is_some_and(|k| new_keys.contains(k)))
        .map(|(r, _)| r.at)
        .min();
    let reconnected_in = first_after.map(|at| at.duration_since(back));
    // Reopening may happen inside the Pub/Sub client (a transient stream
    // error) or in the worker's pull loop (an error the client gives up on,
    // such as the subscription not existing yet): counted, not required.
    let reopened = logged(&worker, "Streaming pull failed; reopening.").len()
        + logged(&worker, "Streaming pull ended; reopening.").len();
    // /readyz turns 503 when the stream fails, and 200 again once a check
    // of the (re-created) subscription passes.
    let ready = harness::wait_ready(port, Duration::from_secs(30)).await;
    assert!(ready, "/readyz is 200 again after the restart");

    fleet.settle_and_stop(&mut worker).await;
    fleet.assert_nothing_left().await;
    let tally = fleet.assert_clean_end(&expected, &worker).await;
    fleet.report(
        &tally,
        0,
        &[
            ("applied_before_restart", applied.len().to_string()),
            ("emulator_down", secs(back - restart_started)),
            ("republished", republish.len().to_string()),
            ("published_after_restart", after.len().to_string()),
            ("stream_reopened_logs", reopened.to_string()),
            (
                "first_new_event_applied_after",
                reconnected_in.map_or_else(|| "-".to_owned(), secs),
            ),
            ("same_worker_pid", pid.to_string()),
        ],
    );
}
