//! The shared HTTP status table and `Retry-After` parsing.
//!
//! Connectors that speak HTTP use these so that every connector treats a 503 or
//! a 429 the same way; a vendor with its own codes (a quota error inside a 200,
//! a session error inside a 500) maps those first and falls back to this table.

use crate::error::ErrorClass;
use std::time::{Duration, SystemTime};

/// The class of an HTTP status that is not a success.
///
/// - 408, 5xx except 501: transient (the server or the path had a bad moment).
/// - 429: rate limited.
/// - 401: unauthorized (refresh the credential once).
/// - 501 and every other status: permanent (the request itself is wrong, or
///   the server will never implement it).
pub fn class_of_status(status: u16) -> ErrorClass {
    match status {
        408 => ErrorClass::Transient,
        429 => ErrorClass::RateLimited,
        401 => ErrorClass::Unauthorized,
        501 => ErrorClass::Permanent,
        500..=599 => ErrorClass::Transient,
        _ => ErrorClass::Permanent,
    }
}

/// Parses a `Retry-After` value: delay-seconds or an HTTP-date (RFC 9110
/// §10.2.3). A date in the past means "now". Anything else is ignored, so a
/// garbled header falls back to the backoff schedule instead of failing.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Classifies an error from `reqwest` that carries no response: timeouts and
/// connection failures are transient; a request we could not even build is
/// permanent.
pub fn class_of_reqwest_error(err: &reqwest::Error) -> ErrorClass {
    if err.is_builder() || err.is_redirect() {
        ErrorClass::Permanent
    } else if let Some(status) = err.status() {
        class_of_status(status.as_u16())
    } else {
        // Timeouts, connect errors, resets, body errors: the network's fault.
        ErrorClass::Transient
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    #[test_case(500)]
    #[test_case(502)]
    #[test_case(503)]
    #[test_case(504)]
    #[test_case(408)]
    fn transient_statuses(status: u16) {
        assert_eq!(class_of_status(status), ErrorClass::Transient);
    }

    #[test_case(400)]
    #[test_case(403)]
    #[test_case(404)]
    #[test_case(409)]
    #[test_case(422)]
    #[test_case(501)]
    fn permanent_statuses(status: u16) {
        assert_eq!(class_of_status(status), ErrorClass::Permanent);
    }

    #[test]
    fn throttling_and_auth() {
        assert_eq!(class_of_status(429), ErrorClass::RateLimited);
        assert_eq!(class_of_status(401), ErrorClass::Unauthorized);
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("2", now), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(30))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }
}
