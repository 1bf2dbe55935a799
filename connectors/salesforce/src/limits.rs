//! The org's daily API limit, as `Sforce-Limit-Info: api-usage=N/M` reports
//! it on every response. Above the soft share calls slow down; above the hard
//! share (or after `REQUEST_LIMIT_EXCEEDED`) no call goes out for
//! `limit_backoff`, and events wait as delayed nacks, never lost. After the
//! wait one call looks again and its header says where usage stands.

use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// What the limit says about the next call.
#[derive(Debug)]
pub enum Gate<'a> {
    /// Go.
    Open,
    /// Go: this call is the one that looks again after a closed spell. Keep
    /// the [`Probe`] until its answer has been read; however the call ends
    /// (an answer, an error, a timeout, a dropped future), the probe settles
    /// the gate, so it never stays shut on a probe that is gone.
    Probe(Probe<'a>),
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
    /// The probe out now, if any: after a closed spell one call goes out to
    /// read the usage again, and the others wait for its answer.
    probe: Option<u64>,
    /// Numbers the probes, so a late end of an old one never settles a newer one.
    probes: u64,
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

/// The call that looks again after a closed spell. Dropped without news
/// (no `Sforce-Limit-Info`, no `REQUEST_LIMIT_EXCEEDED`: a transport error,
/// a timeout, a cancelled attempt, a 5xx from something in front of the
/// org), it hands the look to the next call at once; [`Probe::accepted`]
/// reopens the gate.
#[derive(Debug)]
pub struct Probe<'a> {
    limits: &'a Limits,
    id: u64,
}

impl Probe<'_> {
    /// The org took the call (a 2xx) but sent no usage: it is not out of
    /// calls, so the gate opens; the next header says where usage stands.
    pub fn accepted(self) {
        let mut s = self.limits.lock();
        if s.probe == Some(self.id) {
            s.probe = None;
            s.blocked_until = None;
        }
    }
}

impl Drop for Probe<'_> {
    fn drop(&mut self) {
        let mut s = self.limits.lock();
        if s.probe == Some(self.id) {
            // No news about usage: still closed, but the next call looks
            // again now instead of waiting for an answer that never comes.
            s.probe = None;
            s.blocked_until = Some(Instant::now());
        }
    }
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

    /// Records a response's header; false when there was no usage in it. A
    /// readable one settles a probe: the gate opens, slows or closes again
    /// by what it says.
    pub fn observe(&self, header: Option<&str>) -> bool {
        let Some((used, max)) = header.and_then(parse) else {
            return false;
        };
        let mut s = self.lock();
        s.used = used;
        s.max = max;
        s.probe = None;
        if max > 0 && used as f64 >= self.hard * max as f64 {
            s.blocked_until = Some(Instant::now() + self.backoff);
        }
        true
    }

    /// The org answered `REQUEST_LIMIT_EXCEEDED`: closed for `limit_backoff`.
    pub fn exceeded(&self) {
        let mut s = self.lock();
        s.probe = None;
        s.blocked_until = Some(Instant::now() + self.backoff);
    }

    /// May a call go now?
    pub fn gate(&self) -> Gate<'_> {
        let mut s = self.lock();
        let now = Instant::now();
        if s.probe.is_some() {
            return Gate::Closed(PROBE_WAIT);
        }
        if let Some(until) = s.blocked_until {
            if now < until {
                return Gate::Closed(until - now);
            }
            // One call looks again; its answer tells the truth for the rest.
            s.probes += 1;
            let id = s.probes;
            s.probe = Some(id);
            s.blocked_until = None;
            return Gate::Probe(Probe { limits: self, id });
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

    fn is_probe(g: &Gate<'_>) -> bool {
        matches!(g, Gate::Probe(_))
    }

    fn closed_for(g: &Gate<'_>) -> Option<Duration> {
        match g {
            Gate::Closed(d) => Some(*d),
            _ => None,
        }
    }

    /// Closed by `REQUEST_LIMIT_EXCEEDED`, then the backoff passes.
    async fn spent_then_waited(l: &Limits) {
        l.exceeded();
        assert_eq!(closed_for(&l.gate()), Some(Duration::from_secs(300)));
        tokio::time::advance(Duration::from_secs(301)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn open_slow_closed_then_open_again() {
        let l = limits();
        assert!(matches!(l.gate(), Gate::Open));
        l.observe(Some("api-usage=800/1000"));
        assert!(matches!(l.gate(), Gate::Slow(d) if d == Duration::from_millis(250)));
        l.observe(Some("api-usage=950/1000"));
        assert_eq!(closed_for(&l.gate()), Some(Duration::from_secs(300)));
        tokio::time::advance(Duration::from_secs(301)).await;
        let probe = l.gate();
        assert!(is_probe(&probe), "one call may look again");
        assert_eq!(
            closed_for(&l.gate()),
            Some(PROBE_WAIT),
            "the others wait for its answer"
        );
        assert!(l.observe(Some("api-usage=10/1000")));
        drop(probe);
        assert!(matches!(l.gate(), Gate::Open), "a new day");
        l.exceeded();
        assert!(closed_for(&l.gate()).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_that_ends_without_news_hands_the_look_to_the_next_call() {
        // A transport error, a timeout, a dropped attempt or a 5xx without
        // the header: the probe goes away and nothing was learnt.
        let l = limits();
        spent_then_waited(&l).await;
        let probe = l.gate();
        assert!(is_probe(&probe));
        assert!(!l.observe(None), "a 5xx without Sforce-Limit-Info");
        drop(probe);
        let next = l.gate();
        assert!(
            is_probe(&next),
            "the next call looks again at once: {next:?}"
        );
        assert_eq!(closed_for(&l.gate()), Some(PROBE_WAIT), "only one looks");
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_the_org_took_without_a_header_reopens() {
        let l = limits();
        spent_then_waited(&l).await;
        let Gate::Probe(probe) = l.gate() else {
            panic!("a probe after the backoff");
        };
        probe.accepted();
        assert!(matches!(l.gate(), Gate::Open));
        assert!(matches!(l.gate(), Gate::Open), "for every call");
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_answered_with_usage_reopens_or_closes_by_it() {
        let l = limits();
        spent_then_waited(&l).await;
        let probe = l.gate();
        assert!(l.observe(Some("api-usage=990/1000")));
        drop(probe);
        assert_eq!(
            closed_for(&l.gate()),
            Some(Duration::from_secs(300)),
            "still spent: closed for another backoff"
        );
        tokio::time::advance(Duration::from_secs(301)).await;
        let probe = l.gate();
        l.exceeded();
        drop(probe);
        assert_eq!(
            closed_for(&l.gate()),
            Some(Duration::from_secs(300)),
            "REQUEST_LIMIT_EXCEEDED closes it again"
        );
        tokio::time::advance(Duration::from_secs(301)).await;
        let probe = l.gate();
        assert!(l.observe(Some("api-usage=3/1000")));
        drop(probe);
        assert!(matches!(l.gate(), Gate::Open), "a new day");
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_end_of_an_old_probe_leaves_the_newer_one_alone() {
        let l = limits();
        spent_then_waited(&l).await;
        let old = l.gate();
        // Another call's answer settles the first probe, the limit closes
        // again and a second probe goes out.
        l.observe(Some("api-usage=999/1000"));
        tokio::time::advance(Duration::from_secs(301)).await;
        let newer = l.gate();
        assert!(is_probe(&newer));
        drop(old);
        assert_eq!(
            closed_for(&l.gate()),
            Some(PROBE_WAIT),
            "the newer probe is still out"
        );
        drop(newer);
        assert!(is_probe(&l.gate()));
    }
}
