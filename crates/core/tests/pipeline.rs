//! The status → outcome table, end to end through the pipeline, on paused time.

use gluefleet_core::auth::{AuthError, Credential, TokenProvider};
use gluefleet_core::idempotency::MemoryStore;
use gluefleet_core::outcome::{AckReason, NackReason, Outcome};
use gluefleet_core::rate_limit::RateLimits;
use gluefleet_core::route::{RouteConfig, RouteTable};
use gluefleet_core::{
    Connector, ConnectorError, Delivered, DeliverySettings, Pipeline, RawMessage, Request,
};
use secrecy::SecretString;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

type Answer = Result<Delivered, ConnectorError>;

/// Answers from a script, then succeeds; records when each call came.
#[derive(Debug, Default)]
struct Scripted {
    script: Mutex<VecDeque<Answer>>,
    calls: Mutex<Vec<(Instant, Option<u64>)>>,
}

impl Scripted {
    fn new(script: Vec<Answer>) -> Self {
        Self {
            script: Mutex::new(script.into()),
            calls: Mutex::default(),
        }
    }
    fn calls(&self) -> Vec<(Instant, Option<u64>)> {
        self.calls.lock().expect("lock").clone()
    }
}

#[derive(Debug)]
struct Handle(Arc<Scripted>);

impl Connector for Handle {
    type Action = ();
    const NAME: &'static str = "scripted";
    async fn call(&self, r: Request<'_, ()>) -> Answer {
        self.0
            .calls
            .lock()
            .expect("lock")
            .push((Instant::now(), r.credential.map(Credential::generation)));
        self.0
            .script
            .lock()
            .expect("lock")
            .pop_front()
            .unwrap_or(Ok(Delivered::Applied))
    }
    async fn check(&self, _: Option<&Credential>) -> Result<String, ConnectorError> {
        Ok("ok".into())
    }
}

#[derive(Debug, Default)]
struct CountingAuth {
    generation: AtomicU64,
}

#[async_trait::async_trait]
impl TokenProvider for CountingAuth {
    async fn credential(&self) -> Result<Credential, AuthError> {
        let g = self.generation.load(Ordering::SeqCst);
        Ok(Credential::new(
            http::header::AUTHORIZATION,
            SecretString::from(format!("Bearer t{g}")),
            g,
        ))
    }
    fn invalidate(&self, stale: &Credential) {
        let _ = self.generation.compare_exchange(
            stale.generation(),
            stale.generation() + 1,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
    }
}

fn pipeline(
    script: Vec<Answer>,
    auth: Option<Arc<dyn TokenProvider>>,
) -> (Pipeline<Handle>, Arc<Scripted>) {
    let connector = Arc::new(Scripted::new(script));
    let route: RouteConfig<toml::Value> = toml::from_str(
        r#"
        type = "order.*"
        action = {}
        "#,
    )
    .expect("route config");
    let settings = DeliverySettings::default();
    let routes = RouteTable::build(vec![route], &settings.retry, |_| {
        Ok::<_, gluefleet_core::ConfigError>(())
    })
    .expect("routes");
    let limits = RateLimits::new(&BTreeMap::new()).expect("limits");
    let p = Pipeline::new(
        Handle(connector.clone()),
        routes,
        Some(Arc::new(MemoryStore::new())),
        limits,
        auth,
        settings,
    )
    .expect("pipeline");
    (p, connector)
}

fn message(id: &str, body: &str) -> RawMessage {
    RawMessage {
        data: body.as_bytes().to_vec(),
        message_id: id.into(),
        delivery_attempt: Some(1),
        ..RawMessage::default()
    }
}

fn order(id: &str) -> RawMessage {
    let body = format!(
        r#"{{"specversion":"1.0","id":"{id}","source":"/erp","type":"order.created","data":{{}}}}"#
    );
    message(&format!("m-{id}"), &body)
}

#[tokio::test(start_paused = true)]
async fn two_503s_then_200_is_acked() {
    let (p, c) = pipeline(
        vec![
            Err(ConnectorError::from_status(503, "down", None)),
            Err(ConnectorError::from_status(503, "down", None)),
        ],
        None,
    );
    assert_eq!(
        p.process(&order("1")).await,
        Outcome::Ack(AckReason::Delivered)
    );
    assert_eq!(c.calls().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_400_is_dead_lettered_with_its_status() {
    let (p, c) = pipeline(
        vec![Err(ConnectorError::from_status(
            400,
            "total is required",
            None,
        ))],
        None,
    );
    let Outcome::DeadLetter(dl) = p.process(&order("1")).await else {
        panic!("expected a dead letter")
    };
    assert_eq!(
        (dl.class.as_str(), dl.http_status, dl.attempts),
        ("permanent", Some(400), 1)
    );
    assert!(dl.error.contains("total is required"));
    assert_eq!(dl.route, "order.*");
    assert_eq!(c.calls().len(), 1, "never retried");
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_waited_before_the_next_call() {
    let (p, c) = pipeline(
        vec![Err(ConnectorError::from_status(
            429,
            "slow down",
            Some(Duration::from_secs(2)),
        ))],
        None,
    );
    assert_eq!(
        p.process(&order("1")).await,
        Outcome::Ack(AckReason::Delivered)
    );
    let calls = c.calls();
    assert_eq!(calls.len(), 2);
    assert!(
        calls[1].0 - calls[0].0 >= Duration::from_secs(2),
        "next call not before Retry-After"
    );
}

#[tokio::test(start_paused = true)]
async fn long_retry_after_becomes_a_delayed_nack() {
    let (p, c) = pipeline(
        vec![Err(ConnectorError::from_status(
            429,
            "quota",
            Some(Duration::from_secs(45)),
        ))],
        None,
    );
    assert_eq!(
        p.process(&order("1")).await,
        Outcome::Nack {
            delay: Duration::from_secs(45),
            reason: NackReason::RateLimited
        }
    );
    assert_eq!(c.calls().len(), 1);
    // Released, so the redelivery may claim it.
    assert_eq!(
        p.process(&order("1")).await,
        Outcome::Ack(AckReason::Delivered)
    );
}

#[tokio::test(start_paused = true)]
async fn a_wait_past_the_callers_deadline_becomes_a_nack_now() {
    let quota = || {
        vec![Err(ConnectorError::from_status(
            429,
            "quota",
            Some(Duration::from_secs(5)),
        ))]
    };
    // Without a deadline of its own, the 5 s wait fits the retry budget.
    let (p, c) = pipeline(quota(), None);
    assert_eq!(
        p.process(&order("1")).await,
        Outcome::Ack(AckReason::Delivered)
    );
    assert_eq!(c.calls().len(), 2);

    // A push request due in 3 s: the same wait would answer too late.
    let (p, c) = pipeline(quota(), None);
    let started = Instant::now();
    let outcome = p
        .process_by(&order("1"), Some(started + Duration::from_secs(3)))
        .await;
    assert!(
        matches!(
            outcome,
            Outcome::Nack {
                reason: NackReason::RateLimited,
                ..
            }
        ),
        "{outcome:?}"
    );
    assert_eq!(c.calls().len(), 1, "no call after the deadline");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered before its deadline, not after the wait"
    );
}

#[tokio::test(start_paused = true)]
async fn transient_until_the_budget_ends_is_nacked_then_dead_lettered_on_the_last_attempt() {
    let down = || Err(ConnectorError::from_status(503, "down", None));
    let (p, c) = pipeline((0..20).map(|_| down()).collect(), None);
    let started = Instant::now();
    let Outcome::Nack { delay, reason } = p.process(&order("1")).await else {
        panic!("expected a nack")
    };
    assert_eq!(reason, NackReason::Retryable);
    assert!(
        delay > Duration::ZERO && delay <= Duration::from_secs(10),
        "{delay:?}"
    );
    assert_eq!(c.calls().len(), 5, "max_attempts");
    assert!(
        started.elapsed() <= Duration::from_secs(30),
        "within the budget"
    );
    let mut last = order("1");
    last.delivery_attempt = Some(10);
    let Outcome::DeadLetter(dl) = p.process(&last).await else {
        panic!("expected a dead letter")
    };
    assert_eq!(dl.class, "max-attempts");
    assert!(dl.error.contains("attempt 10 of 10"), "{}", dl.error);
}

#[tokio::test(start_paused = true)]
async fn unauthorized_refreshes_once_then_dead_letters() {
    let auth: Arc<dyn TokenProvider> = Arc::new(CountingAuth::default());
    let (p, c) = pipeline(
        vec![Err(ConnectorError::from_status(401, "expired", None))],
        Some(auth.clone()),
    );
    assert_eq!(
        p.process(&order("1")).await,
        Outcome::Ack(AckReason::Delivered)
    );
    let gens: Vec<_> = c.calls().iter().map(|x| x.1).collect();
    assert_eq!(
        gens,
        [Some(0), Some(1)],
        "second call carries the refreshed credential"
    );

    let (p, c) = pipeline(
        vec![
            Err(ConnectorError::from_status(401, "bad", None)),
            Err(ConnectorError::from_status(401, "bad", None)),
        ],
        Some(Arc::new(CountingAuth::default())),
    );
    let Outcome::DeadLetter(dl) = p.process(&order("2")).await else {
        panic!("expected a dead letter")
    };
    assert_eq!((dl.class.as_str(), dl.attempts), ("permanent", 2));
    assert_eq!(c.calls().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn same_cloudevents_id_twice_has_one_effect() {
    let (p, c) = pipeline(vec![], None);
    assert_eq!(
        p.process(&order("same")).await,
        Outcome::Ack(AckReason::Delivered)
    );
    let mut again = order("same");
    again.message_id = "another-message".into();
    assert_eq!(p.process(&again).await, Outcome::Ack(AckReason::Duplicate));
    assert_eq!(c.calls().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn poison_and_unroutable_are_dead_lettered_without_a_call() {
    let (p, c) = pipeline(vec![], None);
    let Outcome::DeadLetter(dl) = p.process(&message("m", "not json")).await else {
        panic!("poison")
    };
    assert_eq!(dl.class, "poison");
    let Outcome::DeadLetter(dl) = p
        .process(&message("m2", r#"{"type":"invoice.sent","data":{}}"#))
        .await
    else {
        panic!("unroutable")
    };
    assert_eq!(dl.class, "unroutable");
    assert!(dl.error.contains("invoice.sent"));
    assert!(c.calls().is_empty());
}

/// Records an answer on each call, as a connector does with what the
/// target said (a record id); refuses events whose id starts with `bad`.
#[derive(Debug)]
struct Answering(Arc<AtomicU64>);

impl Connector for Answering {
    type Action = ();
    const NAME: &'static str = "answering";
    async fn call(&self, r: Request<'_, ()>) -> Answer {
        let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        if r.event.id.starts_with("bad") {
            r.answer.record("id", "never seen");
            return Err(ConnectorError::from_status(400, "no such customer", None));
        }
        r.answer.record("id", format!("rec-{n}"));
        r.answer.record("status", 201);
        Ok(Delivered::Applied)
    }
    async fn check(&self, _: Option<&Credential>) -> Result<String, ConnectorError> {
        Ok("ok".into())
    }
}

fn answering(results: &str) -> (Pipeline<Answering>, Arc<AtomicU64>) {
    let calls = Arc::new(AtomicU64::new(0));
    let route: RouteConfig<toml::Value> = toml::from_str(&format!(
        r#"
        name = "orders"
        type = "order.*"
        results = "{results}"
        action = {{}}
        "#
    ))
    .expect("route config");
    let settings = DeliverySettings::default();
    let routes = RouteTable::build(vec![route], &settings.retry, |_| {
        Ok::<_, gluefleet_core::ConfigError>(())
    })
    .expect("routes");
    let limits = RateLimits::new(&BTreeMap::new()).expect("limits");
    let p = Pipeline::new(
        Answering(calls.clone()),
        routes,
        Some(Arc::new(MemoryStore::new())),
        limits,
        None,
        settings,
    )
    .expect("pipeline");
    (p, calls)
}

#[tokio::test(start_paused = true)]
async fn a_results_route_reports_the_answer_and_a_duplicate_replays_it_without_a_call() {
    let (p, calls) = answering("order-results");
    let first = p.process_reported(&order("o1"), None, None).await;
    assert_eq!(first.outcome, Outcome::Ack(AckReason::Delivered));
    let facts = first.result.expect("a results route reports the delivery");
    assert_eq!(facts.topic, "order-results");
    assert_eq!(facts.route, "orders");
    assert_eq!(facts.event_id, "o1");
    assert_eq!(facts.event_type, "order.created");
    assert!(!facts.replayed);
    let answer = facts.answer.expect("the call recorded an answer");
    assert_eq!(answer.get("id"), Some(&serde_json::json!("rec-1")));
    assert_eq!(answer.get("status"), Some(&serde_json::json!(201)));

    // The redelivery after a failed result publish: the store hands back
    // the same answer and the target is not called again.
    let mut again = order("o1");
    again.message_id = "redelivered".into();
    let second = p.process_reported(&again, None, None).await;
    assert_eq!(second.outcome, Outcome::Ack(AckReason::Duplicate));
    let replay = second.result.expect("a duplicate reports its result again");
    assert!(replay.replayed);
    assert_eq!(replay.key, facts.key, "same key, so the same result id");
    assert_eq!(replay.answer, Some(answer));
    assert_eq!(replay.message_id, "redelivered");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_route_without_results_reports_nothing() {
    let (p, _) = pipeline(vec![], None);
    let done = p.process_reported(&order("n1"), None, None).await;
    assert_eq!(done.outcome, Outcome::Ack(AckReason::Delivered));
    assert!(done.result.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_dead_letter_on_a_results_route_is_reported_without_the_failed_calls_answer() {
    let (p, calls) = answering("order-results");
    let refused = p.process_reported(&order("bad-1"), None, None).await;
    let Outcome::DeadLetter(dl) = &refused.outcome else {
        panic!("a 400 is dead-lettered, got {:?}", refused.outcome)
    };
    assert_eq!(dl.class, "permanent");
    let facts = refused
        .result
        .expect("a dead letter on a results route is reported");
    assert_eq!(facts.event_id, "bad-1");
    assert!(!facts.replayed);
    assert!(
        facts.answer.is_none(),
        "what a failed call recorded is thrown away: {:?}",
        facts.answer
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    let poison = p
        .process_reported(&message("m", "not json"), None, None)
        .await;
    assert!(matches!(poison.outcome, Outcome::DeadLetter(_)));
    assert!(
        poison.result.is_none(),
        "no route took it, so no results topic"
    );
}
