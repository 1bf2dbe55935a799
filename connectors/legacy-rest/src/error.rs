//! Classifying a REST answer: the shared status table, plus what a route
//! says is success or already done.

use gluefleet_core::ConnectorError;
use gluefleet_core::classify::{class_of_reqwest_error, parse_retry_after};
use gluefleet_core::error::ErrorClass;
use std::time::SystemTime;

/// What a status means for a route.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The effect is done.
    Success,
    /// The target already had it.
    AlreadyDone,
    /// A failure, to classify with the shared table.
    Failure,
}

/// Decides what `status` means given the route's lists.
pub fn verdict(status: u16, success: &[u16], already_done: &[u16]) -> Verdict {
    if already_done.contains(&status) {
        Verdict::AlreadyDone
    } else if (success.is_empty() && (200..300).contains(&status)) || success.contains(&status) {
        Verdict::Success
    } else {
        Verdict::Failure
    }
}

/// A failed answer: status, a snippet of the body (what the API said), and
/// `Retry-After` for throttling and 503s.
pub fn from_response(
    status: u16,
    retry_after: Option<&str>,
    body: &str,
    what: &str,
) -> ConnectorError {
    let retry_after = retry_after.and_then(|v| parse_retry_after(v, SystemTime::now()));
    let snippet: String = body.chars().take(300).collect();
    let msg = if snippet.trim().is_empty() {
        format!("{what} answered {status}")
    } else {
        format!("{what} answered {status}: {}", snippet.trim())
    };
    let err = ConnectorError::from_status(status, msg, retry_after);
    if status == 503 && retry_after.is_some() {
        // A 503 with Retry-After is the server asking us to wait: honour it.
        return ConnectorError::rate_limited(err.message().to_owned(), retry_after)
            .with_http_status(status);
    }
    err
}

/// A request that got no answer.
pub fn from_transport(e: reqwest::Error, what: &str) -> ConnectorError {
    let class = class_of_reqwest_error(&e);
    let msg = if e.is_timeout() {
        format!("{what}: no answer in time")
    } else if e.is_connect() {
        format!("{what}: cannot connect")
    } else {
        format!("{what}: request failed")
    };
    match class {
        ErrorClass::Permanent => ConnectorError::permanent(msg).with_source(e),
        _ => ConnectorError::transient(msg).with_source(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        assert_eq!(verdict(201, &[], &[409]), Verdict::Success);
        assert_eq!(verdict(409, &[], &[409]), Verdict::AlreadyDone);
        assert_eq!(verdict(302, &[], &[409]), Verdict::Failure);
        assert_eq!(verdict(302, &[302], &[]), Verdict::Success);
        assert_eq!(verdict(200, &[201], &[]), Verdict::Failure);
    }

    #[test]
    fn answers_classify_by_status() {
        assert!(from_response(503, None, "", "POST /x").is_transient());
        let e = from_response(503, Some("3"), "", "POST /x");
        assert!(e.is_rate_limited() && e.retry_after().is_some());
        let e = from_response(429, Some("2"), "", "POST /x");
        assert_eq!(e.retry_after(), Some(std::time::Duration::from_secs(2)));
        let e = from_response(400, None, r#"{"error":"total missing"}"#, "POST /orders/1");
        assert!(
            e.is_permanent()
                && e.message().contains("total missing")
                && e.message().contains("/orders/1")
        );
        assert!(from_response(401, None, "", "x").is_unauthorized());
    }
}
