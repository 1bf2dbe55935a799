//! The backoff schedule: capped exponential steps from `backon`, with full
//! jitter on top (a uniformly random wait in `[0, step]`), so that workers
//! that failed together do not retry together.

use super::RetrySettings;
use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use std::time::Duration;

/// An endless iterator of jittered backoff waits.
#[derive(Debug)]
pub struct Backoff {
    steps: ExponentialBackoff,
    last: Duration,
}

impl Backoff {
    /// The schedule for these settings: `initial`, doubling, capped at `max`.
    pub fn new(settings: &RetrySettings) -> Self {
        let steps = ExponentialBuilder::new()
            .with_min_delay(settings.initial_backoff)
            .with_max_delay(settings.max_backoff)
            .with_factor(2.0)
            .without_max_times()
            .build();
        Self {
            steps,
            last: settings.initial_backoff,
        }
    }

    /// The next step before jitter (the cap of the next wait).
    pub fn next_step(&mut self) -> Duration {
        if let Some(step) = self.steps.next() {
            // backon multiplies in f32; round to whole milliseconds so the
            // schedule reads as configured (400 ms, not 400.000006 ms).
            let millis = (step.as_micros() + 500) / 1000;
            self.last = Duration::from_millis(u64::try_from(millis).unwrap_or(u64::MAX));
        }
        self.last
    }

    /// The next wait: uniformly random in `[0, next_step]` (full jitter).
    pub fn next_wait(&mut self) -> Duration {
        full_jitter(self.next_step())
    }
}

/// A uniformly random duration in `[0, cap]`.
pub fn full_jitter(cap: Duration) -> Duration {
    let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(fastrand::u64(0..=nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_double_and_cap() {
        let s = RetrySettings {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
            ..RetrySettings::default()
        };
        let mut b = Backoff::new(&s);
        let steps: Vec<u128> = (0..6).map(|_| b.next_step().as_millis()).collect();
        assert_eq!(steps, [100, 200, 400, 500, 500, 500]);
    }

    #[test]
    fn jitter_stays_within_the_step() {
        let mut b = Backoff::new(&RetrySettings::default());
        for _ in 0..100 {
            let w = b.next_wait();
            assert!(w <= Duration::from_secs(10), "{w:?}");
        }
        assert_eq!(full_jitter(Duration::ZERO), Duration::ZERO);
    }
}
