//! Idempotency through the whole pipeline, on paused time: which events are
//! one effect, which key the connector is handed, and which leases a config
//! may not have.

use gluefleet_core::auth::Credential;
use gluefleet_core::idempotency::MemoryStore;
use gluefleet_core::outcome::{AckReason, Outcome};
use gluefleet_core::rate_limit::RateLimits;
use gluefleet_core::route::{RouteConfig, RouteTable};
use gluefleet_core::{
    Connector, ConnectorError, Delivered, DeliverySettings, Pipeline, RawMessage, Request,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The keys the connector was handed, in call order.
type Keys = Arc<Mutex<Vec<String>>>;

/// Applies every call and records the idempotency key it was handed.
#[derive(Debug, Default)]
struct Recorder(Keys);

impl Connector for Recorder {
    type Action = ();
    const NAME: &'static str = "recorder";
    async fn call(&self, r: Request<'_, ()>) -> Result<Delivered, ConnectorError> {
        self.0
            .lock()
            .expect("lock")
            .push(r.idempotency_key.to_owned());
        Ok(Delivered::Applied)
    }
    async fn check(&self, _: Option<&Credential>) -> Result<String, ConnectorError> {
        Ok("ok".into())
    }
}

fn routes(toml_routes: &str, settings: &DeliverySettings) -> RouteTable<()> {
    #[derive(serde::Deserialize)]
    struct Routes {
        routes: Vec<RouteConfig<toml::Value>>,
    }
    let parsed: Routes = toml::from_str(toml_routes).expect("routes parse");
    RouteTable::build(parsed.routes, &settings.retry, |_| {
        Ok::<_, gluefleet_core::ConfigError>(())
    })
    .expect("routes build")
}

fn pipeline(
    toml_routes: &str,
    settings: DeliverySettings,
) -> Result<(Pipeline<Recorder>, Keys), String> {
    let keys = Arc::new(Mutex::new(Vec::new()));
    let table = routes(toml_routes, &settings);
    let p = Pipeline::new(
        Recorder(keys.clone()),
        table,
        Some(Arc::new(MemoryStore::new())),
        RateLimits::new(&BTreeMap::new()).expect("limits"),
        None,
        settings,
    )?;
    Ok((p, keys))
}

fn cloudevent(id: &str, event_type: &str, data: serde_json::Value) -> RawMessage {
    let body = serde_json::json!({"specversion": "1.0", "id": id, "source": "//erp/orders", "type": event_type, "data": data});
    RawMessage {
        data: body.to_string().into_bytes(),
        message_id: format!("m-{id}"),
        delivery_attempt: Some(1),
        ..RawMessage::default()
    }
}

/// The routes of the configuration reference's example.
const ORDER_ROUTES: &str = r#"
[[routes]]
type = "order.created"
action = {}

[[routes]]
name = "order-other"
type = "order.*"
timeout = "5s"
retry = { max_attempts = 3, budget = "10s" }
idempotency_key = "data.orderId"
action = {}
"#;

#[tokio::test(start_paused = true)]
async fn every_event_type_of_one_order_is_its_own_effect_with_its_own_key() {
    let (p, keys) = pipeline(ORDER_ROUTES, DeliverySettings::default()).expect("pipeline");
    let order = serde_json::json!({"orderId": "A1"});
    let types = [
        "order.created",
        "order.paid",
        "order.shipped",
        "order.cancelled",
    ];
    for (i, t) in types.iter().enumerate() {
        let outcome = p
            .process(&cloudevent(&format!("e{i}"), t, order.clone()))
            .await;
        assert_eq!(outcome, Outcome::Ack(AckReason::Delivered), "{t}");
    }
    let keys = keys.lock().expect("lock").clone();
    assert_eq!(keys.len(), 4, "four events, four calls: {keys:?}");
    assert_eq!(
        keys.iter().collect::<BTreeSet<_>>().len(),
        4,
        "four keys handed to the target, none shared: {keys:?}"
    );
    assert_eq!(
        keys[0], "ce://erp/orders/e0",
        "order.created has no configured key"
    );
    assert_eq!(keys[1], "key:recorder/order-other/order.paid/A1");

    // The configured key still does its job: the same change published
    // again under another event id is a duplicate.
    let again = p
        .process(&cloudevent("e9", "order.paid", order.clone()))
        .await;
    assert_eq!(again, Outcome::Ack(AckReason::Duplicate));
}

#[tokio::test(start_paused = true)]
async fn an_empty_key_field_falls_back_to_the_event_id_instead_of_one_shared_key() {
    let routes = r#"
[[routes]]
type = "payment.received"
idempotency_key = "data.paymentId"
action = {}
"#;
    let (p, keys) = pipeline(routes, DeliverySettings::default()).expect("pipeline");
    let payments = [
        serde_json::json!({"paymentId": null}),
        serde_json::json!({"paymentId": null}),
        serde_json::json!({"paymentId": ""}),
        serde_json::json!({"paymentId": ""}),
        serde_json::json!({"paymentId": "  "}),
        serde_json::json!({"paymentId": []}),
        serde_json::json!({}),
    ];
    for (i, data) in payments.iter().enumerate() {
        let outcome = p
            .process(&cloudevent(
                &format!("p{i}"),
                "payment.received",
                data.clone(),
            ))
            .await;
        assert_eq!(
            outcome,
            Outcome::Ack(AckReason::Delivered),
            "payment {i} ({data}) is delivered, not taken for a duplicate"
        );
    }
    let seen = keys.lock().expect("lock").clone();
    let want: Vec<String> = (0..payments.len())
        .map(|i| format!("ce://erp/orders/p{i}"))
        .collect();
    assert_eq!(seen, want, "each falls back to its CloudEvents id");

    // A real value is still the key, scoped to its route and type.
    let outcome = p
        .process(&cloudevent(
            "p-real",
            "payment.received",
            serde_json::json!({"paymentId": 7}),
        ))
        .await;
    assert_eq!(outcome, Outcome::Ack(AckReason::Delivered));
    assert_eq!(
        keys.lock().expect("lock").last().map(String::as_str),
        Some("key:recorder/payment.received/payment.received/7")
    );
}

#[test]
fn a_lease_shorter_than_a_delivery_is_refused_naming_both_settings() {
    let routes = r#"
[[routes]]
type = "order.created"
timeout = "10s"
action = {}
"#;
    let mut settings = DeliverySettings::default();
    settings.idempotency.lease = Duration::from_secs(3);
    let e = pipeline(routes, settings.clone())
        .expect_err("a 3 s lease under a 10 s timeout and a 30 s budget is refused");
    for needle in [
        "delivery.idempotency.lease (3s)",
        "route order.created",
        "retry.budget (30s)",
        "timeout (10s)",
        "at least 50s",
    ] {
        assert!(e.contains(needle), "{needle:?} missing from: {e}");
    }

    // Exactly the budget + timeout + margin is enough.
    settings.idempotency.lease = Duration::from_secs(50);
    assert!(pipeline(routes, settings.clone()).is_ok());

    // The longest route decides.
    let two = r#"
[[routes]]
type = "a"
action = {}

[[routes]]
type = "b"
timeout = "30s"
retry = { budget = "60s" }
action = {}
"#;
    let e = pipeline(two, settings.clone()).expect_err("route b needs 100s");
    assert!(
        e.contains("route b") && e.contains("at least 1m 40s"),
        "{e}"
    );

    // With idempotency off there is no claim to outlast.
    settings.idempotency.enabled = false;
    assert!(pipeline(two, settings).is_ok());
}

#[test]
fn the_default_lease_covers_the_default_route_settings() {
    let routes = "[[routes]]\ntype = \"a\"\naction = {}\n";
    assert!(pipeline(routes, DeliverySettings::default()).is_ok());
}

#[test]
fn zero_max_keys_is_refused() {
    let mut settings = DeliverySettings::default();
    settings.idempotency.max_keys = 0;
    let e = pipeline("[[routes]]\ntype = \"a\"\naction = {}\n", settings).expect_err("refused");
    assert!(e.contains("delivery.idempotency.max_keys"), "{e}");
}
