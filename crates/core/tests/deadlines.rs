//! Every attempt ends at its deadline, the credential fetch included, and a
//! call that may have taken effect is not sent again when its operation is
//! not idempotent. On paused time: where a real socket is involved, the
//! clock jumps to the next timer whenever the runtime waits, so a server that
//! never answers costs no real seconds.

use gluefleet_core::auth::TokenProvider;
use gluefleet_core::auth::{ClientCredentials, ClientCredentialsConfig, Credential, TOKEN_TIMEOUT};
use gluefleet_core::idempotency::MemoryStore;
use gluefleet_core::outcome::{NackReason, Outcome};
use gluefleet_core::rate_limit::RateLimits;
use gluefleet_core::route::{RouteConfig, RouteTable};
use gluefleet_core::{
    Connector, ConnectorError, Delivered, DeliverySettings, Pipeline, RawMessage, Request,
};
use secrecy::SecretString;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;

/// What a call does.
#[derive(Clone, Copy, Debug, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum Behaviour {
    /// Succeeds.
    #[default]
    Apply,
    /// Fails as if cut off after sending.
    CutOff,
    /// Never answers.
    Hang,
}

/// The route's action: how the call behaves, and whether repeating it is safe.
#[derive(Debug, serde::Deserialize)]
struct Action {
    #[serde(default)]
    behaviour: Behaviour,
    #[serde(default = "yes")]
    idempotent: bool,
}

fn yes() -> bool {
    true
}

/// Counts calls and behaves as the route's action says.
#[derive(Debug, Default)]
struct Counting {
    calls: Arc<AtomicU32>,
}

impl Connector for Counting {
    type Action = Action;
    const NAME: &'static str = "counting";
    async fn call(&self, r: Request<'_, Action>) -> Result<Delivered, ConnectorError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match r.route.action.behaviour {
            Behaviour::Apply => Ok(Delivered::Applied),
            Behaviour::CutOff => Err(ConnectorError::transient(
                "cut off at the deadline after it was sent",
            )
            .with_outcome_unknown()),
            Behaviour::Hang => std::future::pending().await,
        }
    }
    fn is_idempotent(&self, action: &Action) -> bool {
        action.idempotent
    }
    async fn check(&self, _: Option<&Credential>) -> Result<String, ConnectorError> {
        Ok("ok".into())
    }
}

fn pipeline(
    route: &str,
    auth: Option<Arc<dyn TokenProvider>>,
) -> (Pipeline<Counting>, Arc<AtomicU32>) {
    let route: RouteConfig<Action> = toml::from_str(route).expect("route config");
    let settings = DeliverySettings::default();
    let routes = RouteTable::build(
        vec![route],
        &settings.retry,
        Ok::<_, gluefleet_core::ConfigError>,
    )
    .expect("routes");
    let limits = RateLimits::new(&BTreeMap::new()).expect("limits");
    let connector = Counting::default();
    let calls = connector.calls.clone();
    let p = Pipeline::new(
        connector,
        routes,
        Some(Arc::new(MemoryStore::new())),
        limits,
        auth,
        settings,
    )
    .expect("pipeline");
    (p, calls)
}

fn message() -> RawMessage {
    RawMessage {
        data: br#"{"type":"order.created","id":"o-1","data":{}}"#.to_vec(),
        message_id: "m-1".into(),
        delivery_attempt: Some(1),
        ..RawMessage::default()
    }
}

/// A token endpoint that takes connections and never answers them.
async fn silent_token_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    format!("http://{addr}/oauth2/token")
}

fn client_credentials(url: String) -> ClientCredentials {
    ClientCredentials::new(
        ClientCredentialsConfig {
            token_url: url,
            client_id: "gluefleet".into(),
            client_secret: SecretString::from("s3cret"),
            scopes: Vec::new(),
            credentials_in_body: false,
            refresh_ahead: None,
            default_lifetime: None,
        },
        gluefleet_core::http::client().expect("HTTP client"),
    )
    .expect("provider")
}

#[tokio::test(start_paused = true)]
async fn a_token_endpoint_that_never_answers_costs_attempts_not_the_message() {
    let auth: Arc<dyn TokenProvider> = Arc::new(client_credentials(silent_token_endpoint().await));
    let (p, calls) = pipeline(
        r#"
        type = "order.*"
        timeout = "1s"
        retry = { budget = "3s", max_attempts = 3 }
        action = {}
        "#,
        Some(auth),
    );
    let started = tokio::time::Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(60), p.process(&message()))
        .await
        .expect("the delivery ends within its budget, not when the token endpoint answers");
    // Virtual time: each attempt is cut at the route's 1 s, inside the 3 s
    // budget, not at the token request's own, longer timeout.
    assert!(
        started.elapsed() <= Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        matches!(
            outcome,
            Outcome::Nack {
                reason: NackReason::Retryable,
                ..
            }
        ),
        "a credential that does not come in time is a transient failure: {outcome:?}"
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "no call without a credential"
    );
}

#[tokio::test(start_paused = true)]
async fn a_token_request_has_its_own_timeout() {
    let provider = client_credentials(silent_token_endpoint().await);
    let err = tokio::time::timeout(TOKEN_TIMEOUT * 3, provider.credential())
        .await
        .expect("the token request gives up by itself")
        .expect_err("no token");
    assert!(err.is_transient(), "{err}");
}

#[tokio::test(start_paused = true)]
async fn an_unknown_outcome_is_retried_only_when_the_operation_is_idempotent() {
    let (p, calls) = pipeline(
        r#"
        type = "order.*"
        retry = { max_attempts = 3 }
        action = { behaviour = "cut_off", idempotent = true }
        "#,
        None,
    );
    let outcome = p.process(&message()).await;
    assert!(matches!(outcome, Outcome::Nack { .. }), "{outcome:?}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "a repeat is harmless: retried"
    );

    let (p, calls) = pipeline(
        r#"
        type = "order.*"
        retry = { max_attempts = 3 }
        action = { behaviour = "cut_off", idempotent = false }
        "#,
        None,
    );
    match p.process(&message()).await {
        Outcome::DeadLetter(dl) => {
            assert_eq!(dl.class, gluefleet_core::pipeline::OUTCOME_UNKNOWN);
            assert_eq!(dl.attempts, 1);
            assert!(dl.error.contains("cut off"), "{}", dl.error);
        }
        other => panic!("expected a dead letter, got {other:?}"),
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "never sent twice");
}

#[tokio::test(start_paused = true)]
async fn a_call_that_outlives_its_deadline_is_not_repeated_when_not_idempotent() {
    let (p, calls) = pipeline(
        r#"
        type = "order.*"
        timeout = "2s"
        retry = { max_attempts = 3 }
        action = { behaviour = "hang", idempotent = false }
        "#,
        None,
    );
    match p.process(&message()).await {
        Outcome::DeadLetter(dl) => {
            assert_eq!(dl.class, gluefleet_core::pipeline::OUTCOME_UNKNOWN);
        }
        other => panic!("expected a dead letter, got {other:?}"),
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}
