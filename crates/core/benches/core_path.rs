//! Micro-benchmarks of the per-message core path, so that a regression in
//! decode → route → outcome shows up in nanoseconds rather than in a fleet
//! benchmark's events per second.
//!
//! Groups:
//! - `decode`: each accepted shape (structured CloudEvent of about 1 KiB,
//!   binary CloudEvent, plain envelope) carrying the same data, and two poison
//!   messages (a structured event lacking `source`, a body that is not JSON).
//! - `route`: `RouteTable::find` in a table of 50 routes (40 exact, 10
//!   prefixes): an exact hit, a prefix hit and a miss.
//! - `process`: the whole `Pipeline::process` to an `Outcome`, with the
//!   in-memory idempotency store on and no rate limit, on a tokio
//!   current-thread runtime: a first delivery that the connector applies at
//!   once, a duplicate of a delivered event, and an unroutable event that is
//!   dead-lettered.
//!
//! Run with `cargo bench -p gluefleet-core --bench core_path`; every group
//! reports time per message and messages per second. Each benchmark measures
//! for 2 s so the whole run stays under a minute.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use gluefleet_core::auth::Credential;
use gluefleet_core::event::{RawMessage, decode};
use gluefleet_core::idempotency::MemoryStore;
use gluefleet_core::outcome::{AckReason, Outcome};
use gluefleet_core::rate_limit::RateLimits;
use gluefleet_core::retry::RetrySettings;
use gluefleet_core::route::{RouteConfig, RouteTable};
use gluefleet_core::{Connector, ConnectorError, Delivered, DeliverySettings, Pipeline, Request};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

/// Domains of the route table: each has four exact types and one prefix.
const DOMAINS: [&str; 10] = [
    "order", "invoice", "customer", "shipment", "payment", "refund", "product", "stock", "contact",
    "ticket",
];
const VERBS: [&str; 4] = ["created", "updated", "cancelled", "archived"];

/// An order with enough lines that the structured CloudEvent is about 1 KiB.
fn order_data() -> Value {
    let lines: Vec<Value> = (1..=9)
        .map(|n| {
            json!({"sku": format!("SKU-{n:05}"), "quantity": n, "unitPrice": "19.90", "currency": "EUR"})
        })
        .collect();
    json!({
        "orderId": "A-2026-000123",
        "customer": {"id": "C-778", "email": "buyer@example.com", "country": "DE"},
        "lines": lines,
        "total": "557.20",
        "note": "leave at the door",
    })
}

fn structured(id: &str, event_type: &str) -> RawMessage {
    let body = json!({
        "specversion": "1.0",
        "id": id,
        "source": "//erp.example/orders",
        "type": event_type,
        "subject": "A-2026-000123",
        "time": "2026-11-28T10:00:00Z",
        "datacontenttype": "application/json",
        "data": order_data(),
    });
    RawMessage {
        data: body.to_string().into_bytes(),
        message_id: format!("m-{id}"),
        delivery_attempt: Some(1),
        ..RawMessage::default()
    }
}

fn binary() -> RawMessage {
    let attributes = [
        ("ce-specversion", "1.0"),
        ("ce-id", "e-1"),
        ("ce-source", "//erp.example/orders"),
        ("ce-type", "order.created"),
        ("ce-subject", "A-2026-000123"),
        ("ce-time", "2026-11-28T10:00:00Z"),
        ("content-type", "application/json"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    RawMessage {
        data: order_data().to_string().into_bytes(),
        attributes,
        message_id: "m-1".into(),
        delivery_attempt: Some(1),
        ..RawMessage::default()
    }
}

fn envelope() -> RawMessage {
    let body = json!({"type": "order.created", "id": "e-1", "source": "erp", "data": order_data()});
    RawMessage {
        data: body.to_string().into_bytes(),
        message_id: "m-1".into(),
        delivery_attempt: Some(1),
        ..RawMessage::default()
    }
}

fn poison_missing_source() -> RawMessage {
    let mut m = structured("e-1", "order.created");
    let mut body: Value = serde_json::from_slice(&m.data).expect("the fixture is JSON");
    if let Value::Object(obj) = &mut body {
        obj.remove("source");
    }
    m.data = body.to_string().into_bytes();
    m
}

fn poison_not_json() -> RawMessage {
    let mut m = structured("e-1", "order.created");
    // Cut in the middle of the data: what a publisher bug or a truncation sends.
    m.data.truncate(m.data.len() / 2);
    m
}

fn route_configs() -> Vec<RouteConfig<()>> {
    let route = |event_type: String| RouteConfig {
        name: None,
        event_type,
        timeout: None,
        retry: None,
        rate_limit: None,
        idempotency_key: None,
        subject: None,
        results: None,
        action: (),
    };
    let mut routes = Vec::new();
    for domain in DOMAINS {
        routes.push(route(format!("{domain}.*")));
        for verb in VERBS {
            routes.push(route(format!("{domain}.{verb}")));
        }
    }
    routes
}

fn route_table() -> RouteTable<()> {
    RouteTable::build(
        route_configs(),
        &RetrySettings::default(),
        Ok::<_, gluefleet_core::ConfigError>,
    )
    .expect("bench routes build")
}

fn bench_decode(c: &mut Criterion) {
    let cases = [
        ("structured_1k", structured("e-1", "order.created")),
        ("binary", binary()),
        ("envelope", envelope()),
    ];
    let structured_len = cases[0].1.data.len();
    assert!(
        (900..=1200).contains(&structured_len),
        "the structured fixture should be about 1 KiB, is {structured_len} bytes"
    );
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(1));
    for (name, msg) in &cases {
        let event = decode(msg).expect("fixture decodes");
        assert_eq!(event.data, order_data(), "{name} carries the order");
        g.bench_function(*name, |b| b.iter(|| decode(black_box(msg))));
    }
    for (name, msg) in [
        ("poison_missing_field", poison_missing_source()),
        ("poison_not_json", poison_not_json()),
    ] {
        assert!(decode(&msg).is_err(), "{name} is poison");
        g.bench_function(name, |b| b.iter(|| decode(black_box(&msg))));
    }
    g.finish();
}

fn bench_route(c: &mut Criterion) {
    let table = route_table();
    assert_eq!(table.len(), 50);
    let mut g = c.benchmark_group("route_50");
    g.throughput(Throughput::Elements(1));
    for (name, event_type, want) in [
        ("exact", "ticket.archived", Some("ticket.archived")),
        ("prefix", "ticket.line.added", Some("ticket.*")),
        ("miss", "webhook.received", None),
    ] {
        let found = table.find(event_type).map(|r| r.name.as_str());
        assert_eq!(found, want, "{event_type}");
        g.bench_function(name, |b| b.iter(|| table.find(black_box(event_type))));
    }
    g.finish();
}

/// A connector that applies every event at once: what is left to measure is
/// the core's own work around the call.
#[derive(Debug)]
struct AppliesAtOnce;

impl Connector for AppliesAtOnce {
    type Action = ();
    const NAME: &'static str = "bench";
    async fn call(&self, _: Request<'_, ()>) -> Result<Delivered, ConnectorError> {
        Ok(Delivered::Applied)
    }
    async fn check(&self, _: Option<&Credential>) -> Result<String, ConnectorError> {
        Ok("bench".into())
    }
}

/// The pipeline with the in-memory store and no rate limits, as a worker
/// with `[delivery.idempotency] store = "memory"` builds it. `done_ttl` is how
/// long a delivered key is remembered.
fn pipeline(done_ttl: Duration) -> Pipeline<AppliesAtOnce> {
    let mut settings = DeliverySettings::default();
    settings.idempotency.ttl = done_ttl;
    let limits = RateLimits::new(&BTreeMap::new()).expect("no rate limits");
    Pipeline::new(
        AppliesAtOnce,
        route_table(),
        Some(Arc::new(MemoryStore::new())),
        limits,
        None,
        settings,
    )
    .expect("bench pipeline")
}

fn bench_process(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("tokio runtime");
    let mut g = c.benchmark_group("process");
    g.throughput(Throughput::Elements(1));

    // Every message is a new event (its own id), so each one claims a key,
    // calls the connector and records the key as done. Delivered keys are
    // remembered for 1 ms only: the store's sweep every 4,096 claims then
    // keeps it at a few thousand keys, instead of growing by millions over
    // the run and charging ever larger sweeps to later samples.
    let p = pipeline(Duration::from_millis(1));
    let first = rt.block_on(p.process(&structured("warm", "order.created")));
    assert_eq!(first, Outcome::Ack(AckReason::Delivered));
    let mut n = 0_u64;
    g.bench_function("delivered", |b| {
        b.to_async(&rt).iter_batched(
            || {
                n += 1;
                structured(&format!("e-{n}"), "order.created")
            },
            |m| {
                let p = &p;
                async move { p.process(&m).await }
            },
            BatchSize::SmallInput,
        );
    });

    // The same event again: the store says done, no call is made.
    let p = pipeline(DeliverySettings::default().idempotency.ttl);
    let dup = structured("dup", "order.created");
    assert_eq!(
        rt.block_on(p.process(&dup)),
        Outcome::Ack(AckReason::Delivered)
    );
    assert_eq!(
        rt.block_on(p.process(&dup)),
        Outcome::Ack(AckReason::Duplicate)
    );
    g.bench_function("duplicate", |b| {
        b.to_async(&rt).iter(|| p.process(black_box(&dup)));
    });

    // No route for the type: dead letter `unroutable`, the store untouched.
    let lost = structured("lost", "webhook.received");
    let Outcome::DeadLetter(dl) = rt.block_on(p.process(&lost)) else {
        panic!("an unknown type should be dead-lettered");
    };
    assert_eq!(dl.class, "unroutable");
    g.bench_function("dead_letter_unroutable", |b| {
        b.to_async(&rt).iter(|| p.process(black_box(&lost)));
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench_decode, bench_route, bench_process
}
criterion_main!(benches);
