//! The target pushing back: `Retry-After` and a refused credential.

use std::time::Duration;

use super::harness::{Case, note};
use super::{Fault, Subject};
use crate::http_target::Reply;

/// How long the injected 429 asks the worker to wait.
const RETRY_AFTER: Duration = Duration::from_secs(2);

/// A 429 with `Retry-After: 2`: the next call comes no sooner than 2 s
/// after the refused one (by the proxy's arrival times), and the event has
/// one effect.
pub async fn retry_after_is_honoured<S: Subject>() {
    let case = Case::<S>::start("retry_after_is_honoured").await;
    case.proxy.inject([Fault::Reply(
        Reply::status(429)
            .header("retry-after", RETRY_AFTER.as_secs().to_string())
            .body("slow down (injected)"),
    )]);
    let tag = case.tag(0);
    case.publish(vec![case.event(&tag)]).await;
    let outcome = case.job().await;
    let calls = case.calls_of(&tag);
    assert_eq!(calls.len(), 2, "429, then one more call: {calls:#?}");
    assert!(calls[0].faulted, "the first call got the 429");
    let waited = calls[1].request.at.duration_since(calls[0].request.at);
    assert!(
        waited >= RETRY_AFTER,
        "the retry came {waited:?} after a Retry-After of {RETRY_AFTER:?}"
    );
    assert_eq!(
        case.effects(&tag).await,
        1,
        "one effect\n{}",
        outcome.tail()
    );
    case.assert_clean(&outcome);
}

/// A 401: the credential is fetched again once and the call retried once;
/// one effect, acked.
pub async fn unauthorized_refreshes_once<S: Subject>() {
    let case = Case::<S>::start("unauthorized_refreshes_once").await;
    case.proxy.inject([Fault::Reply(
        Reply::status(401).body("credential refused (injected)"),
    )]);
    let tag = case.tag(0);
    case.publish(vec![case.event(&tag)]).await;
    let outcome = case.job().await;
    let calls = case.calls_of(&tag);
    assert_eq!(calls.len(), 2, "401, then one retry: {calls:#?}");
    assert!(calls[0].faulted, "the first call got the 401");
    assert_eq!(
        case.effects(&tag).await,
        1,
        "one effect\n{}",
        outcome.tail()
    );
    match case.subject.refreshes() {
        Some(fetched) => assert_eq!(
            fetched,
            2,
            "the first credential and exactly one refresh after the 401\n{}",
            outcome.tail()
        ),
        None => note(
            S::CONNECTOR,
            case.name,
            "SKIPPED in part: refresh count not observable (no token endpoint); the one retry was checked",
        ),
    }
    assert_eq!(outcome.count("acked"), 1, "acked\n{}", outcome.tail());
    case.assert_clean(&outcome);
}
