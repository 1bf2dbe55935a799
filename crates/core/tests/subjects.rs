//! Routes that act as a different user per event (a `subject` template):
//! the pipeline renders the subject, asks the provider for that user's
//! credential, hands both to the connector, invalidates only that user's
//! credential on a 401, and meters each user on its own. On paused time.

use gluefleet_core::auth::{AuthError, Credential, TokenProvider};
use gluefleet_core::idempotency::MemoryStore;
use gluefleet_core::outcome::{AckReason, NackReason, Outcome};
use gluefleet_core::rate_limit::{RateLimitConfig, RateLimits};
use gluefleet_core::route::{RouteConfig, RouteTable};
use gluefleet_core::{
    Connector, ConnectorError, Delivered, DeliverySettings, Pipeline, RawMessage, Request,
};
use secrecy::SecretString;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Answer = Result<Delivered, ConnectorError>;

/// One call as the connector saw it.
#[derive(Clone, Debug, PartialEq)]
struct Seen {
    subject: Option<String>,
    credential_subject: Option<String>,
    generation: Option<u64>,
}

#[derive(Debug, Default)]
struct Recorder {
    script: Mutex<VecDeque<Answer>>,
    seen: Mutex<Vec<Seen>>,
}

#[derive(Debug)]
struct Handle(Arc<Recorder>);

impl Connector for Handle {
    type Action = ();
    const NAME: &'static str = "subjects";
    async fn call(&self, r: Request<'_, ()>) -> Answer {
        self.0.seen.lock().expect("lock").push(Seen {
            subject: r.subject.map(str::to_owned),
            credential_subject: r.credential.and_then(|c| c.subject().map(str::to_owned)),
            generation: r.credential.map(Credential::generation),
        });
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

/// A provider with one generation counter per subject, counting fetches.
#[derive(Debug, Default)]
struct PerUser {
    generations: Mutex<HashMap<String, u64>>,
    fetches: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl TokenProvider for PerUser {
    async fn credential(&self) -> Result<Credential, AuthError> {
        Err(AuthError::permanent("routes here always name a subject"))
    }
    async fn credential_for(&self, subject: &str) -> Result<Credential, AuthError> {
        self.fetches.lock().expect("lock").push(subject.to_owned());
        let g = *self
            .generations
            .lock()
            .expect("lock")
            .entry(subject.to_owned())
            .or_default();
        Ok(Credential::new(
            http::header::AUTHORIZATION,
            SecretString::from(format!("Bearer {subject}-{g}")),
            g,
        )
        .with_subject(subject))
    }
    fn acts_as_subjects(&self) -> bool {
        true
    }
    fn invalidate(&self, stale: &Credential) {
        if let Some(s) = stale.subject()
            && let Some(g) = self.generations.lock().expect("lock").get_mut(s)
            && *g == stale.generation()
        {
            *g += 1;
        }
    }
}

/// A provider that acts as nobody but itself.
#[derive(Debug)]
struct Own;

#[async_trait::async_trait]
impl TokenProvider for Own {
    async fn credential(&self) -> Result<Credential, AuthError> {
        Ok(Credential::new(
            http::header::AUTHORIZATION,
            SecretString::from("Bearer own"),
            1,
        ))
    }
    fn invalidate(&self, _: &Credential) {}
}

const ROUTE: &str = r#"
    type = "meeting.*"
    subject = "{data.organizer}"
    action = {}
"#;

fn build(
    route: &str,
    auth: Option<Arc<dyn TokenProvider>>,
    buckets: BTreeMap<String, RateLimitConfig>,
) -> Result<(Pipeline<Handle>, Arc<Recorder>), gluefleet_core::ConfigError> {
    let recorder = Arc::new(Recorder::default());
    let route: RouteConfig<toml::Value> = toml::from_str(route).expect("route config");
    let settings = DeliverySettings::default();
    let routes = RouteTable::build(vec![route], &settings.retry, |_| {
        Ok::<_, gluefleet_core::ConfigError>(())
    })?;
    let limits = RateLimits::new(&buckets).expect("limits");
    let p = Pipeline::new(
        Handle(recorder.clone()),
        routes,
        Some(Arc::new(MemoryStore::new())),
        limits,
        auth,
        settings,
    )?;
    Ok((p, recorder))
}

fn meeting(id: &str, organizer: serde_json::Value) -> RawMessage {
    let body = serde_json::json!({
        "specversion": "1.0", "id": id, "source": "/crm", "type": "meeting.booked",
        "data": { "organizer": organizer },
    });
    RawMessage {
        data: body.to_string().into_bytes(),
        message_id: format!("m-{id}"),
        delivery_attempt: Some(1),
        ..RawMessage::default()
    }
}

#[tokio::test(start_paused = true)]
async fn each_event_is_delivered_with_its_own_users_credential() {
    let auth = Arc::new(PerUser::default());
    let (p, rec) = build(ROUTE, Some(auth.clone()), BTreeMap::new()).expect("pipeline");
    for (id, who) in [("1", "alice@example.com"), ("2", "bob@example.com")] {
        assert_eq!(
            p.process(&meeting(id, who.into())).await,
            Outcome::Ack(AckReason::Delivered)
        );
    }
    let seen = rec.seen.lock().expect("lock").clone();
    let subjects: Vec<_> = seen
        .iter()
        .map(|s| (s.subject.as_deref(), s.credential_subject.as_deref()))
        .collect();
    assert_eq!(
        subjects,
        [
            (Some("alice@example.com"), Some("alice@example.com")),
            (Some("bob@example.com"), Some("bob@example.com")),
        ]
    );
    assert_eq!(
        *auth.fetches.lock().expect("lock"),
        ["alice@example.com", "bob@example.com"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_401_refreshes_only_the_refused_users_credential() {
    let auth = Arc::new(PerUser::default());
    let (p, rec) = build(ROUTE, Some(auth.clone()), BTreeMap::new()).expect("pipeline");
    rec.script
        .lock()
        .expect("lock")
        .push_back(Err(ConnectorError::from_status(401, "revoked", None)));
    assert_eq!(
        p.process(&meeting("1", "alice@example.com".into())).await,
        Outcome::Ack(AckReason::Delivered)
    );
    assert_eq!(
        p.process(&meeting("2", "bob@example.com".into())).await,
        Outcome::Ack(AckReason::Delivered)
    );
    let generations: Vec<_> = rec
        .seen
        .lock()
        .expect("lock")
        .iter()
        .map(|s| (s.subject.clone().unwrap_or_default(), s.generation))
        .collect();
    assert_eq!(
        generations,
        [
            ("alice@example.com".to_owned(), Some(0)),
            ("alice@example.com".to_owned(), Some(1)),
            ("bob@example.com".to_owned(), Some(0)),
        ],
        "alice's retry carries her refreshed token; bob's is untouched"
    );
}

#[tokio::test(start_paused = true)]
async fn an_event_without_a_usable_subject_is_dead_lettered_before_any_call() {
    let auth = Arc::new(PerUser::default());
    let (p, rec) = build(ROUTE, Some(auth.clone()), BTreeMap::new()).expect("pipeline");
    let missing = {
        let body =
            r#"{"specversion":"1.0","id":"9","source":"/crm","type":"meeting.booked","data":{}}"#;
        RawMessage {
            data: body.as_bytes().to_vec(),
            message_id: "m-9".into(),
            ..RawMessage::default()
        }
    };
    let cases = [
        (missing, "no field data.organizer"),
        (meeting("10", "".into()), "field data.organizer is \"\""),
        (meeting("14", "  ".into()), "blank"),
        (meeting("11", "eve @example.com".into()), "whitespace"),
        (
            meeting("12", serde_json::json!({"a": 1})),
            "expected a string",
        ),
        (
            meeting("13", "x".repeat(400).into()),
            "more than an email address",
        ),
    ];
    for (message, why) in cases {
        let Outcome::DeadLetter(dl) = p.process(&message).await else {
            panic!("expected a dead letter for {why}")
        };
        assert_eq!(dl.class, "permanent", "{why}");
        assert!(dl.error.contains(why), "{why}: {}", dl.error);
        assert_eq!(dl.route, "meeting.*");
    }
    assert!(
        rec.seen.lock().expect("lock").is_empty(),
        "no call was made"
    );
    assert!(
        auth.fetches.lock().expect("lock").is_empty(),
        "no credential was fetched"
    );
}

#[test]
fn a_route_with_a_subject_needs_auth_that_acts_per_user() {
    let own: Arc<dyn TokenProvider> = Arc::new(Own);
    for (auth, why) in [
        (Some(own), "cannot act as another user"),
        (None, "is not set"),
    ] {
        let err = build(ROUTE, auth, BTreeMap::new()).expect_err("refused");
        let text = err.to_string();
        assert!(
            text.contains("meeting.*") && text.contains("{data.organizer}") && text.contains(why),
            "{text}"
        );
    }
    let plain = r#"
        type = "meeting.*"
        action = {}
    "#;
    assert!(build(plain, Some(Arc::new(Own)), BTreeMap::new()).is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_rate_limit_without_a_key_meters_each_subject_on_its_own() {
    let route = r#"
        type = "meeting.*"
        subject = "{data.organizer}"
        rate_limit = { bucket = "calendar" }
        action = {}
    "#;
    let buckets = BTreeMap::from([(
        "calendar".to_owned(),
        RateLimitConfig {
            requests: 1,
            per: Duration::from_secs(3600),
            burst: None,
        },
    )]);
    let (p, rec) = build(route, Some(Arc::new(PerUser::default())), buckets).expect("pipeline");
    for (id, who) in [("1", "alice@example.com"), ("2", "bob@example.com")] {
        assert_eq!(
            p.process(&meeting(id, who.into())).await,
            Outcome::Ack(AckReason::Delivered),
            "{who} has a cell of their own"
        );
    }
    // The bucket's clock is the wall clock: on paused time alice's cell never
    // refills, so her second call ends as a rate-limited nack, not a call.
    let third = p.process(&meeting("3", "alice@example.com".into())).await;
    assert!(
        matches!(
            third,
            Outcome::Nack {
                reason: NackReason::RateLimited,
                ..
            }
        ),
        "{third:?}"
    );
    let subjects: Vec<_> = rec
        .seen
        .lock()
        .expect("lock")
        .iter()
        .map(|s| s.subject.clone().unwrap_or_default())
        .collect();
    assert_eq!(subjects, ["alice@example.com", "bob@example.com"]);
}

/// A connector whose every action needs the idempotency store.
#[derive(Debug)]
struct NeedsStore;

impl Connector for NeedsStore {
    type Action = ();
    const NAME: &'static str = "needs-store";
    async fn call(&self, _: Request<'_, ()>) -> Answer {
        Ok(Delivered::Applied)
    }
    fn requires_idempotency(&self, _: &()) -> bool {
        true
    }
    async fn check(&self, _: Option<&Credential>) -> Result<String, ConnectorError> {
        Ok("ok".into())
    }
}

#[test]
fn an_action_that_needs_the_store_is_refused_without_it() {
    let pipeline = |enabled: bool| {
        let route: RouteConfig<toml::Value> =
            toml::from_str("type = \"mail.*\"\naction = {}").expect("route");
        let mut settings = DeliverySettings::default();
        settings.idempotency.enabled = enabled;
        let routes = RouteTable::build(vec![route], &settings.retry, |_| {
            Ok::<_, gluefleet_core::ConfigError>(())
        })
        .expect("routes");
        Pipeline::new(
            NeedsStore,
            routes,
            Some(Arc::new(MemoryStore::new())),
            RateLimits::new(&BTreeMap::new()).expect("limits"),
            None,
            settings,
        )
    };
    let err = pipeline(false).expect_err("refused");
    assert!(
        err.to_string().contains("mail.*")
            && err.to_string().contains("delivery.idempotency.enabled"),
        "{err}"
    );
    assert!(pipeline(true).is_ok());
}
