//! Google's error model: one reading of an error answer, whichever of
//! Google's two body shapes it uses, and one classification of it.
//!
//! The shapes:
//!
//! - legacy (Calendar, Gmail, Directory):
//!   `{"error":{"code","message","errors":[{"domain","reason","message","locationType","location"}]}}`;
//! - AIP-193 (Sheets, Firestore and newer APIs):
//!   `{"error":{"code","message","status","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason","domain","metadata"}]}}`;
//!
//! and many APIs send both at once. [`GoogleError::parse`] reads any of
//! them (and a body that is not JSON), [`classify`] turns an [`Answer`] into
//! a classified [`ConnectorError`] by the typed fields, never by the text:
//!
//! | answer | class |
//! |---|---|
//! | 401 | unauthorized (refresh the credential once) |
//! | reason `dailyLimitExceeded` | rate limited, [`DAILY_LIMIT_DELAY`] (or `Retry-After`) |
//! | 429, status `RESOURCE_EXHAUSTED` | rate limited |
//! | 403 reason `rateLimitExceeded` / `userRateLimitExceeded`, ErrorInfo `RATE_LIMIT_EXCEEDED` | rate limited |
//! | any other 403 (`domainPolicy`, `forbidden`, `insufficientPermissions`, ...) | permanent |
//! | 5xx, status `UNAVAILABLE`, reason `backendError` | transient |
//! | anything else (404, 409, 410 included) | the core's shared status table |
//!
//! 404, 409 and 410 mean "already done" for some calls and not for others:
//! a connector asks [`GoogleError::status`] and [`GoogleError::reason`]
//! before falling back to [`classify`].

use gluefleet_core::ConnectorError;
use gluefleet_core::http::Answer;
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

/// How long a message waits after a daily quota ran out
/// (`dailyLimitExceeded`) when the answer names no `Retry-After`. Google
/// resets daily quotas at midnight Pacific time; an hour keeps retries rare
/// without holding events a whole day after a reset. The error is rate
/// limited, never permanent: the pipeline waits or nacks with this delay
/// (capped by its own `max_retry_after` and `max_nack_hold`) instead of
/// dead-lettering the event as refused.
pub const DAILY_LIMIT_DELAY: Duration = Duration::from_secs(3600);

/// The `@type` of the detail that carries a machine-readable reason.
const ERROR_INFO: &str = "type.googleapis.com/google.rpc.ErrorInfo";

/// One entry of the legacy `errors[]`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct LegacyReason {
    /// `usageLimits`, `global`, ...
    pub domain: String,
    /// `userRateLimitExceeded`, `forbidden`, ...
    pub reason: String,
    /// Text for people.
    pub message: String,
    /// `parameter`, `header`, ... when the error points at one.
    pub location_type: Option<String>,
    /// The parameter or header it points at.
    pub location: Option<String>,
}

/// A `google.rpc.ErrorInfo` detail (AIP-193).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ErrorInfo {
    /// `RATE_LIMIT_EXCEEDED`, `ACCESS_TOKEN_SCOPE_INSUFFICIENT`, ...
    pub reason: String,
    /// `googleapis.com`, ...
    pub domain: String,
    /// Quota metric, service, consumer, ...
    pub metadata: serde_json::Map<String, Value>,
}

/// A Google error answer, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoogleError {
    status: u16,
    message: String,
    grpc_status: Option<String>,
    errors: Vec<LegacyReason>,
    infos: Vec<ErrorInfo>,
}

#[derive(Deserialize)]
struct Envelope {
    error: Body,
}

#[derive(Deserialize)]
struct Body {
    #[serde(default)]
    message: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    errors: Vec<LegacyReason>,
    #[serde(default)]
    details: Vec<Value>,
}

impl GoogleError {
    /// Reads `body` answered with HTTP `status`. A body in neither shape
    /// (HTML from a proxy, empty, cut off) gives an error with no reason
    /// whose message is the start of the body.
    pub fn parse(status: u16, body: &str) -> Self {
        let Ok(Envelope { error }) = serde_json::from_str::<Envelope>(body) else {
            return Self {
                status,
                message: body.trim().chars().take(200).collect(),
                grpc_status: None,
                errors: Vec::new(),
                infos: Vec::new(),
            };
        };
        let infos = error
            .details
            .iter()
            .filter(|d| d["@type"].as_str() == Some(ERROR_INFO))
            .map(|d| ErrorInfo {
                reason: d["reason"].as_str().unwrap_or_default().to_owned(),
                domain: d["domain"].as_str().unwrap_or_default().to_owned(),
                metadata: d["metadata"].as_object().cloned().unwrap_or_default(),
            })
            .collect();
        Self {
            status,
            message: error.message,
            grpc_status: error.status.filter(|s| !s.is_empty()),
            errors: error.errors,
            infos,
        }
    }

    /// Reads a failed [`Answer`].
    pub fn of(answer: &Answer) -> Self {
        Self::parse(answer.status, &answer.body)
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The gRPC status name (`RESOURCE_EXHAUSTED`, `ALREADY_EXISTS`), when the
    /// body names one.
    pub fn grpc_status(&self) -> Option<&str> {
        self.grpc_status.as_deref()
    }

    /// The first reason the body gives: the legacy `errors[].reason`, else
    /// the ErrorInfo's.
    pub fn reason(&self) -> Option<&str> {
        self.reasons().next()
    }

    /// Every reason the body gives, legacy ones first.
    pub fn reasons(&self) -> impl Iterator<Item = &str> {
        self.errors
            .iter()
            .map(|e| e.reason.as_str())
            .chain(self.infos.iter().map(|i| i.reason.as_str()))
            .filter(|r| !r.is_empty())
    }

    /// True when any reason is `reason`.
    pub fn has_reason(&self, reason: &str) -> bool {
        self.reasons().any(|r| r == reason)
    }

    /// Google's message (or the start of a body that was not Google's).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The legacy `errors[]`.
    pub fn errors(&self) -> &[LegacyReason] {
        &self.errors
    }

    /// The `ErrorInfo` details.
    pub fn infos(&self) -> &[ErrorInfo] {
        &self.infos
    }

    /// True for a daily quota that ran out: wait for the reset.
    pub fn is_daily_limit(&self) -> bool {
        self.has_reason("dailyLimitExceeded")
    }

    /// True for a quota or rate limit worth waiting for (the daily one included).
    pub fn is_rate_limit(&self) -> bool {
        self.status == 429
            || self.grpc_status() == Some("RESOURCE_EXHAUSTED")
            || self.is_daily_limit()
            || (self.status == 403
                && (self.has_reason("rateLimitExceeded")
                    || self.has_reason("userRateLimitExceeded")
                    || self.has_reason("RATE_LIMIT_EXCEEDED")))
    }

    /// True for a failure of Google's side that may pass.
    pub fn is_transient(&self) -> bool {
        (500..=599).contains(&self.status) && self.status != 501
            || self.grpc_status() == Some("UNAVAILABLE")
            || self.has_reason("backendError")
    }

    /// The text of a classified error: status, reason, Google's message.
    fn detail(&self) -> String {
        let mut named: Vec<&str> = Vec::new();
        if let Some(s) = self.grpc_status() {
            named.push(s);
        }
        if let Some(r) = self.reason() {
            named.push(r);
        }
        match (named.is_empty(), self.message.is_empty()) {
            (true, _) => self.message.clone(),
            (false, true) => named.join(" "),
            (false, false) => format!("{} ({})", self.message, named.join(" ")),
        }
    }

    /// This error, classified (see the module's table). `answer` gives the
    /// name of the call and `Retry-After`.
    pub fn classify(&self, answer: &Answer) -> ConnectorError {
        let detail = self.detail();
        let status = self.status;
        let message = if detail.is_empty() {
            format!("{} answered {status}", answer.what)
        } else {
            format!("{} answered {status}: {detail}", answer.what)
        };
        let error = if status == 401 {
            ConnectorError::unauthorized(message)
        } else if self.is_daily_limit() {
            let delay = answer.retry_after().unwrap_or(DAILY_LIMIT_DELAY);
            ConnectorError::rate_limited(message, Some(delay))
        } else if self.is_rate_limit() {
            ConnectorError::rate_limited(message, answer.retry_after())
        } else if status == 403 {
            ConnectorError::permanent(message)
        } else if self.is_transient() && !(status == 503 && answer.retry_after().is_some()) {
            ConnectorError::transient(message)
        } else {
            // The core's table, which reads a 503 with `Retry-After` as a
            // pause asked for.
            return answer.error_with(&detail);
        };
        error.with_http_status(status)
    }
}

impl std::fmt::Display for GoogleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {}: {}", self.status, self.detail())
    }
}

/// A failed answer of a Google API as a classified error: the one function
/// every Google caller uses.
pub fn classify(answer: &Answer) -> ConnectorError {
    GoogleError::of(answer).classify(answer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gluefleet_core::ErrorClass;
    use test_case::test_case;

    fn answer(status: u16, retry_after: Option<&str>, body: &str) -> Answer {
        let mut headers = http::HeaderMap::new();
        if let Some(v) = retry_after {
            headers.insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_str(v).expect("header"),
            );
        }
        Answer {
            what: "Calendar events.insert".into(),
            status,
            headers,
            body: body.into(),
        }
    }

    const USER_RATE: &str = r#"{"error":{"errors":[{"domain":"usageLimits","reason":"userRateLimitExceeded","message":"User Rate Limit Exceeded"}],"code":403,"message":"User Rate Limit Exceeded"}}"#;
    const RATE: &str = r#"{"error":{"errors":[{"domain":"usageLimits","reason":"rateLimitExceeded","message":"Rate Limit Exceeded"}],"code":403,"message":"Rate Limit Exceeded"}}"#;
    const DAILY: &str = r#"{"error":{"errors":[{"domain":"usageLimits","reason":"dailyLimitExceeded","message":"Daily Limit Exceeded"}],"code":403,"message":"Daily Limit Exceeded"}}"#;
    const DOMAIN_POLICY: &str = r#"{"error":{"errors":[{"domain":"global","reason":"domainPolicy","message":"The domain administrators have disabled this app."}],"code":403,"message":"The domain administrators have disabled this app."}}"#;
    const FORBIDDEN: &str = r#"{"error":{"errors":[{"domain":"global","reason":"forbidden","message":"Forbidden"}],"code":403,"message":"Forbidden"}}"#;
    const INSUFFICIENT: &str = r#"{"error":{"errors":[{"domain":"global","reason":"insufficientPermissions","message":"Insufficient Permission"}],"code":403,"message":"Insufficient Permission"}}"#;
    const AUTH: &str = r#"{"error":{"errors":[{"domain":"global","reason":"authError","message":"Invalid Credentials","locationType":"header","location":"Authorization"}],"code":401,"message":"Invalid Credentials"}}"#;
    const BACKEND: &str = r#"{"error":{"errors":[{"domain":"global","reason":"backendError","message":"Backend Error"}],"code":500,"message":"Backend Error"}}"#;
    const SHEETS_QUOTA: &str = r#"{"error":{"code":429,"message":"Quota exceeded for quota metric 'Write requests' and limit 'Write requests per minute per user' of service 'sheets.googleapis.com' for consumer 'project_number:N'.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"RATE_LIMIT_EXCEEDED","domain":"googleapis.com","metadata":{"consumer":"projects/N","quota_limit":"WriteRequestsPerMinutePerUser","quota_metric":"sheets.googleapis.com/write_requests","service":"sheets.googleapis.com"}}]}}"#;
    const INFO_RATE_403: &str = r#"{"error":{"code":403,"message":"Rate limited","status":"PERMISSION_DENIED","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"RATE_LIMIT_EXCEEDED","domain":"googleapis.com"}]}}"#;
    const UNAVAILABLE: &str = r#"{"error":{"code":503,"message":"The service is currently unavailable.","status":"UNAVAILABLE"}}"#;
    const BOTH: &str = r#"{"error":{"code":403,"message":"User Rate Limit Exceeded","errors":[{"domain":"usageLimits","reason":"userRateLimitExceeded","message":"User Rate Limit Exceeded"}],"status":"PERMISSION_DENIED","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"RATE_LIMIT_EXCEEDED","domain":"googleapis.com"}]}}"#;
    const BOTH_FORBIDDEN: &str = r#"{"error":{"code":403,"message":"Request had insufficient authentication scopes.","errors":[{"domain":"global","reason":"insufficientPermissions","message":"Insufficient Permission"}],"status":"PERMISSION_DENIED","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"ACCESS_TOKEN_SCOPE_INSUFFICIENT","domain":"googleapis.com"}]}}"#;
    const CONFLICT: &str = r#"{"error":{"errors":[{"domain":"global","reason":"duplicate","message":"The requested identifier already exists."}],"code":409,"message":"The requested identifier already exists."}}"#;

    #[test_case(403, USER_RATE, ErrorClass::RateLimited; "legacy userRateLimitExceeded")]
    #[test_case(403, RATE, ErrorClass::RateLimited; "legacy rateLimitExceeded")]
    #[test_case(403, DAILY, ErrorClass::RateLimited; "legacy dailyLimitExceeded")]
    #[test_case(403, DOMAIN_POLICY, ErrorClass::Permanent; "legacy domainPolicy")]
    #[test_case(403, FORBIDDEN, ErrorClass::Permanent; "legacy forbidden")]
    #[test_case(403, INSUFFICIENT, ErrorClass::Permanent; "legacy insufficientPermissions")]
    #[test_case(401, AUTH, ErrorClass::Unauthorized; "legacy authError")]
    #[test_case(500, BACKEND, ErrorClass::Transient; "legacy backendError")]
    #[test_case(429, SHEETS_QUOTA, ErrorClass::RateLimited; "aip193 resource exhausted")]
    #[test_case(403, INFO_RATE_403, ErrorClass::RateLimited; "aip193 errorinfo rate limit on a 403")]
    #[test_case(503, UNAVAILABLE, ErrorClass::Transient; "aip193 unavailable")]
    #[test_case(403, BOTH, ErrorClass::RateLimited; "both shapes, rate limit")]
    #[test_case(403, BOTH_FORBIDDEN, ErrorClass::Permanent; "both shapes, scope")]
    #[test_case(409, CONFLICT, ErrorClass::Permanent; "conflict left to the caller")]
    #[test_case(502, "<html>Bad Gateway</html>", ErrorClass::Transient; "not json 502")]
    #[test_case(403, "<html>Forbidden</html>", ErrorClass::Permanent; "not json 403")]
    #[test_case(429, "", ErrorClass::RateLimited; "empty 429")]
    fn real_bodies_are_classified(status: u16, body: &str, class: ErrorClass) {
        let e = classify(&answer(status, None, body));
        assert_eq!(e.class(), class, "{e}");
        assert_eq!(e.http_status(), Some(status), "{e}");
    }

    #[test]
    fn a_daily_limit_waits_long_and_other_quotas_follow_retry_after() {
        let e = classify(&answer(403, None, DAILY));
        assert!(e.is_rate_limited(), "{e}");
        assert_eq!(e.retry_after(), Some(DAILY_LIMIT_DELAY));
        let e = classify(&answer(403, Some("120"), DAILY));
        assert_eq!(e.retry_after(), Some(Duration::from_secs(120)));
        let e = classify(&answer(403, None, USER_RATE));
        assert_eq!(e.retry_after(), None, "the backoff decides: {e}");
        let e = classify(&answer(429, Some("7"), SHEETS_QUOTA));
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
    }

    #[test]
    fn the_message_names_status_reason_and_googles_text() {
        let e = classify(&answer(403, None, DOMAIN_POLICY));
        assert_eq!(
            e.message(),
            "Calendar events.insert answered 403: The domain administrators have disabled this app. (domainPolicy)"
        );
        let e = classify(&answer(429, None, SHEETS_QUOTA));
        assert!(
            e.message()
                .contains("(RESOURCE_EXHAUSTED RATE_LIMIT_EXCEEDED)"),
            "{e}"
        );
        let e = classify(&answer(502, None, "<html>Bad Gateway</html>"));
        assert!(
            e.message().ends_with("502: <html>Bad Gateway</html>"),
            "{e}"
        );
    }

    #[test]
    fn both_shapes_are_read_together() {
        let g = GoogleError::parse(403, BOTH);
        assert_eq!(g.status(), 403);
        assert_eq!(g.grpc_status(), Some("PERMISSION_DENIED"));
        assert_eq!(g.reason(), Some("userRateLimitExceeded"));
        assert_eq!(
            g.reasons().collect::<Vec<_>>(),
            ["userRateLimitExceeded", "RATE_LIMIT_EXCEEDED"]
        );
        assert_eq!(g.message(), "User Rate Limit Exceeded");
        assert_eq!(g.errors()[0].domain, "usageLimits");
        assert_eq!(g.infos()[0].domain, "googleapis.com");
        let g = GoogleError::parse(429, SHEETS_QUOTA);
        assert_eq!(g.reason(), Some("RATE_LIMIT_EXCEEDED"));
        assert_eq!(
            g.infos()[0].metadata["service"],
            Value::from("sheets.googleapis.com")
        );
        let g = GoogleError::parse(401, AUTH);
        assert_eq!(g.errors()[0].location.as_deref(), Some("Authorization"));
        assert_eq!(g.errors()[0].location_type.as_deref(), Some("header"));
    }

    #[test]
    fn a_conflict_is_left_to_the_caller_with_its_reason() {
        let g = GoogleError::parse(409, CONFLICT);
        assert_eq!((g.status(), g.reason()), (409, Some("duplicate")));
        let g = GoogleError::parse(404, "Not Found");
        assert_eq!((g.status(), g.reason()), (404, None));
        assert_eq!(g.message(), "Not Found");
    }

    #[test]
    fn the_text_never_decides() {
        // A message that reads like a quota, with no typed reason: permanent.
        let body = r#"{"error":{"code":403,"message":"rateLimitExceeded userRateLimitExceeded"}}"#;
        assert!(classify(&answer(403, None, body)).is_permanent());
    }
}
