//! Routing: event type → a connector action with per-route settings.
//!
//! A pattern is an exact type (`order.created`) or a prefix ending in `.*`
//! (`order.*` matches `order.created` and `order.line.added`, not `order`).
//! Exact matches win over prefixes, and longer prefixes over shorter ones, so
//! the order of routes in the config does not matter.

use crate::rate_limit::RateLimitRef;
use crate::retry::{RetryOverrides, RetrySettings};
use crate::template::Template;
use serde::Deserialize;
use std::time::Duration;

/// A type pattern, checked at config load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TypePattern {
    /// Matches one type.
    Exact(String),
    /// Matches every type that starts with this prefix (which ends in `.`).
    Prefix(String),
}

impl TypePattern {
    /// Parses `order.created` or `order.*`.
    pub fn parse(text: &str) -> Result<Self, crate::config::ConfigError> {
        if text.is_empty() {
            return Err("event type pattern is empty".into());
        }
        match text.strip_suffix('*') {
            Some(prefix) if prefix.is_empty() || prefix.ends_with('.') => {
                if prefix.contains('*') {
                    Err(format!("pattern {text:?}: only one trailing .* is allowed").into())
                } else {
                    Ok(Self::Prefix(prefix.to_owned()))
                }
            }
            Some(_) => {
                Err(format!("pattern {text:?}: a wildcard must follow a dot, as in order.*").into())
            }
            None if text.contains('*') => {
                Err(format!("pattern {text:?}: * may only end a pattern").into())
            }
            None => Ok(Self::Exact(text.to_owned())),
        }
    }

    fn matches(&self, event_type: &str) -> bool {
        match self {
            Self::Exact(t) => t == event_type,
            Self::Prefix(p) => event_type.starts_with(p.as_str()) && event_type.len() > p.len(),
        }
    }

    /// Higher wins: exact beats any prefix, longer prefix beats shorter.
    fn specificity(&self) -> usize {
        match self {
            Self::Exact(_) => usize::MAX,
            Self::Prefix(p) => p.len(),
        }
    }
}

/// The shortest call timeout a route may set.
const MIN_TIMEOUT: Duration = Duration::from_millis(1);
/// The longest call timeout a route may set.
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

/// One route as written in the config (`[[routes]]`).
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig<A> {
    /// Name used in logs and the `gluefleet-route` attribute (default: the type pattern).
    pub name: Option<String>,
    /// Event type pattern: exact, or `prefix.*`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Timeout of one call to the target (default 10 s).
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Duration>,
    /// Retry overrides for this route; keys left out keep `[delivery.retry]`.
    #[serde(default)]
    pub retry: Option<RetryOverrides>,
    /// Which rate-limit bucket this route spends, and the key within it.
    #[serde(default)]
    pub rate_limit: Option<RateLimitRef>,
    /// Event field holding the idempotency key (default: CloudEvents source+id,
    /// else the Pub/Sub message id).
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// Whose credential the call needs: a template of the user to act as
    /// (`"{data.organizer}"`), for `[auth]` kinds that act per user
    /// (domain-wide delegation). Default: the provider's own credential.
    /// A route with a subject and a rate limit without `key` meters each
    /// subject on its own: vendors that act per user count quota per user.
    #[serde(default)]
    pub subject: Option<Template>,
    /// The topic this route reports each outcome to: a `gluefleet.delivered`
    /// event with what the target answered, or `gluefleet.dead-lettered`
    /// with the reason. The original is acked only once its result is
    /// published. Default: no result events.
    #[serde(default)]
    pub results: Option<String>,
    /// The connector's action.
    pub action: A,
}

/// A route ready to use.
#[derive(Debug)]
pub struct Route<A> {
    /// The route's name.
    pub name: String,
    /// What it matches.
    pub pattern: TypePattern,
    /// Per-attempt call timeout.
    pub timeout: Duration,
    /// Retry settings (route override or the global default).
    pub retry: RetrySettings,
    /// Rate-limit bucket and key, if any.
    pub rate_limit: Option<RateLimitRef>,
    /// Idempotency key field, if configured.
    pub idempotency_key: Option<String>,
    /// The user to act as, if the route names one.
    pub subject: Option<Template>,
    /// The results topic (as configured), if the route reports outcomes.
    pub results: Option<String>,
    /// The connector's action, already validated by the connector.
    pub action: A,
}

/// All routes of a connector.
#[derive(Debug)]
pub struct RouteTable<A> {
    routes: Vec<Route<A>>,
}

impl<A> RouteTable<A> {
    /// Builds the table; `compile` turns each route's raw action into the
    /// connector's checked action. Errors name the route (`routes[2]`).
    pub fn build<R, E: Into<crate::config::ConfigError>>(
        raw: Vec<RouteConfig<R>>,
        default_retry: &RetrySettings,
        mut compile: impl FnMut(R) -> Result<A, E>,
    ) -> Result<Self, crate::config::ConfigError> {
        let mut routes = Vec::with_capacity(raw.len());
        for (i, r) in raw.into_iter().enumerate() {
            let at = |e: crate::config::ConfigError| {
                e.context(format!("routes[{i}] ({})", r.event_type))
            };
            let pattern = TypePattern::parse(&r.event_type).map_err(at)?;
            if routes.iter().any(|x: &Route<A>| x.pattern == pattern) {
                return Err(at("another route has the same type pattern".into()));
            }
            let timeout = r.timeout.unwrap_or(Duration::from_secs(10));
            crate::bounds::duration_within("timeout", timeout, MIN_TIMEOUT..=MAX_TIMEOUT)
                .map_err(at)?;
            let retry = r
                .retry
                .as_ref()
                .map_or_else(|| default_retry.clone(), |o| o.apply(default_retry));
            retry.validate().map_err(|e| at(e.context("retry")))?;
            let name = r.name.clone().unwrap_or_else(|| r.event_type.clone());
            let event_type = r.event_type.clone();
            let action = compile(r.action).map_err(|e| {
                e.into()
                    .context(format!("routes[{i}] ({event_type}): action"))
            })?;
            // Per-user quotas: a subject's calls are its own bucket key
            // unless the route chose a key.
            let rate_limit = r.rate_limit.map(|mut rl| {
                if rl.key.is_none() {
                    rl.key.clone_from(&r.subject);
                }
                rl
            });
            routes.push(Route {
                name,
                pattern,
                timeout,
                retry,
                rate_limit,
                idempotency_key: r.idempotency_key,
                subject: r.subject,
                results: r.results.filter(|t| !t.trim().is_empty()),
                action,
            });
        }
        Ok(Self { routes })
    }

    /// The most specific route for `event_type`, if any.
    pub fn find(&self, event_type: &str) -> Option<&Route<A>> {
        self.routes
            .iter()
            .filter(|r| r.pattern.matches(event_type))
            .max_by_key(|r| r.pattern.specificity())
    }

    /// All routes, in config order.
    pub fn iter(&self) -> impl Iterator<Item = &Route<A>> {
        self.routes.iter()
    }

    /// How many routes there are.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// True when no route is configured.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(t: &str) -> RouteConfig<String> {
        RouteConfig {
            name: None,
            event_type: t.into(),
            timeout: None,
            retry: None,
            rate_limit: None,
            idempotency_key: None,
            subject: None,
            results: None,
            action: t.into(),
        }
    }

    fn table(types: &[&str]) -> Result<RouteTable<String>, crate::ConfigError> {
        RouteTable::build(
            types.iter().map(|t| route(t)).collect(),
            &RetrySettings::default(),
            Ok::<_, crate::ConfigError>,
        )
    }

    #[test]
    fn exact_beats_prefix_and_longer_prefix_wins() {
        let t = table(&["order.*", "order.created", "order.line.*", "*"]).expect("valid");
        let hit = |ty: &str| t.find(ty).map(|r| r.action.clone());
        assert_eq!(hit("order.created").as_deref(), Some("order.created"));
        assert_eq!(hit("order.paid").as_deref(), Some("order.*"));
        assert_eq!(hit("order.line.added").as_deref(), Some("order.line.*"));
        assert_eq!(hit("invoice.sent").as_deref(), Some("*"));
    }

    #[test]
    fn route_retry_overrides_keep_the_global_settings() {
        let mut r = route("a");
        r.retry = Some(RetryOverrides {
            max_attempts: Some(2),
            ..RetryOverrides::default()
        });
        let global = RetrySettings {
            initial_backoff: std::time::Duration::from_millis(50),
            ..RetrySettings::default()
        };
        let t = RouteTable::build(vec![r], &global, Ok::<_, crate::ConfigError>).expect("valid");
        let got = &t.find("a").expect("route").retry;
        assert_eq!(
            (got.max_attempts, got.initial_backoff),
            (2, std::time::Duration::from_millis(50))
        );
    }

    #[test]
    fn unmatched_and_bare_prefix() {
        let t = table(&["order.*"]).expect("valid");
        assert!(t.find("order").is_none());
        assert!(t.find("orders.created").is_none());
    }

    #[test]
    fn bad_patterns_name_the_route() {
        for bad in ["order*", "or*der", "", "a.*.*"] {
            let err = table(&["ok", bad]).expect_err("invalid");
            assert!(err.message().starts_with("routes[1]"), "{err}");
        }
        let err = table(&["a.b", "a.b"]).expect_err("duplicate");
        assert!(err.message().contains("same type pattern"), "{err}");
    }
}
