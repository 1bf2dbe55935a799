//! Shutdown: SIGTERM while calls are in flight loses nothing.

use std::time::Duration;

use super::Subject;
use super::harness::Case;

/// Events published in the SIGTERM case.
const EVENTS: usize = 8;

/// Eight events reach a slow system (every call held 1 s); SIGTERM once
/// the first call is in flight. The worker exits 0 after its drain; a
/// second worker then finishes the rest (waiting out ack deadlines). Every event has exactly one
/// effect, none is dead-lettered, nothing is left on the subscription.
pub async fn sigterm_mid_batch_loses_nothing<S: Subject>() {
    let case = Case::<S>::start("sigterm_mid_batch_loses_nothing").await;
    case.proxy.set_delay(Duration::from_secs(1));
    let tags: Vec<String> = (0..EVENTS).map(|i| case.tag(i)).collect();
    case.publish(tags.iter().map(|t| case.event(t)).collect())
        .await;
    let mut worker = case.worker("run").await;
    let busy = case
        .until(Duration::from_secs(60), |c| !c.proxy.calls().is_empty())
        .await;
    assert!(
        busy,
        "a call reached the system\n{}",
        worker.logs().join("\n")
    );
    worker.signal_term();
    let status = worker.wait(Duration::from_secs(20)).await;
    let logs = worker.logs();
    let status = status.unwrap_or_else(|| panic!("exits after SIGTERM\n{}", logs.join("\n")));
    assert!(
        status.success(),
        "exit 0 after the drain: {status:?}\n{}",
        logs.join("\n")
    );
    let in_flight = case.proxy.calls().len();

    case.proxy.set_delay(Duration::ZERO);
    // A `run` worker rather than a job: a message the emulator had already
    // pushed to the stopping worker's stream comes back only after its ack
    // deadline (10 s), later than a job's idle exit.
    let mut again = case.worker("run").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(45);
    let mut missing = tags.clone();
    while !missing.is_empty() && tokio::time::Instant::now() < deadline {
        let mut still = Vec::new();
        for tag in missing {
            if case.effects(&tag).await == 0 {
                still.push(tag);
            }
        }
        missing = still;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Let a late repeat, if any, show before counting.
    tokio::time::sleep(Duration::from_secs(1)).await;
    again.signal_term();
    let status = again.wait(Duration::from_secs(20)).await;
    let outcome = case.outcome(serde_json::json!({}), again.logs()).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "the second worker exits 0: {status:?}\n{}",
        outcome.tail()
    );
    assert!(
        missing.is_empty(),
        "events lost across the SIGTERM ({in_flight} calls before it): {missing:?}\n{}",
        outcome.tail()
    );
    for tag in &tags {
        assert_eq!(
            case.effects(tag).await,
            1,
            "{tag}: one effect across the SIGTERM\n{}",
            outcome.tail()
        );
    }
    case.assert_clean(&outcome);
}
