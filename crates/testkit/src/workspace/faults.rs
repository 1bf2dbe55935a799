//! The errors a test makes a method answer: every quota, backend and policy
//! answer Google documents, and an answer that comes too late.

use std::time::Duration;

use serde_json::json;

use super::errors::{json_reply, legacy};
use crate::http_target::Reply;

/// What the next calls of a method answer instead of their effect
/// ([`WorkspaceDouble::fail_next`](super::WorkspaceDouble::fail_next)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// `403`, legacy body, domain `usageLimits`, reason
    /// `userRateLimitExceeded`: retry with backoff.
    UserRateLimit,
    /// `403`, domain `usageLimits`, reason `rateLimitExceeded`: retry with
    /// backoff.
    RateLimit,
    /// `403`, domain `usageLimits`, reason `dailyLimitExceeded`: nothing
    /// succeeds before the quota resets.
    DailyLimit,
    /// `429` carrying both shapes: `errors[]` (reason `rateLimitExceeded`)
    /// and `status: RESOURCE_EXHAUSTED` with an `ErrorInfo` detail (reason
    /// `RATE_LIMIT_EXCEEDED`, `metadata.quota_limit` …), as Sheets sends a
    /// spent per-minute quota.
    QuotaExhausted,
    /// `500`, reason `backendError`.
    Backend,
    /// `503`, AIP-193 body only (`status: UNAVAILABLE`, no `errors[]`).
    Unavailable,
    /// `403`, reason `domainPolicy`: the domain's administrators disabled
    /// the API. Permanent.
    DomainPolicy,
    /// `403`, reason `forbidden`. Permanent.
    Forbidden,
    /// The call is applied, then its answer is held this long: a client
    /// with a shorter timeout cannot know the outcome.
    ApplyThenHold(Duration),
}

/// The Google service of a Discovery method id.
pub(crate) fn service(method_id: &str) -> &'static str {
    match method_id.split('.').next() {
        Some("sheets") => "sheets.googleapis.com",
        Some("gmail") => "gmail.googleapis.com",
        Some("calendar") => "calendar-json.googleapis.com",
        Some("directory") => "admin.googleapis.com",
        _ => "iamcredentials.googleapis.com",
    }
}

fn product(method_id: &str) -> &'static str {
    match method_id.split('.').next() {
        Some("sheets") => "Sheets",
        Some("gmail") => "Gmail",
        Some("calendar") => "Calendar",
        Some("directory") => "Admin SDK",
        _ => "IAM",
    }
}

impl Fault {
    /// The answer for a call of `method_id`; `None` for
    /// [`Fault::ApplyThenHold`], which answers what the call answers.
    pub(crate) fn reply(self, method_id: &str) -> Option<Reply> {
        let reply = match self {
            Self::UserRateLimit => legacy(
                403,
                "usageLimits",
                "userRateLimitExceeded",
                "User Rate Limit Exceeded",
            ),
            Self::RateLimit => legacy(
                403,
                "usageLimits",
                "rateLimitExceeded",
                "Rate Limit Exceeded",
            ),
            Self::DailyLimit => legacy(
                403,
                "usageLimits",
                "dailyLimitExceeded",
                "Daily Limit Exceeded",
            ),
            Self::QuotaExhausted => {
                let service = service(method_id);
                let message = format!(
                    "Quota exceeded for quota metric 'Write requests' and limit 'Write requests per minute per user' of service '{service}' for consumer 'project_number:123456789012'."
                );
                json_reply(
                    429,
                    &json!({"error": {
                        "code": 429,
                        "message": message,
                        "errors": [{"message": message, "domain": "usageLimits", "reason": "rateLimitExceeded"}],
                        "status": "RESOURCE_EXHAUSTED",
                        "details": [{
                            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                            "reason": "RATE_LIMIT_EXCEEDED",
                            "domain": "googleapis.com",
                            "metadata": {
                                "consumer": "projects/123456789012",
                                "quota_limit": "WriteRequestsPerMinutePerUser",
                                "quota_metric": format!("{service}/write_requests"),
                                "service": service,
                            },
                        }],
                    }}),
                )
            }
            Self::Backend => legacy(500, "global", "backendError", "Backend Error"),
            Self::Unavailable => super::errors::aip(503, "The service is currently unavailable."),
            Self::DomainPolicy => legacy(
                403,
                "global",
                "domainPolicy",
                &format!(
                    "The domain administrators have disabled {} apps.",
                    product(method_id)
                ),
            ),
            Self::Forbidden => legacy(403, "global", "forbidden", "Forbidden"),
            Self::ApplyThenHold(_) => return None,
        };
        Some(reply)
    }
}
