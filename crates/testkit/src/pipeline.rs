//! The pipeline in process, for connector tests that read outcomes directly
//! (no Pub/Sub in between): the same layers the runtime builds, with the
//! in-memory idempotency store and no rate limits.

use gluefleet_core::auth::TokenProvider;
use gluefleet_core::idempotency::MemoryStore;
use gluefleet_core::outcome::{AckReason, DeadLetter, Outcome};
use gluefleet_core::rate_limit::RateLimits;
use gluefleet_core::route::{RouteConfig, RouteTable};
use gluefleet_core::{Connector, DeliverySettings, Pipeline, RawMessage};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(serde::Deserialize)]
struct Routes<R> {
    routes: Vec<RouteConfig<R>>,
}

/// A pipeline over `connector`, with the `[[routes]]` of `routes_toml`
/// compiled by `compile`, and `auth` if the connector signs in.
///
/// # Panics
/// On routes that do not parse or compile: a broken test fixture.
pub fn build<C, R, E: Into<gluefleet_core::ConfigError>>(
    connector: C,
    routes_toml: &str,
    compile: impl FnMut(R) -> Result<C::Action, E>,
    auth: Option<Arc<dyn TokenProvider>>,
) -> Arc<Pipeline<C>>
where
    C: Connector,
    R: DeserializeOwned,
{
    let routes: Routes<R> = toml::from_str(routes_toml).expect("test routes parse");
    let settings = DeliverySettings::default();
    let table =
        RouteTable::build(routes.routes, &settings.retry, compile).expect("test routes compile");
    let limits = RateLimits::new(&BTreeMap::new()).expect("no rate limits");
    let store = Arc::new(MemoryStore::new());
    Arc::new(
        Pipeline::new(connector, table, Some(store), limits, auth, settings)
            .expect("test pipeline"),
    )
}

/// A structured CloudEvent as Pub/Sub would deliver it the first time.
pub fn cloudevent(id: &str, event_type: &str, data: Value) -> RawMessage {
    let body = json!({"specversion": "1.0", "id": id, "source": "//gluefleet-test", "type": event_type, "data": data});
    RawMessage {
        data: body.to_string().into_bytes(),
        message_id: format!("m-{id}"),
        delivery_attempt: Some(1),
        ..RawMessage::default()
    }
}

/// Processes `messages` all at once (as concurrent deliveries would) and
/// returns their outcomes in order.
pub async fn process_all<C: Connector>(
    pipeline: &Arc<Pipeline<C>>,
    messages: Vec<RawMessage>,
) -> Vec<Outcome> {
    let tasks: Vec<_> = messages
        .into_iter()
        .map(|m| {
            let p = pipeline.clone();
            tokio::spawn(async move { p.process(&m).await })
        })
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.expect("processing task"));
    }
    out
}

/// How many of `outcomes` were acked as delivered, and the dead letters
/// among them: what a test of a batch with a few bad events counts.
pub fn delivered_and_dead(outcomes: &[Outcome]) -> (usize, Vec<&DeadLetter>) {
    let delivered = outcomes
        .iter()
        .filter(|o| **o == Outcome::Ack(AckReason::Delivered))
        .count();
    let dead = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::DeadLetter(d) => Some(d),
            _ => None,
        })
        .collect();
    (delivered, dead)
}
