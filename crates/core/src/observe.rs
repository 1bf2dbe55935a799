//! What the pipeline reports while it works, for metrics.
//!
//! The pipeline knows things the runtime cannot see from the outcome alone:
//! how long each target call took and how it ended, which attempts were
//! retried, how long the worker's own rate limiter held a message, how the
//! idempotency store answered. It tells an [`Observe`]r at each of those
//! points and keeps no numbers itself. The runtime's observer turns them
//! into Prometheus series; [`Unobserved`], the default, does nothing, so a
//! pipeline built without one (tests, metrics switched off) pays one empty
//! virtual call per point.
//!
//! Every method is called on the message's own task, in the hot path: an
//! observer must not block.

use crate::error::ErrorClass;
use std::fmt;
use std::time::Duration;

/// How one attempt's call ended, as a metric label sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallEnd {
    /// The target's HTTP status, when it answered with one.
    pub status: Option<u16>,
    /// The error's class, `None` when the call succeeded.
    pub class: Option<ErrorClass>,
    /// The call may have taken effect without an answer (cut off after sending).
    pub outcome_unknown: bool,
}

impl CallEnd {
    /// `2xx` … `5xx` from the status; a success without one is `2xx` (a
    /// connector's call succeeded); a failure without one is `none` (no HTTP
    /// answer: not connected, cut off, timed out).
    pub fn status_class(&self) -> &'static str {
        match (self.status, self.class) {
            (Some(s), _) if (200..300).contains(&s) => "2xx",
            (Some(s), _) if (300..400).contains(&s) => "3xx",
            (Some(s), _) if (400..500).contains(&s) => "4xx",
            (Some(s), _) if (500..600).contains(&s) => "5xx",
            (Some(_), _) => "other",
            (None, None) => "2xx",
            (None, Some(_)) => "none",
        }
    }

    /// `ok`, `outcome-unknown`, or the error class's name.
    pub fn result(&self) -> &'static str {
        match self.class {
            None => "ok",
            Some(_) if self.outcome_unknown => "outcome-unknown",
            Some(c) => c.as_str(),
        }
    }
}

/// An idempotency store operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreOp {
    /// Claiming the key before the call.
    Claim,
    /// Recording the effect as done.
    Complete,
    /// Giving the claim back after a failure.
    Release,
}

impl StoreOp {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreOp::Claim => "claim",
            StoreOp::Complete => "complete",
            StoreOp::Release => "release",
        }
    }
}

/// Told by the pipeline at each point worth a number. Every method has an
/// empty default, so an observer implements what it records.
pub trait Observe: Send + Sync + fmt::Debug {
    /// One attempt's call to the target (credential included) ended.
    fn call(&self, route: &str, elapsed: Duration, end: CallEnd) {
        let _ = (route, elapsed, end);
    }

    /// An attempt failed with `class` and is retried in process.
    fn retry(&self, route: &str, class: ErrorClass) {
        let _ = (route, class);
    }

    /// The worker's own rate limiter held a message for `waited` (zero waits
    /// are not reported).
    fn rate_limit_wait(&self, bucket: &str, waited: Duration) {
        let _ = (bucket, waited);
    }

    /// The idempotency store answered `op` after `elapsed`, with an error or not.
    fn store(&self, op: StoreOp, elapsed: Duration, ok: bool) {
        let _ = (op, elapsed, ok);
    }
}

/// The observer that records nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct Unobserved;

impl Observe for Unobserved {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes_and_results_name_what_happened() {
        let end = |status, class, outcome_unknown| CallEnd {
            status,
            class,
            outcome_unknown,
        };
        assert_eq!(end(None, None, false).status_class(), "2xx");
        assert_eq!(end(None, None, false).result(), "ok");
        assert_eq!(end(Some(201), None, false).status_class(), "2xx");
        assert_eq!(
            end(Some(409), Some(ErrorClass::Permanent), false).status_class(),
            "4xx"
        );
        assert_eq!(
            end(Some(503), Some(ErrorClass::Transient), false).status_class(),
            "5xx"
        );
        let cut = end(None, Some(ErrorClass::Transient), true);
        assert_eq!(cut.status_class(), "none");
        assert_eq!(cut.result(), "outcome-unknown");
        assert_eq!(
            end(Some(429), Some(ErrorClass::RateLimited), false).result(),
            "rate-limited"
        );
        assert_eq!(StoreOp::Release.as_str(), "release");
    }
}
