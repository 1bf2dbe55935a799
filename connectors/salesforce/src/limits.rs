//! The org's daily API limit, and the connected app's own allocation where
//! the org gives it one, as `Sforce-Limit-Info` reports them on every
//! response. Above the soft share calls slow down; above the hard share (or
//! after `REQUEST_LIMIT_EXCEEDED`) no call goes out for `limit_backoff`, and
//! events wait as delayed nacks, never lost. After the wait one call looks
//! again and its header says where usage stands.
//!
//! The shares are taken of the tighter of the two figures: an app allocation
//! can run out while the org has plenty left, and Salesforce then refuses
//! this app's calls all the same.

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

/// One `used/limit` figure of the header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Requests used so far (this one included).
    pub used: u64,
    /// Requests allowed.
    pub max: u64,
}

impl Usage {
    /// The share used; `None` for a limit of 0, which says nothing.
    fn share(self) -> Option<f64> {
        (self.max > 0).then(|| self.used as f64 / self.max as f64)
    }
}

/// The connected app's own allocation: `per-app-api-usage=17/250(appName=x)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppUsage {
    /// The figure.
    pub usage: Usage,
    /// The app it belongs to, from the `(appName=…)` suffix; empty without one.
    pub app: String,
}

/// What one `Sforce-Limit-Info` value says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LimitInfo {
    /// `api-usage`: the org's daily API requests.
    pub org: Option<Usage>,
    /// `per-app-api-usage`: the connected app's allocation. Salesforce sends
    /// it only for an app that has one.
    pub app: Option<AppUsage>,
    /// `api-bursts`: read so that it never hides the other fields. Salesforce
    /// documents its form but not what it limits, so nothing gates on it.
    pub bursts: Option<Usage>,
}

/// Parses a `Sforce-Limit-Info` value in every form Salesforce has sent:
///
/// * `api-usage=96/100; api-bursts=1/750` (today's documentation),
/// * `api-usage=25/5000; per-app-api-usage=17/250(appName=sample-connected-app)`,
/// * the same fields separated by `,`, and `api-usage=18/5000` alone,
///
/// with any whitespace around fields, names, `=` and `/`. Unknown fields
/// and a field whose numbers do not read are skipped, so one odd field never
/// costs the others. `None` when neither `api-usage` nor `per-app-api-usage`
/// reads: such a header says nothing about usage.
pub fn parse(header: &str) -> Option<LimitInfo> {
    let mut info = LimitInfo::default();
    for field in fields(header) {
        let Some((name, value)) = field.split_once('=') else {
            continue;
        };
        let name = name.trim();
        if name.eq_ignore_ascii_case("api-usage") {
            info.org = info.org.or_else(|| usage(value));
        } else if name.eq_ignore_ascii_case("per-app-api-usage") {
            info.app = info.app.or_else(|| app_usage(value));
        } else if name.eq_ignore_ascii_case("api-bursts") {
            info.bursts = info.bursts.or_else(|| usage(value));
        }
    }
    (info.org.is_some() || info.app.is_some()).then_some(info)
}

/// The fields of a header value: split on `;` and `,`, but not inside the
/// parentheses of an `(appName=…)` suffix, where an app's name may have
/// either.
fn fields(header: &str) -> impl Iterator<Item = &str> {
    let mut depth = 0usize;
    header
        .split(move |c: char| {
            match c {
                '(' => depth += 1,
                ')' => depth = depth.saturating_sub(1),
                _ => {}
            }
            depth == 0 && (c == ';' || c == ',')
        })
        .map(str::trim)
        .filter(|f| !f.is_empty())
}

/// `96/100`.
fn usage(value: &str) -> Option<Usage> {
    let (used, max) = value.split_once('/')?;
    Some(Usage {
        used: used.trim().parse().ok()?,
        max: max.trim().parse().ok()?,
    })
}

/// `17/250(appName=sample-connected-app)`; the suffix is optional.
fn app_usage(value: &str) -> Option<AppUsage> {
    let (figure, suffix) = match value.split_once('(') {
        Some((figure, rest)) => (figure, rest.trim_end().strip_suffix(')')?),
        None => (value, ""),
    };
    let app = match suffix.split_once('=') {
        Some((key, name)) if key.trim().eq_ignore_ascii_case("appName") => name.trim(),
        _ => "",
    };
    Some(AppUsage {
        usage: usage(figure)?,
        app: app.to_owned(),
    })
}

#[derive(Debug, Default)]
struct State {
    org: Usage,
    app: Option<AppUsage>,
    blocked_until: Option<Instant>,
    /// The probe out now, if any: after a closed spell one call goes out to
    /// read the usage again, and the others wait for its answer.
    probe: Option<u64>,
    /// Numbers the probes, so a late end of an old one never settles a newer one.
    probes: u64,
}

impl State {
    /// The share the gate decides on: the tighter of the org's and the app's.
    fn share(&self) -> Option<f64> {
        let app = self.app.as_ref().and_then(|a| a.usage.share());
        match (self.org.share(), app) {
            (Some(o), Some(a)) => Some(o.max(a)),
            (o, a) => o.or(a),
        }
    }

    /// Whether the app's allocation, not the org's limit, is the tighter one.
    fn app_is_tighter(&self) -> Option<&AppUsage> {
        let app = self.app.as_ref()?;
        let a = app.usage.share()?;
        match self.org.share() {
            Some(o) if o >= a => None,
            _ => Some(app),
        }
    }
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
    ///
    /// A header without `per-app-api-usage` clears the app's figure:
    /// Salesforce leaves the field out when the app has no allocation of its
    /// own, so an old figure would only hold the gate shut for nothing.
    pub fn observe(&self, header: Option<&str>) -> bool {
        let Some(info) = header.and_then(parse) else {
            return false;
        };
        let mut s = self.lock();
        if let Some(org) = info.org {
            s.org = org;
        }
        s.app = info.app;
        s.probe = None;
        if s.share().is_some_and(|share| share >= self.hard) {
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
        if s.share().is_some_and(|share| share >= self.soft) {
            Gate::Slow(self.soft_delay)
        } else {
            Gate::Open
        }
    }

    /// The org's usage as last reported: (used, daily limit), (0, 0) before
    /// any header.
    pub fn usage(&self) -> (u64, u64) {
        let s = self.lock();
        (s.org.used, s.org.max)
    }

    /// The connected app's allocation as last reported, if the org gives it
    /// one.
    pub fn app_usage(&self) -> Option<AppUsage> {
        self.lock().app.clone()
    }

    /// Where usage stands, for the error of a closed gate: the tighter
    /// figure, named.
    pub fn standing(&self) -> String {
        let s = self.lock();
        match s.app_is_tighter() {
            Some(a) if a.app.is_empty() => format!(
                "the connected app's API allocation is nearly spent ({}/{})",
                a.usage.used, a.usage.max
            ),
            Some(a) => format!(
                "the connected app {}'s API allocation is nearly spent ({}/{})",
                a.app, a.usage.used, a.usage.max
            ),
            None => format!(
                "the org's daily API limit is nearly spent ({}/{})",
                s.org.used, s.org.max
            ),
        }
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

    fn u(used: u64, max: u64) -> Option<Usage> {
        Some(Usage { used, max })
    }

    fn app(used: u64, max: u64, name: &str) -> Option<AppUsage> {
        Some(AppUsage {
            usage: Usage { used, max },
            app: name.to_owned(),
        })
    }

    fn info(org: Option<Usage>, app: Option<AppUsage>, bursts: Option<Usage>) -> Option<LimitInfo> {
        Some(LimitInfo { org, app, bursts })
    }

    /// Header values as Salesforce documents and sends them.
    #[test]
    fn header_samples() {
        let table = [
            ("api-usage=18/5000", info(u(18, 5000), None, None)),
            (
                "api-usage=96/100; api-bursts=1/750",
                info(u(96, 100), None, u(1, 750)),
            ),
            (
                "api-usage=10018/100000; api-bursts=1/750",
                info(u(10018, 100_000), None, u(1, 750)),
            ),
            (
                "api-usage=25/5000; per-app-api-usage=17/250(appName=sample-connected-app)",
                info(u(25, 5000), app(17, 250, "sample-connected-app"), None),
            ),
            (
                "per-app-api-usage=17/250(appName=x), api-usage=25/5000",
                info(u(25, 5000), app(17, 250, "x"), None),
            ),
            (
                "api-usage=25/5000,per-app-api-usage=17/250(appName=sample-connected-app)",
                info(u(25, 5000), app(17, 250, "sample-connected-app"), None),
            ),
            (
                "api-usage=96/100;api-bursts=1/750",
                info(u(96, 100), None, u(1, 750)),
            ),
            (
                "  api-usage = 96 / 100 ;\tapi-bursts= 1/750 ; ",
                info(u(96, 100), None, u(1, 750)),
            ),
            (
                "api-usage=3/100; per-app-api-usage=240/250 (appName = ERP sync; EU, prod)",
                info(u(3, 100), app(240, 250, "ERP sync; EU, prod"), None),
            ),
            (
                "api-usage=3/100; per-app-api-usage=9/10",
                info(u(3, 100), app(9, 10, ""), None),
            ),
            ("API-Usage=5/10", info(u(5, 10), None, None)),
            (
                "api-usage=96/100; some-new-field=3; api-bursts=1/750",
                info(u(96, 100), None, u(1, 750)),
            ),
            (
                "api-usage=x/5000; per-app-api-usage=1/2(appName=a)",
                info(None, app(1, 2, "a"), None),
            ),
            ("api-bursts=1/750", None),
            ("api-usage=x/5000", None),
            ("api-usage=96", None),
            ("api-usage", None),
            ("", None),
        ];
        for (header, expected) in table {
            assert_eq!(parse(header), expected, "{header:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_tighter_of_org_and_app_usage_gates() {
        let l = limits();
        l.observe(Some(
            "api-usage=10/1000; per-app-api-usage=200/250(appName=gf)",
        ));
        assert!(
            matches!(l.gate(), Gate::Slow(_)),
            "the app is at 80 % while the org is at 1 %"
        );
        l.observe(Some(
            "api-usage=10/1000; per-app-api-usage=238/250(appName=gf)",
        ));
        assert_eq!(closed_for(&l.gate()), Some(Duration::from_secs(300)));
        assert_eq!(
            l.standing(),
            "the connected app gf's API allocation is nearly spent (238/250)"
        );
        assert_eq!(l.usage(), (10, 1000), "the org's own figure is kept apart");
        assert_eq!(l.app_usage(), app(238, 250, "gf"));
        tokio::time::advance(Duration::from_secs(301)).await;
        let probe = l.gate();
        assert!(is_probe(&probe));
        // The org's figure is the tighter one now.
        assert!(l.observe(Some(
            "api-usage=960/1000; per-app-api-usage=1/250(appName=gf)"
        )));
        drop(probe);
        assert!(closed_for(&l.gate()).is_some());
        assert_eq!(
            l.standing(),
            "the org's daily API limit is nearly spent (960/1000)"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_header_without_the_app_field_clears_the_app_figure() {
        let l = limits();
        l.observe(Some(
            "api-usage=10/1000; per-app-api-usage=210/250(appName=gf)",
        ));
        assert!(matches!(l.gate(), Gate::Slow(_)));
        l.observe(Some("api-usage=11/1000; api-bursts=1/750"));
        assert_eq!(l.app_usage(), None);
        assert!(matches!(l.gate(), Gate::Open));
    }

    #[tokio::test(start_paused = true)]
    async fn semicolon_separated_headers_engage_the_soft_and_hard_limits() {
        let l = limits();
        assert!(l.observe(Some("api-usage=80/100; api-bursts=1/750")));
        assert!(matches!(l.gate(), Gate::Slow(_)));
        assert!(l.observe(Some("api-usage=96/100; api-bursts=1/750")));
        assert_eq!(closed_for(&l.gate()), Some(Duration::from_secs(300)));
        assert_eq!(l.usage(), (96, 100));
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
