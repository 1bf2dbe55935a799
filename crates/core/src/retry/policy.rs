//! What to do after a failed attempt. Pure: no sleeping, no I/O.
//!
//! | error class   | decision                                                       |
//! |---------------|----------------------------------------------------------------|
//! | transient     | wait the next jittered backoff, unless attempts or budget run out → [`Decision::Nack`] with the next step as delay |
//! | rate limited  | wait `Retry-After` (or the backoff) capped at `max_retry_after`; if that does not fit the budget → nack with that delay |
//! | unauthorized  | refresh the credential and retry at once, the first time; then permanent |
//! | permanent     | dead-letter                                                    |

use super::RetrySettings;
use super::backoff::Backoff;
use crate::error::{ConnectorError, ErrorClass};
use std::time::Duration;

/// The answer for one failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decision {
    /// Call again after this wait.
    RetryAfter(Duration),
    /// Drop the cached credential, then call again at once.
    RefreshAndRetry,
    /// Give up in process; nack so Pub/Sub redelivers after this delay.
    Nack(Duration),
    /// Never retry: dead-letter.
    DeadLetter,
}

/// The retry policy of one route.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    settings: RetrySettings,
}

/// What has happened so far for one message.
#[derive(Debug)]
pub struct RetryState {
    attempts: u32,
    refreshed: bool,
    backoff: Backoff,
}

impl RetryState {
    /// Attempts made so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }
}

impl RetryPolicy {
    /// A policy with these settings.
    pub fn new(settings: RetrySettings) -> Self {
        Self { settings }
    }

    /// The settings in force.
    pub fn settings(&self) -> &RetrySettings {
        &self.settings
    }

    /// A fresh state for a new message.
    pub fn start(&self) -> RetryState {
        RetryState {
            attempts: 0,
            refreshed: false,
            backoff: Backoff::new(&self.settings),
        }
    }

    /// Records that an attempt is being made.
    pub fn on_attempt(&self, state: &mut RetryState) {
        state.attempts += 1;
    }

    /// Decides what follows `err`, given `remaining` in-process budget.
    pub fn decide(
        &self,
        state: &mut RetryState,
        err: &ConnectorError,
        remaining: Duration,
    ) -> Decision {
        match err.class() {
            ErrorClass::Permanent => Decision::DeadLetter,
            ErrorClass::Unauthorized => {
                if state.refreshed {
                    Decision::DeadLetter
                } else {
                    state.refreshed = true;
                    Decision::RefreshAndRetry
                }
            }
            ErrorClass::RateLimited => {
                let wait = err
                    .retry_after()
                    .unwrap_or_else(|| state.backoff.next_step())
                    .min(self.settings.max_retry_after);
                if state.attempts >= self.settings.max_attempts || wait > remaining {
                    Decision::Nack(wait)
                } else {
                    Decision::RetryAfter(wait)
                }
            }
            // Transient, and any class added later: retry, the safe default.
            _ => {
                let step = state.backoff.next_step();
                if state.attempts >= self.settings.max_attempts {
                    return Decision::Nack(step);
                }
                let wait = super::backoff::full_jitter(step);
                if wait > remaining {
                    Decision::Nack(step)
                } else {
                    Decision::RetryAfter(wait)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_attempts: u32) -> RetryPolicy {
        RetryPolicy::new(RetrySettings {
            max_attempts,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            ..RetrySettings::default()
        })
    }

    const PLENTY: Duration = Duration::from_secs(30);

    #[test]
    fn transient_retries_then_nacks_with_the_next_step() {
        let p = policy(3);
        let mut s = p.start();
        let err = ConnectorError::transient("503");
        for _ in 0..2 {
            p.on_attempt(&mut s);
            assert!(
                matches!(p.decide(&mut s, &err, PLENTY), Decision::RetryAfter(w) if w <= Duration::from_secs(1))
            );
        }
        p.on_attempt(&mut s);
        assert_eq!(
            p.decide(&mut s, &err, PLENTY),
            Decision::Nack(Duration::from_millis(400))
        );
    }

    #[test]
    fn transient_nacks_when_the_budget_is_spent() {
        let p = policy(10);
        let mut s = p.start();
        p.on_attempt(&mut s);
        assert_eq!(
            p.decide(&mut s, &ConnectorError::transient("x"), Duration::ZERO),
            Decision::Nack(Duration::from_millis(100))
        );
    }

    #[test]
    fn retry_after_is_honoured_and_capped() {
        let p = policy(5);
        let mut s = p.start();
        p.on_attempt(&mut s);
        let two = ConnectorError::rate_limited("429", Some(Duration::from_secs(2)));
        assert_eq!(
            p.decide(&mut s, &two, PLENTY),
            Decision::RetryAfter(Duration::from_secs(2))
        );
        let huge = ConnectorError::rate_limited("429", Some(Duration::from_secs(3600)));
        assert_eq!(
            p.decide(&mut s, &huge, Duration::from_secs(100)),
            Decision::RetryAfter(Duration::from_secs(60))
        );
        assert_eq!(
            p.decide(&mut s, &huge, PLENTY),
            Decision::Nack(Duration::from_secs(60))
        );
    }

    #[test]
    fn unauthorized_refreshes_once() {
        let p = policy(5);
        let mut s = p.start();
        let err = ConnectorError::unauthorized("401");
        assert_eq!(p.decide(&mut s, &err, PLENTY), Decision::RefreshAndRetry);
        assert_eq!(p.decide(&mut s, &err, PLENTY), Decision::DeadLetter);
    }

    #[test]
    fn permanent_dead_letters_at_once() {
        let p = policy(5);
        let mut s = p.start();
        assert_eq!(
            p.decide(&mut s, &ConnectorError::permanent("400"), PLENTY),
            Decision::DeadLetter
        );
    }
}
