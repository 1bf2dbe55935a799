//! The per-message path, and the order of its layers.
//!
//! ```text
//! decode → route → idempotency → deadline → retry → rate limit → auth → connector.call
//! ```
//!
//! - Idempotency is outermost so a duplicate costs no quota and no retries.
//! - The deadline (the retry budget) bounds everything inside it, so a message
//!   never outlives its lease in process.
//! - Retry is outside the rate limiter: every attempt takes a cell, because
//!   vendors count retries against quota.
//! - Auth is innermost: a refreshed credential is picked up by the next attempt.
//!
//! [`Pipeline::process`] turns one message into one [`Outcome`]; the runtime
//! carries it out.

use crate::answer::Answer;
use crate::auth::TokenProvider;
use crate::connector::{Connector, Delivered, Request};
use crate::error::ConnectorError;
use crate::event::{Event, RawMessage, decode};
use crate::idempotency::{Claim, IdempotencyStore, key};
use crate::observe::{CallEnd, Observe, StoreOp, Unobserved};
use crate::outcome::{AckReason, NackReason, Outcome};
use crate::rate_limit::{MustWait, RateLimits};
use crate::results::ResultFacts;
use crate::retry::{Decision, RetryPolicy, RetrySettings};
use crate::route::{Route, RouteTable};
use crate::trace::TraceContext;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// What to do with an event whose type matches no route.
#[derive(Clone, Copy, Debug, Default, Deserialize, schemars::JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Unroutable {
    /// Publish to the dead-letter topic with class `unroutable` (default).
    #[default]
    DeadLetter,
    /// Ack and log a warning.
    Drop,
}

/// `[delivery]`: how messages are handled, whatever the connector.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DeliverySettings {
    /// Unmatched event types: `dead-letter` (default) or `drop`.
    pub unroutable: Unroutable,
    /// On this delivery attempt a message that still fails is dead-lettered
    /// instead of nacked (default 10). Needs a dead-letter policy on the
    /// subscription for Pub/Sub to count attempts.
    pub max_delivery_attempts: u32,
    /// Default retry settings for routes.
    pub retry: RetrySettings,
    /// Idempotency settings.
    pub idempotency: IdempotencySettings,
    /// Largest message accepted, data and attributes together (default
    /// 1 MiB, [`DEFAULT_MAX_EVENT_BYTES`]; 1 KiB to Pub/Sub's 10 MB). A larger
    /// one is dead-lettered as `poison` before it is parsed: a JSON event
    /// takes several times its size in memory once decoded (up to about 40×
    /// for an array of small numbers, more with a jq mapping), so one huge
    /// event could take the instance down with every message it holds.
    pub max_event_bytes: usize,
}

/// The default of `delivery.max_event_bytes`: 1 MiB.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1024 * 1024;

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            unroutable: Unroutable::DeadLetter,
            max_delivery_attempts: 10,
            retry: RetrySettings::default(),
            idempotency: IdempotencySettings::default(),
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
        }
    }
}

/// `[delivery.idempotency]`.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IdempotencySettings {
    /// Turn the store off (default on).
    pub enabled: bool,
    /// How long a claim holds before another delivery may take over
    /// (default 2 min). Must cover the longest delivery, every route's retry
    /// budget plus its call timeout plus [`LEASE_MARGIN`], or a second copy
    /// of an event would be delivered beside the first: checked at load.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub lease: Duration,
    /// How long a done key is remembered (default 24 h).
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub ttl: Duration,
    /// Where claims live: `memory` (one process, the default) or `firestore`
    /// (shared by every instance of the connector).
    pub store: StoreKind,
    /// Firestore collection of the ledger (default `gluefleet-idempotency-<connector>`).
    pub collection: Option<String>,
    /// Firestore project of the ledger (default: `pubsub.project`).
    pub project: Option<String>,
    /// Firestore database of the ledger (default `(default)`).
    pub database: String,
    /// `memory`: the most keys remembered (default 400,000, about 64 MB).
    /// Past it the oldest done keys are evicted, so memory stays bounded
    /// whatever the message rate times the TTL.
    pub max_keys: usize,
}

/// Which idempotency store to use.
#[derive(Clone, Copy, Debug, Default, Deserialize, schemars::JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum StoreKind {
    /// In this process only.
    #[default]
    Memory,
    /// A Firestore collection shared by the fleet.
    Firestore,
}

impl Default for IdempotencySettings {
    fn default() -> Self {
        Self {
            enabled: true,
            lease: Duration::from_secs(120),
            ttl: Duration::from_secs(24 * 3600),
            store: StoreKind::Memory,
            collection: None,
            project: None,
            database: "(default)".into(),
            max_keys: crate::idempotency::memory::DEFAULT_MAX_KEYS,
        }
    }
}

/// The delay used when the idempotency store cannot be reached.
const STORE_RETRY_DELAY: Duration = Duration::from_secs(5);

/// How soon a duplicate of an in-flight event looks again.
const IN_FLIGHT_RECHECK: Duration = Duration::from_secs(2);

/// What a claim's lease must hold beyond a route's retry budget plus one call
/// timeout: the credential fetch before an attempt, the claim and completion
/// round trips to the store, and clock skew between instances sharing the
/// Firestore ledger.
pub const LEASE_MARGIN: Duration = Duration::from_secs(10);

/// The dead-letter class of a call that may have taken effect, for an
/// operation that is not idempotent.
pub const OUTCOME_UNKNOWN: &str = "outcome-unknown";

/// How long past an attempt's deadline the pipeline waits for the connector
/// to report how its call ended, before giving up on it.
const ANSWER_GRACE: Duration = Duration::from_millis(250);

/// One connector's message path.
#[derive(Debug)]
pub struct Pipeline<C: Connector> {
    connector: C,
    routes: RouteTable<C::Action>,
    store: Option<Arc<dyn IdempotencyStore>>,
    limits: RateLimits,
    auth: Option<Arc<dyn TokenProvider>>,
    settings: DeliverySettings,
    observer: Arc<dyn Observe>,
}

/// One message's outcome with what metrics and logs say of it.
#[derive(Clone, Debug, PartialEq)]
pub struct Processed<'a> {
    /// What to do with the message.
    pub outcome: Outcome,
    /// The route that took it, empty when none did (poison, unroutable).
    pub route: &'a str,
    /// Calls made to the target for this delivery.
    pub attempts: u32,
    /// What the route's result event says, when the route has `results`
    /// and the outcome is an ack or a dead letter (a nack reports nothing:
    /// the message is not finished).
    pub result: Option<ResultFacts>,
}

/// Why a delivery did not succeed, after the retry loop.
struct Failure {
    error: ConnectorError,
    decision: Decision,
    nack_reason: NackReason,
    attempts: u32,
}

impl<C: Connector> Pipeline<C> {
    /// Puts the parts together. Checks that every route's rate-limit bucket
    /// exists, and that the idempotency lease outlasts every route's longest
    /// delivery (see [`lease_covers`]).
    pub fn new(
        connector: C,
        routes: RouteTable<C::Action>,
        store: Option<Arc<dyn IdempotencyStore>>,
        limits: RateLimits,
        auth: Option<Arc<dyn TokenProvider>>,
        settings: DeliverySettings,
    ) -> Result<Self, crate::config::ConfigError> {
        for r in routes.iter() {
            if let Some(rl) = &r.rate_limit {
                limits
                    .check_ref(rl)
                    .map_err(|e| format!("route {}: {e}", r.name))?;
            }
        }
        for r in routes.iter() {
            if let Some(subject) = &r.subject
                && !auth.as_ref().is_some_and(|a| a.acts_as_subjects())
            {
                return Err(format!(
                    "route {} acts as subject {:?}, but [auth] {}: set an [auth] kind that acts per user (domain-wide delegation)",
                    r.name,
                    subject.as_str(),
                    if auth.is_some() { "cannot act as another user" } else { "is not set" }
                )
                .into());
            }
        }
        let store = if settings.idempotency.enabled {
            store
        } else {
            None
        };
        if store.is_none()
            && let Some(r) = routes
                .iter()
                .find(|r| connector.requires_idempotency(&r.action))
        {
            return Err(format!(
                "route {}: its action cannot be repeated safely and needs the idempotency store,                  but delivery.idempotency.enabled = false; turn it on (store = \"firestore\" when                  more than one instance runs)",
                r.name
            )
            .into());
        }
        if store.is_some() {
            lease_covers(settings.idempotency.lease, &routes)?;
        }
        if settings.idempotency.max_keys == 0 {
            return Err("delivery.idempotency.max_keys must be at least 1".into());
        }
        Ok(Self {
            connector,
            routes,
            store,
            limits,
            auth,
            settings,
            observer: Arc::new(Unobserved),
        })
    }

    /// Reports calls, retries, rate-limit waits and store operations to
    /// `observer` (default: [`Unobserved`], nothing recorded).
    #[must_use]
    pub fn with_observer(mut self, observer: Arc<dyn Observe>) -> Self {
        self.observer = observer;
        self
    }

    /// The connector.
    pub fn connector(&self) -> &C {
        &self.connector
    }

    /// The credential provider, if any.
    pub fn auth(&self) -> Option<&Arc<dyn TokenProvider>> {
        self.auth.as_ref()
    }

    /// The delivery settings (`[delivery]`), for `check`.
    pub fn settings(&self) -> &DeliverySettings {
        &self.settings
    }

    /// The routes.
    pub fn routes(&self) -> &RouteTable<C::Action> {
        &self.routes
    }

    /// The idempotency store's counters (the memory store's evictions), for
    /// the job summary.
    pub fn store_stats(&self) -> Vec<(&'static str, u64)> {
        self.store.as_ref().map(|s| s.stats()).unwrap_or_default()
    }

    /// Processes one message into one outcome. Never panics on bad input.
    pub async fn process(&self, raw: &RawMessage) -> Outcome {
        self.process_by(raw, None).await
    }

    /// [`process`](Self::process), with the outcome due by `answer_by`
    /// when the caller has a deadline of its own (a push request, which
    /// Pub/Sub counts as failed once its ack deadline passes). Retries and
    /// waits stay within the earlier of it and the route's retry budget: a
    /// `Retry-After` or backoff that would end later becomes a nack now.
    pub async fn process_by(&self, raw: &RawMessage, answer_by: Option<Instant>) -> Outcome {
        self.process_reported(raw, answer_by, None).await.outcome
    }

    /// [`process_by`](Self::process_by), with the route and the number of
    /// calls made, for the runtime's metrics and its line per message.
    /// `trace` is the message's trace context, handed to the connector
    /// ([`Request::trace`]) so its call continues the publisher's trace.
    pub async fn process_reported(
        &self,
        raw: &RawMessage,
        answer_by: Option<Instant>,
        trace: Option<&TraceContext>,
    ) -> Processed<'_> {
        let mut processed = Processed {
            outcome: Outcome::Ack(AckReason::Dropped),
            route: "",
            attempts: 0,
            result: None,
        };
        processed.outcome = self
            .process_into(raw, answer_by, trace, &mut processed)
            .await;
        processed
    }

    async fn process_into<'a>(
        &'a self,
        raw: &RawMessage,
        answer_by: Option<Instant>,
        trace: Option<&TraceContext>,
        report: &mut Processed<'a>,
    ) -> Outcome {
        let size = raw.size();
        if size > self.settings.max_event_bytes {
            return Outcome::dead_letter(
                "poison",
                format!(
                    "message is {size} bytes (data and attributes), more than \
                     delivery.max_event_bytes ({}); it was not parsed",
                    self.settings.max_event_bytes
                ),
                None,
                "",
                0,
            );
        }
        let event = match decode(raw) {
            Ok(e) => e,
            Err(e) => return Outcome::dead_letter("poison", e.to_string(), None, "", 0),
        };
        let Some(route) = self.routes.find(&event.event_type) else {
            return match self.settings.unroutable {
                Unroutable::Drop => {
                    tracing::warn!(event_type = %event.event_type, message_id = %event.message_id, "No route for this event type; dropped.");
                    Outcome::Ack(AckReason::Dropped)
                }
                Unroutable::DeadLetter => Outcome::dead_letter(
                    "unroutable",
                    format!("no route matches event type {:?}", event.event_type),
                    None,
                    "",
                    0,
                ),
            };
        };
        report.route = &route.name;
        let subject = match route.subject.as_ref().map(|t| subject_of(t, &event)) {
            None => None,
            Some(Ok(s)) => Some(s),
            Some(Err(e)) => {
                report.result = facts(C::NAME, route, event, String::new(), None, false);
                return Outcome::dead_letter(
                    e.class().as_str(),
                    e.to_string(),
                    None,
                    &route.name,
                    0,
                );
            }
        };
        let key = idempotency_key(C::NAME, &event, route);
        let idem = &self.settings.idempotency;
        let mut claim = None;
        if let Some(store) = &self.store {
            let started = Instant::now();
            let claimed = store.claim(&key, idem.lease).await;
            self.observer
                .store(StoreOp::Claim, started.elapsed(), claimed.is_ok());
            match claimed {
                Ok(Claim::Acquired(token)) => claim = Some((store, token)),
                Ok(Claim::Done { answer }) => {
                    let answer = answer.and_then(|a| stored_answer(&key, &a));
                    report.result = facts(C::NAME, route, event, key, answer, true);
                    return Outcome::Ack(AckReason::Duplicate);
                }
                Ok(Claim::InFlight { remaining }) => {
                    // Look again soon: the holder usually finishes well within its lease.
                    return Outcome::Nack {
                        delay: remaining.min(IN_FLIGHT_RECHECK),
                        reason: NackReason::InFlight,
                    };
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Idempotency store unavailable; message handed back.");
                    return Outcome::Nack {
                        delay: STORE_RETRY_DELAY,
                        reason: NackReason::StoreUnavailable,
                    };
                }
            }
        }
        let result = self
            .deliver(&event, route, &key, subject.as_deref(), answer_by, trace)
            .await;
        report.attempts = match &result {
            Ok((_, _, attempts)) => *attempts,
            Err(f) => f.attempts,
        };
        if let Some((store, token)) = claim {
            let started = Instant::now();
            let (op, stored) = match &result {
                Ok((_, answer, _)) => {
                    // Kept only for routes that publish results: the
                    // redelivery after a failed result publish needs it.
                    let kept = route
                        .results
                        .as_ref()
                        .map(|_| Value::Object(answer.clone()).to_string());
                    (
                        StoreOp::Complete,
                        store
                            .complete(&key, &token, idem.ttl, kept.as_deref())
                            .await,
                    )
                }
                Err(_) => (StoreOp::Release, store.release(&key, &token).await),
            };
            self.observer.store(op, started.elapsed(), stored.is_ok());
            if let Err(e) = stored {
                // The effect (or failure) stands; the lease runs out by itself.
                tracing::warn!(error = %e, key = %key, "Could not record the idempotency state.");
            }
        }
        match result {
            Ok((delivered, answer, _)) => {
                report.result = facts(C::NAME, route, event, key, Some(answer), false);
                Outcome::Ack(match delivered {
                    Delivered::AlreadyDone => AckReason::AlreadyDone,
                    _ => AckReason::Delivered,
                })
            }
            Err(f) => {
                let outcome = self.failure_outcome(f, &event, route);
                if matches!(outcome, Outcome::DeadLetter(_)) {
                    report.result = facts(C::NAME, route, event, key, None, false);
                }
                outcome
            }
        }
    }

    fn failure_outcome(&self, f: Failure, event: &Event, route: &Route<C::Action>) -> Outcome {
        let status = f.error.http_status();
        match f.decision {
            Decision::Nack(delay) => {
                let last = event.delivery_attempt.is_some_and(|a| {
                    u32::try_from(a).unwrap_or(0) >= self.settings.max_delivery_attempts
                });
                if last {
                    Outcome::dead_letter(
                        "max-attempts",
                        format!(
                            "still failing on delivery attempt {} of {} ({}): {}",
                            event.delivery_attempt.unwrap_or_default(),
                            self.settings.max_delivery_attempts,
                            f.error.class(),
                            f.error
                        ),
                        status,
                        &route.name,
                        f.attempts,
                    )
                } else {
                    Outcome::Nack {
                        delay,
                        reason: f.nack_reason,
                    }
                }
            }
            _ => Outcome::dead_letter(
                if f.error.is_outcome_unknown() {
                    OUTCOME_UNKNOWN
                } else {
                    f.error.class().as_str()
                },
                f.error.to_string(),
                status,
                &route.name,
                f.attempts,
            ),
        }
    }

    /// deadline → retry → rate limit → auth → call. On success, with what
    /// the target answered and the number of calls it took.
    async fn deliver(
        &self,
        event: &Event,
        route: &Route<C::Action>,
        key: &str,
        subject: Option<&str>,
        answer_by: Option<Instant>,
        trace: Option<&TraceContext>,
    ) -> Result<(Delivered, Map<String, Value>, u32), Failure> {
        let policy = RetryPolicy::new(route.retry.clone());
        let mut state = policy.start();
        let budget_ends = Instant::now() + route.retry.budget;
        let deadline = answer_by.map_or(budget_ends, |by| by.min(budget_ends));
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if let Some(rl) = &route.rate_limit {
                let wait = match self.limits.acquire(rl, event, remaining).await {
                    Ok(waited) => {
                        if !waited.is_zero() {
                            self.observer.rate_limit_wait(&rl.bucket, waited);
                        }
                        None
                    }
                    Err(MustWait(wait)) => Some(wait),
                };
                if let Some(wait) = wait {
                    return Err(Failure {
                        error: ConnectorError::rate_limited(
                            format!(
                                "local rate limit {:?} needs {wait:?}, more than the retry budget left",
                                rl.bucket
                            ),
                            Some(wait),
                        ),
                        decision: Decision::Nack(wait),
                        nack_reason: NackReason::RateLimited,
                        attempts: state.attempts(),
                    });
                }
            }
            policy.on_attempt(&mut state);
            let started = Instant::now();
            let result = self
                .attempt(
                    event,
                    route,
                    key,
                    subject,
                    state.attempts(),
                    deadline,
                    trace,
                )
                .await;
            self.observer.call(
                &route.name,
                started.elapsed(),
                match &result {
                    Ok(_) => CallEnd {
                        status: None,
                        class: None,
                        outcome_unknown: false,
                    },
                    Err((e, _)) => CallEnd {
                        status: e.http_status(),
                        class: Some(e.class()),
                        outcome_unknown: e.is_outcome_unknown(),
                    },
                },
            );
            let (error, credential) = match result {
                Ok((done, answer)) => return Ok((done, answer, state.attempts())),
                Err(e) => e,
            };
            if error.is_outcome_unknown() && !self.connector.is_idempotent(&route.action) {
                // The call may have taken effect, and sending it again could
                // repeat that effect: no retry, neither here nor through a
                // redelivery. Someone checks the target and replays it if need be.
                tracing::warn!(route = %route.name, attempt = state.attempts(), error = %error, "Outcome unknown for an operation that is not idempotent; not retried.");
                return Err(Failure {
                    error,
                    decision: Decision::DeadLetter,
                    nack_reason: NackReason::Retryable,
                    attempts: state.attempts(),
                });
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            let decision = policy.decide(&mut state, &error, remaining);
            tracing::debug!(route = %route.name, attempt = state.attempts(), class = %error.class(), ?decision, error = %error, "Attempt failed.");
            match decision {
                Decision::RetryAfter(wait) => {
                    self.observer.retry(&route.name, error.class());
                    tokio::time::sleep(wait).await;
                }
                Decision::RefreshAndRetry => {
                    self.observer.retry(&route.name, error.class());
                    if let (Some(auth), Some(c)) = (&self.auth, &credential) {
                        auth.invalidate(c);
                    }
                }
                Decision::Nack(_) | Decision::DeadLetter => {
                    let nack_reason = if error.is_rate_limited() {
                        NackReason::RateLimited
                    } else {
                        NackReason::Retryable
                    };
                    let error =
                        if matches!(decision, Decision::DeadLetter) && error.is_unauthorized() {
                            error.into_permanent()
                        } else {
                            error
                        };
                    return Err(Failure {
                        error,
                        decision,
                        nack_reason,
                        attempts: state.attempts(),
                    });
                }
            }
        }
    }

    /// auth → call, both within the attempt's timeout: a token endpoint that
    /// never answers costs this attempt (a transient failure), not the
    /// message's lease.
    #[expect(
        clippy::too_many_arguments,
        reason = "one attempt's whole context, each part borrowed from the delivery loop"
    )]
    async fn attempt(
        &self,
        event: &Event,
        route: &Route<C::Action>,
        key: &str,
        subject: Option<&str>,
        attempt: u32,
        deadline: Instant,
        trace: Option<&TraceContext>,
    ) -> Result<(Delivered, Map<String, Value>), (ConnectorError, Option<crate::auth::Credential>)>
    {
        let started = Instant::now();
        let remaining = deadline.saturating_duration_since(started);
        let timeout = route.timeout.min(remaining).max(Duration::from_millis(100));
        let until = started + timeout;
        let credential = match &self.auth {
            Some(auth) => match tokio::time::timeout_at(until, async {
                match subject {
                    Some(s) => auth.credential_for(s).await,
                    None => auth.credential().await,
                }
            })
            .await
            {
                Ok(Ok(c)) => Some(c),
                Ok(Err(e)) => return Err((ConnectorError::from(e), None)),
                Err(_) => {
                    return Err((
                        ConnectorError::transient(format!(
                            "getting a credential: no answer within {timeout:?}"
                        )),
                        None,
                    ));
                }
            },
            None => None,
        };
        let answer = Answer::new();
        let request = Request {
            answer: &answer,
            event,
            route,
            idempotency_key: key,
            credential: credential.as_ref(),
            subject,
            timeout: until.saturating_duration_since(Instant::now()),
            deadline: until,
            attempt,
            trace,
        };
        // The connector keeps `deadline` itself (its HTTP timeout, or its
        // batcher cutting off the request) and reports what it knows: never
        // sent, or cut off after sending. This is the backstop for one that
        // does not; its call may have reached the target.
        // Boxed: the connector's future (its HTTP client's, for most) is
        // kilobytes, and every future that awaits this one would carry its
        // size and copy it as it is built, once per message.
        let cf = Box::pin(self.connector.call(request));
        match tokio::time::timeout_at(until + ANSWER_GRACE, cf).await {
            Ok(Ok(done)) => Ok((done, answer.take())),
            Ok(Err(e)) => Err((e, credential)),
            Err(_) => Err((
                ConnectorError::transient(format!("no answer within {timeout:?}"))
                    .with_outcome_unknown(),
                credential,
            )),
        }
    }
}

/// The facts of `route`'s result event for `event`, when the route has a
/// results topic. Takes the event: it is the last thing done with it.
fn facts<A>(
    connector: &'static str,
    route: &Route<A>,
    event: Event,
    key: String,
    answer: Option<Map<String, Value>>,
    replayed: bool,
) -> Option<ResultFacts> {
    let topic = route.results.clone()?;
    Some(ResultFacts {
        topic,
        connector,
        route: route.name.clone(),
        key,
        event_id: event.id,
        event_source: event.source,
        event_type: event.event_type,
        event_subject: event.subject,
        message_id: event.message_id,
        data: event.data,
        answer,
        replayed,
    })
}

/// An answer the store kept, read back. One that no longer parses (written
/// by something else) is reported and left out: the result is still
/// published, without it.
fn stored_answer(key: &str, text: &str) -> Option<Map<String, Value>> {
    match serde_json::from_str(text) {
        Ok(Value::Object(m)) => Some(m),
        _ => {
            tracing::warn!(key = %key, "The idempotency store's answer is not a JSON object; the result goes without it.");
            None
        }
    }
}

/// The longest subject accepted: an email address is at most 320 bytes.
const MAX_SUBJECT_BYTES: usize = 320;

/// The user a route acts as for `event`: its `subject` rendered as plain
/// text. An event without the field, or with a value that cannot name a user
/// (empty, blank, control characters, longer than an email address can be),
/// is a permanent error naming the field: no credential could be right for it.
fn subject_of(
    template: &crate::template::Template,
    event: &Event,
) -> Result<String, ConnectorError> {
    let subject = template.render_with(event, |text, _| {
        if text.trim().is_empty() {
            Err("the subject is blank".into())
        } else if text.chars().any(|c| c.is_control() || c.is_whitespace()) {
            Err("the subject contains whitespace or control characters".into())
        } else {
            Ok(text.to_owned())
        }
    })?;
    if subject.len() > MAX_SUBJECT_BYTES {
        return Err(ConnectorError::permanent(format!(
            "subject {:?}: {} bytes, more than an email address can be ({MAX_SUBJECT_BYTES})",
            template.as_str(),
            subject.len()
        )));
    }
    Ok(subject)
}

/// Refuses a lease that a delivery on some route could outlast: the claim
/// would run out while the call is still running, and a second copy of the
/// event would be delivered beside it. A delivery takes at most the route's
/// retry budget (backoff sleeps and attempts all fit in it) plus one call
/// timeout (the last attempt may start just before the budget ends), plus
/// [`LEASE_MARGIN`].
pub fn lease_covers<A>(
    lease: Duration,
    routes: &RouteTable<A>,
) -> Result<(), crate::config::ConfigError> {
    let longest = routes
        .iter()
        .map(|r| {
            let needed = r.retry.budget.saturating_add(r.timeout);
            (r, needed.saturating_add(LEASE_MARGIN))
        })
        .max_by_key(|(_, needed)| *needed);
    match longest {
        Some((r, needed)) if lease < needed => {
            let d = |d: Duration| humantime::format_duration(d).to_string();
            Err(format!(
                "delivery.idempotency.lease ({}) is shorter than a delivery on route {} can take: \
                 its retry.budget ({}) + timeout ({}) + {} margin = {}. A claim must outlast its \
                 delivery; raise delivery.idempotency.lease to at least {}, or lower that route's \
                 retry.budget or timeout",
                d(lease),
                r.name,
                d(r.retry.budget),
                d(r.timeout),
                d(LEASE_MARGIN),
                d(needed),
                d(needed),
            )
            .into())
        }
        _ => Ok(()),
    }
}

/// The idempotency key of an event on a route (spelled by [`key`]):
///
/// - the route's `idempotency_key` field, scoped by connector, route and
///   event type, when the event has it with a value: a null, an empty or
///   blank string, an empty array or object count as missing (they would
///   make every such event one effect);
/// - else CloudEvents `source` + `id`;
/// - else an envelope's `source` + `id`, when it has an `id` of its own;
/// - else the Pub/Sub message id.
pub fn idempotency_key<A>(connector: &str, event: &Event, route: &Route<A>) -> String {
    if let Some(field) = &route.idempotency_key
        && let Some(v) = event.lookup(field)
    {
        let text = match v.as_ref() {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) => (!s.trim().is_empty()).then(|| s.clone()),
            serde_json::Value::Array(a) if a.is_empty() => None,
            serde_json::Value::Object(o) if o.is_empty() => None,
            other => Some(other.to_string()),
        };
        if let Some(text) = text {
            return key::configured(connector, &route.name, &event.event_type, &text);
        }
        tracing::debug!(field = %field, message_id = %event.message_id, "Idempotency key field is empty; using the event's id.");
    }
    if event.format.is_cloudevents() {
        return key::cloudevent(&event.source, &event.id);
    }
    if !event.id.is_empty() && event.id != event.message_id {
        return key::envelope(&event.source, &event.id);
    }
    key::message(&event.message_id)
}
