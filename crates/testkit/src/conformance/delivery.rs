//! Delivery: an event is applied once and acked, a duplicate is absorbed,
//! and transient failures end in one effect.

use std::time::{Duration, Instant};

use super::harness::Case;
use super::{Fault, Subject};
use crate::http_target::Reply;

/// One event, one effect, acked; no dead letter, nothing left.
pub async fn success_is_acked<S: Subject>() {
    let case = Case::<S>::start("success_is_acked").await;
    let tag = case.tag(0);
    case.publish(vec![case.event(&tag)]).await;
    let outcome = case.job().await;
    assert_eq!(
        case.effects(&tag).await,
        1,
        "one effect for one event\n{}",
        outcome.tail()
    );
    assert_eq!(outcome.count("acked"), 1, "acked\n{}", outcome.tail());
    case.assert_clean(&outcome);
}

/// The same event (same CloudEvents id and source) published again once
/// it was applied, as Pub/Sub's at-least-once delivery does: one effect,
/// the repeat acked as a duplicate without a call, no dead letter.
pub async fn duplicate_has_one_effect<S: Subject>() {
    let case = Case::<S>::start("duplicate_has_one_effect").await;
    let tag = case.tag(0);
    case.publish(vec![case.event(&tag)]).await;
    let worker = case.worker("job").await;
    let mut applied = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !applied && Instant::now() < deadline {
        applied = case.effects(&tag).await > 0;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        applied,
        "the first copy was applied\n{}",
        worker.logs().join("\n")
    );
    let calls = case.proxy.calls().len();
    case.publish(vec![case.event(&tag)]).await;
    let outcome = case.finish_job(worker).await;
    assert_eq!(
        case.effects(&tag).await,
        1,
        "the same event twice has one effect\n{}",
        outcome.tail()
    );
    assert_eq!(
        case.proxy.calls().len(),
        calls,
        "the repeat made no call\n{}",
        outcome.tail()
    );
    assert_eq!(outcome.count("acked"), 1, "{}", outcome.tail());
    assert_eq!(
        outcome.count("duplicates"),
        1,
        "the repeat acked as a duplicate\n{}",
        outcome.tail()
    );
    case.assert_clean(&outcome);
}

/// Two 503s, then the system answers: one effect, three calls, acked, no
/// dead letter.
pub async fn transient_then_success<S: Subject>() {
    let case = Case::<S>::start("transient_then_success").await;
    case.proxy.inject([
        Fault::Reply(Reply::status(503).body("unavailable (injected)")),
        Fault::Reply(Reply::status(503).body("unavailable (injected)")),
    ]);
    let tag = case.tag(0);
    case.publish(vec![case.event(&tag)]).await;
    let outcome = case.job().await;
    let calls = case.calls_of(&tag);
    assert_eq!(
        calls.iter().filter(|c| c.faulted).count(),
        2,
        "both 503s were served to this event's calls\n{}",
        outcome.tail()
    );
    assert_eq!(
        case.effects(&tag).await,
        1,
        "retried to one effect\n{}",
        outcome.tail()
    );
    assert_eq!(calls.len(), 3, "503, 503, then success: {calls:#?}");
    assert_eq!(outcome.count("acked"), 1, "acked\n{}", outcome.tail());
    case.assert_clean(&outcome);
}
