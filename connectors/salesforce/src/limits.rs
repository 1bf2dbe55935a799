//! The org's daily API limit, as `Sforce-Limit-Info: api-usage=N/M` reports
//! it on every response. Above the soft share calls slow down; above the hard
//! share (or after `REQUEST_LIMIT_EXCEEDED`) no call goes out for
//! `limit_backoff`, and events wait as delayed nacks, never lost. After the
//! wait one call looks again and its header says where usage stands.

use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// What the limit says about the next call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Gate {
    /// Go.
    Open,
    /// Go after this pause.
    Slow(Duration),
    /// Do not call; try again after this long.
    Closed(Duration),
}

#[derive(Debug, Default)]
struct State {
    used: u64,
    max: u64,
    blocked_until: Option<Instant>,
    /// After a closed spell, one call goes out to read the usage again.
    probing: bool,
}

/// How long the others wait while the probe call is out.
const PROBE_WAIT: Duration = Duration::from_secs(5);

/// Usage bookkeeping shared by every call of the connector.
#[derive(Debug)]
pub struct Limits {
    soft: f64,
    hard: f64,
    soft_delay: Duration,
    backoff: Duration,
    state: Mutex<State>,
}

/// Parses `api-usage=18/5000` out of a `Sforce-Limit-Info` value.
pub fn parse(header: &str) -> Option<(u64, u64)> {
    header.split(',').find_map(|part| {
        let (used, max) = part.trim().strip_prefix("api-usage=")?.split_once('/')?;
        Some((used.trim().parse().ok()?, max.trim().parse().ok()?))
    })
}

impl Limits {
    /// Thresholds as shares of the daily limit.
    pub fn new(soft: f64, hard: f64, soft_delay: Duration, backoff: Duration) -> Self {
        Self {
            soft,
            hard,
            soft_delay,
            backoff,
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a response's header.
    pub fn observe(&self, header: Option<&str>) {
        let Some((used, max)) = header.and_then(parse) else {
            return;
        };
        let mut s = self.lock();
        s.used = used;
        s.max = max;
        s.probing = false;
        if max > 0 && used as f64 >= self.hard * max as f64 {
            s.blocked_until = Some(Instant::now() + self.backoff);
        }
    }

    /// The org answered `REQUEST_LIMIT_EXCEEDED`.
    pub fn exceeded(&self) {
        let mut s = self.lock();
        s.probing = false;
        s.blocked_until = Some(Instant::now() + self.backoff);
    }

    /// May a call go now?
    pub fn gate(&self) -> Gate {
        let mut s = self.lock();
        let now = Instant::now();
        if let Some(until) = s.blocked_until {
            if now < until {
                return Gate::Closed(until - now);
            }
            // One call looks again; its header tells the truth for the rest.
            if s.probing {
                return Gate::Closed(PROBE_WAIT);
            }
            s.probing = true;
            s.blocked_until = None;
            return Gate::Open;
        }
        if s.probing {
            return Gate::Closed(PROBE_WAIT);
        }
        if s.max > 0 && s.used as f64 >= self.soft * s.max as f64 {
            Gate::Slow(self.soft_delay)
        } else {
            Gate::Open
        }
    }

    /// (used, max) as last reported.
    pub fn usage(&self) -> (u64, u64) {
        let s = self.lock();
        (s.used, s.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits::new(
            0.8,
            0.95,
            Duration::from_millis(250),
            Duration::from_secs(300),
        )
    }

    #[test]
    fn header_parsing() {
        assert_eq!(parse("api-usage=18/5000"), Some((18, 5000)));
        assert_eq!(
            parse("per-app-api-usage=17/250(appName=x), api-usage=25/5000"),
            Some((25, 5000))
        );
        assert_eq!(parse("api-usage=x/5000"), None);
        assert_eq!(parse(""), None);
    }

    #[tokio::test(start_paused = true)]
    async fn open_slow_closed_then_open_again() {
        let l = limits();
        assert_eq!(l.gate(), Gate::Open);
        l.observe(Some("api-usage=800/1000"));
        assert_eq!(l.gate(), Gate::Slow(Duration::from_millis(250)));
        l.observe(Some("api-usage=950/1000"));
        assert!(matches!(l.gate(), Gate::Closed(d) if d == Duration::from_secs(300)));
        tokio::time::advance(Duration::from_secs(301)).await;
        assert_eq!(l.gate(), Gate::Open, "one call may look again");
        assert_eq!(
            l.gate(),
            Gate::Closed(PROBE_WAIT),
            "the others wait for its answer"
        );
        l.observe(Some("api-usage=10/1000"));
        assert_eq!(l.gate(), Gate::Open, "a new day");
        l.exceeded();
        assert!(matches!(l.gate(), Gate::Closed(_)));
    }
}
