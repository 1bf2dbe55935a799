//! Failures that end a delivery: a permanent refusal, and a call that never
//! comes back.

use std::time::Duration;

use super::harness::{Case, ROUTE, reasons};
use super::{Fault, Subject};
use crate::http_target::Reply;

/// Every reason the runtime attaches to a dead letter of a refused call
/// (docs/DEAD-LETTERS.md).
const REASONS: [&str; 10] = [
    "error-class",
    "error",
    "http-status",
    "connector",
    "route",
    "attempts",
    "delivery-attempt",
    "original-message-id",
    "original-subscription",
    "failed-at",
];

/// A 400: no retry, no effect, the message on the dead-letter topic with
/// its data unchanged and every `gluefleet-*` reason filled in.
pub async fn permanent_is_dead_lettered_with_every_reason<S: Subject>() {
    let case = Case::<S>::start("permanent_is_dead_lettered_with_every_reason").await;
    case.proxy.inject([Fault::Reply(
        Reply::status(400).body(r#"{"error":"refused by the conformance suite"}"#),
    )]);
    let tag = case.tag(0);
    let event = case.event(&tag);
    let ids = case.publish(vec![event.clone()]).await;
    let outcome = case.job().await;
    assert_eq!(outcome.dead.len(), 1, "one dead letter\n{}", outcome.tail());
    let dead = &outcome.dead[0];
    let got = reasons(dead);
    for reason in REASONS {
        assert!(
            got.get(reason).is_some_and(|v| !v.is_empty()),
            "gluefleet-{reason} is set: {got:#?}"
        );
    }
    let expect = [
        ("error-class", "permanent".to_owned()),
        ("http-status", "400".to_owned()),
        ("connector", S::CONNECTOR.to_owned()),
        ("route", ROUTE.to_owned()),
        ("attempts", "1".to_owned()),
        ("delivery-attempt", "1".to_owned()),
        ("original-message-id", ids[0].clone()),
        ("original-subscription", case.subscription_path()),
    ];
    for (reason, value) in expect {
        assert_eq!(
            got.get(reason),
            Some(&value),
            "gluefleet-{reason}: {got:#?}"
        );
    }
    assert!(
        got.get("failed-at").is_some_and(|t| is_rfc3339_utc(t)),
        "gluefleet-failed-at is an RFC 3339 UTC time: {got:#?}"
    );
    assert_eq!(dead.data, event.data, "the original data, byte for byte");
    assert_eq!(
        case.calls_of(&tag).len(),
        1,
        "a permanent failure is not retried"
    );
    assert_eq!(case.effects(&tag).await, 0, "no effect");
    assert_eq!(outcome.count("dead_lettered"), 1, "{}", outcome.tail());
    assert!(outcome.left.is_empty(), "acked once dead-lettered");
}

/// The first call hangs twice the route's timeout. The worker must
/// give it up before it calls again: no two calls of the event are open at
/// the system at once (by the proxy's times). The event then has one
/// effect and is acked, or, for an operation that is not idempotent, is
/// dead-lettered as `outcome-unknown` with no effect; never two.
pub async fn timeout_has_no_concurrent_duplicate<S: Subject>() {
    let case = Case::<S>::start("timeout_has_no_concurrent_duplicate").await;
    let hang = S::ROUTE_TIMEOUT * 2;
    case.proxy.inject([Fault::Hang(hang)]);
    let tag = case.tag(0);
    case.publish(vec![case.event(&tag)]).await;
    let outcome = case.job().await;
    let calls = case.calls_of(&tag);
    assert!(
        !calls.is_empty(),
        "the event was called\n{}",
        outcome.tail()
    );
    assert!(calls[0].faulted, "the first call hung: {calls:#?}");
    for pair in calls.windows(2) {
        let released = pair[0].released.expect("an earlier call was released");
        assert!(
            pair[1].request.at >= released,
            "a call arrived {:?} before the previous one of the same event was given up: {calls:#?}",
            released.duration_since(pair[1].request.at)
        );
    }
    let held = calls[0]
        .released
        .map(|r| r.duration_since(calls[0].request.at));
    assert!(
        held.is_some_and(|h| h < hang - Duration::from_millis(200)),
        "the worker gave up the hung call (held {held:?}) instead of waiting it out"
    );
    let effects = case.effects(&tag).await;
    match outcome.dead.first() {
        None => {
            assert_eq!(effects, 1, "retried to one effect\n{}", outcome.tail());
            assert_eq!(outcome.count("acked"), 1, "acked\n{}", outcome.tail());
        }
        Some(dead) => {
            assert_eq!(
                reasons(dead).get("error-class").map(String::as_str),
                Some("outcome-unknown"),
                "only an unknown outcome may end in a dead letter here\n{}",
                outcome.tail()
            );
            assert_eq!(effects, 0, "the hung call never reached the system");
        }
    }
    assert!(outcome.left.is_empty(), "nothing left\n{}", outcome.tail());
}

/// `YYYY-MM-DDTHH:MM:SS[.fff]Z`, as the runtime writes `gluefleet-failed-at`.
fn is_rfc3339_utc(t: &str) -> bool {
    let b = t.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && t.ends_with('Z')
}
