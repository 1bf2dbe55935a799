//! SIGTERM under load: the worker exits within its drain timeout, with
//! status 0, and nothing is lost.
//!
//! What the worker does (crates/runtime/src/lib.rs `deliver`, worker.rs
//! `Engine::drain`): stop pulling, nack what waits for a permit or is held,
//! let calls in flight finish for the drain timeout minus 0.5 s, nack what
//! is still running, give the nacks 0.5 s, flush the stream within what is
//! left of the drain timeout (at least 0.5 s), exit 0. Here every call takes
//! 2.5 s and the drain timeout is 2 s, so calls that started less than 1 s
//! before SIGTERM are cut off: they reached the target (which applied them)
//! but the worker never saw the answer. A second worker then takes
//! everything that was handed back; the cut-off events come again with the
//! same idempotency key and the target answers them as replays.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{self, Fleet, Setup, logged, millis, secs, tail, terminate};

const EVENTS: usize = 800;
/// `--drain-timeout`.
const DRAIN: Duration = Duration::from_secs(2);
/// How long each call takes at the target while the first worker runs.
const CALL_TIME: Duration = Duration::from_millis(2_500);
/// Exit at most this long after the drain timeout: process exit, the last
/// log lines.
const EXIT_MARGIN: Duration = Duration::from_millis(1_000);
/// SIGTERM once this many calls have reached the target.
const LOAD: usize = 150;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_exits_within_the_drain_timeout_and_loses_nothing() {
    let _turn = harness::one_at_a_time().await;
    let mut setup = Setup::new("sigterm");
    setup.pubsub = "concurrency = 64".into();
    let mut fleet = Fleet::start(setup).await;
    fleet.target.set_delay(CALL_TIME);
    let expected = fleet.publish_new_orders(EVENTS).await;

    let drain = format!("{}ms", DRAIN.as_millis());
    let mut worker = fleet.worker(&["run", "--drain-timeout", &drain]).await;
    assert!(
        fleet
            .target
            .wait_for(|r| r.len() >= LOAD, Duration::from_secs(60))
            .await,
        "{LOAD} calls reached the target\n{}",
        tail(&worker)
    );
    let signalled = Instant::now();
    let in_flight = fleet
        .target
        .requests()
        .iter()
        .filter(|r| r.at + CALL_TIME > signalled)
        .count();
    assert!(in_flight > 0, "calls were in flight at SIGTERM");
    let applied_at_sigterm = fleet.target.applied().len();
    let (first_exit, took) = terminate(&mut worker, DRAIN + Duration::from_secs(10)).await;
    assert!(
        first_exit.success(),
        "exit status 0: {first_exit:?}\n{}",
        tail(&worker)
    );
    assert!(
        took <= DRAIN + EXIT_MARGIN,
        "exited {} after SIGTERM, drain timeout {}\n{}",
        millis(took),
        millis(DRAIN),
        tail(&worker)
    );
    let stopped = logged(&worker, "Stopped.");
    let stopped = stopped
        .first()
        .unwrap_or_else(|| panic!("the worker logged how it stopped\n{}", tail(&worker)));
    let field = |k: &str| stopped.get(k).cloned().unwrap_or(Value::Null);
    assert!(
        logged(&worker, "Stop signal received; draining.").len() == 1,
        "the worker drained on SIGTERM"
    );

    // A second worker takes what the first handed back (nacked at shutdown,
    // or back when its lease runs out), at full speed. The emulator keeps
    // leasing messages to the first worker's stream after it exited, 10 s
    // at a time (see kill9.rs): with 32 streams the second worker gets most
    // of every share.
    fleet.target.set_delay(Duration::from_millis(20));
    let mut again = fleet.worker_with("streams = 32", &["run"]).await;
    fleet
        .assert_all_applied(
            &expected,
            Duration::from_secs(120),
            " by the second worker",
            &again,
        )
        .await;
    // The calls cut off by the drain come back with their key.
    let cut_off_back = harness::until(Duration::from_secs(60), || {
        field("drained") == Value::Bool(true) || fleet.target.replays() > 0
    })
    .await;
    assert!(
        cut_off_back,
        "a call cut off by the drain came back as a replay"
    );
    fleet.settle_and_stop(&mut again).await;
    fleet.assert_nothing_left().await;
    let tally = fleet.assert_clean_end(&expected, &again).await;
    fleet.report(
        &tally,
        0,
        &[
            ("drain_timeout", secs(DRAIN)),
            ("call_time", secs(CALL_TIME)),
            ("calls_in_flight_at_sigterm", in_flight.to_string()),
            ("applied_at_sigterm", applied_at_sigterm.to_string()),
            ("exited_after", millis(took)),
            ("exit_status", status_text(first_exit)),
            ("drained", field("drained").to_string()),
            ("flushed", field("flushed").to_string()),
        ],
    );
}

fn status_text(status: std::process::ExitStatus) -> String {
    status
        .code()
        .map_or_else(|| format!("{status:?}"), |c| c.to_string())
}
