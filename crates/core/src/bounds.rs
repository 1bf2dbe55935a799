//! The documented range of every numeric and duration setting, checked when
//! the config loads.
//!
//! A value far outside what makes sense is a typo, and some would panic deep
//! inside a dependency (a semaphore's permit limit, `Instant + Duration`
//! overflowing the clock, a batcher's timer) on the first message instead of
//! stopping the worker at start. So each setting has a range, written next to
//! its default in docs/CONFIGURATION.md, and a value outside it is refused
//! with an error that names the setting, the value and the range.

use crate::config::ConfigError;
use std::fmt::Display;
use std::ops::RangeInclusive;
use std::time::Duration;

/// Pub/Sub's largest message: 10 MB, data and attributes together.
pub const PUBSUB_MAX_MESSAGE_BYTES: usize = 10_000_000;

/// Checks that `value` lies in `range`; the error names `setting`.
///
/// ```
/// use gluefleet_core::bounds::within;
/// assert!(within("pubsub.concurrency", 64, 1..=10_000).is_ok());
/// let e = within("pubsub.concurrency", 4_000_000_000_000_000_000_u64, 1..=10_000).unwrap_err();
/// assert!(e.setting_name() == Some("pubsub.concurrency") && e.message().contains("between 1 and 10000"));
/// ```
pub fn within<T: PartialOrd + Display>(
    setting: &str,
    value: T,
    range: RangeInclusive<T>,
) -> Result<(), ConfigError> {
    check(setting, &value, &range, |v| v.to_string())
}

/// Checks that a duration lies in `range`; the error names `setting` and
/// writes durations as the config does (`300000000000years`, `10s`).
///
/// ```
/// use gluefleet_core::bounds::duration_within;
/// use std::time::Duration;
/// let e = duration_within("target.linger", Duration::from_secs(u64::MAX / 4),
///     Duration::ZERO..=Duration::from_secs(10)).unwrap_err();
/// assert!(e.message().contains("target.linger") && e.message().contains("between 0s and 10s"));
/// ```
pub fn duration_within(
    setting: &str,
    value: Duration,
    range: RangeInclusive<Duration>,
) -> Result<(), ConfigError> {
    check(setting, &value, &range, |d| {
        humantime::format_duration(*d).to_string()
    })
}

/// The one range check behind both: `show` writes a value as the config does.
fn check<T: PartialOrd>(
    setting: &str,
    value: &T,
    range: &RangeInclusive<T>,
    show: impl Fn(&T) -> String,
) -> Result<(), ConfigError> {
    if range.contains(value) {
        return Ok(());
    }
    Err(ConfigError::setting(
        setting,
        format!(
            "{setting} is {}: it must be between {} and {}",
            show(value),
            show(range.start()),
            show(range.end())
        ),
    ))
}

/// The longest `linger` a batching connector accepts.
pub const MAX_LINGER: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges_are_inside_and_one_past_is_outside() {
        assert!(within("x", 1, 1..=3).is_ok());
        assert!(within("x", 3, 1..=3).is_ok());
        assert!(within("x", 0, 1..=3).is_err());
        assert!(within("x", 4, 1..=3).is_err());
        let s = Duration::from_secs;
        assert!(duration_within("d", s(10), s(1)..=s(10)).is_ok());
        assert!(duration_within("d", s(11), s(1)..=s(10)).is_err());
    }
}
