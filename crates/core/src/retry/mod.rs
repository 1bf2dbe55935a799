//! Retries: the decision ([`policy`]) apart from the schedule ([`backoff`]).
//!
//! The loop that sleeps and calls again lives in [`crate::pipeline`]; this
//! module only answers "what now?" for a failed attempt, so it is tested
//! without any I/O and on paused time.

pub mod backoff;
pub mod policy;

pub use policy::{Decision, RetryPolicy, RetryState};

use serde::Deserialize;
use std::time::Duration;

/// The most attempts in process one delivery may make.
const MAX_ATTEMPTS: u32 = 100;

/// The longest `max_backoff`, `budget` or `max_retry_after` accepted.
const MAX_RETRY_SPAN: Duration = Duration::from_secs(24 * 3600);

/// Retry settings: global in `[delivery.retry]`, overridable per route.
///
/// Defaults: 5 attempts, 200 ms first backoff doubling up to 10 s, 30 s
/// in-process budget, `Retry-After` honoured up to 60 s.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySettings {
    /// Attempts in process, the first included (default 5).
    pub max_attempts: u32,
    /// First backoff step (default 200 ms).
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub initial_backoff: Duration,
    /// Largest backoff step (default 10 s).
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub max_backoff: Duration,
    /// Total time one message may spend retrying in process (default 30 s).
    /// Keep it well inside the subscription's ack deadline extension: past it
    /// the message is nacked with a delay instead of holding a worker.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub budget: Duration,
    /// Cap on a target's `Retry-After` (default 60 s).
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub max_retry_after: Duration,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            budget: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

/// A route's `retry` table: any key left out keeps `[delivery.retry]`'s value.
#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetryOverrides {
    /// See [`RetrySettings::max_attempts`].
    pub max_attempts: Option<u32>,
    /// See [`RetrySettings::initial_backoff`].
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub initial_backoff: Option<Duration>,
    /// See [`RetrySettings::max_backoff`].
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub max_backoff: Option<Duration>,
    /// See [`RetrySettings::budget`].
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub budget: Option<Duration>,
    /// See [`RetrySettings::max_retry_after`].
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub max_retry_after: Option<Duration>,
}

impl RetryOverrides {
    /// `base` with these overrides applied.
    pub fn apply(&self, base: &RetrySettings) -> RetrySettings {
        RetrySettings {
            max_attempts: self.max_attempts.unwrap_or(base.max_attempts),
            initial_backoff: self.initial_backoff.unwrap_or(base.initial_backoff),
            max_backoff: self.max_backoff.unwrap_or(base.max_backoff),
            budget: self.budget.unwrap_or(base.budget),
            max_retry_after: self.max_retry_after.unwrap_or(base.max_retry_after),
        }
    }
}

impl RetrySettings {
    /// Checks the settings make sense together.
    pub fn validate(&self) -> Result<(), crate::config::ConfigError> {
        crate::bounds::within("max_attempts", self.max_attempts, 1..=MAX_ATTEMPTS)?;
        if self.initial_backoff.is_zero() || self.initial_backoff > self.max_backoff {
            return Err("initial_backoff must be more than zero and at most max_backoff".into());
        }
        if self.budget.is_zero() {
            return Err("budget must be more than zero".into());
        }
        // Deadlines are computed as now + these; beyond a day they are a
        // typo, and far beyond they would overflow the clock.
        if self.max_backoff > MAX_RETRY_SPAN || self.budget > MAX_RETRY_SPAN {
            return Err("max_backoff and budget must be at most 24 hours".into());
        }
        crate::bounds::duration_within(
            "max_retry_after",
            self.max_retry_after,
            Duration::ZERO..=MAX_RETRY_SPAN,
        )
    }
}
