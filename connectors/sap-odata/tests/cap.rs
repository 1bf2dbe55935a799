//! The connector against a real SAP CAP server (OData V4, and V2 through
//! the adapter) with Gateway-style CSRF and ETags; the pipeline runs in
//! process so outcomes are read directly.

use gluefleet_core::outcome::{AckReason, Outcome};
use gluefleet_core::{Pipeline, RawMessage};
use gluefleet_sap_odata::{RawAction, SapConnector, Target};
use gluefleet_testkit::pipeline;
use gluefleet_testkit::sap::SapCap;
use serde_json::{Value, json};
use std::sync::Arc;

const ROUTES: &str = r#"
[[routes]]
type = "partner.created"
action = { operation = "create", entity_set = "BusinessPartners", key = { ID = "{data.id}" }, fields = "{name: .data.name, city: .data.city}" }

[[routes]]
type = "partner.renamed"
action = { operation = "update", entity_set = "BusinessPartners", key = { ID = "{data.id}" }, fields = "{name: .data.name}" }

[[routes]]
type = "partner.renamed.from"
action = { operation = "update", entity_set = "BusinessPartners", key = { ID = "{data.id}" }, fields = "{name: .data.name}", etag = "{data.etag}" }

[[routes]]
type = "partner.renamed.lww"
action = { operation = "update", entity_set = "BusinessPartners", key = { ID = "{data.id}" }, fields = "{name: .data.name}", etag = "{data.etag}", last_writer_wins = true }

[[routes]]
type = "partner.upserted"
action = { operation = "upsert", entity_set = "BusinessPartners", key = { ID = "{data.id}" }, fields = "{name: .data.name, city: .data.city}" }

[[routes]]
type = "partner.deleted"
action = { operation = "delete", entity_set = "BusinessPartners", key = { ID = "{data.id}" } }
"#;

fn pipeline(service: &str, version: &str, batch: bool) -> Arc<Pipeline<SapConnector>> {
    let target: Target = toml::from_str(&format!(
        "service_url = \"{service}\"\nversion = \"{version}\"\nallow_insecure_http = true\nbatch = {batch}\nlinger = \"200ms\"\nsap_client = \"100\""
    ))
    .expect("target");
    let connector = SapConnector::new(target).expect("connector");
    pipeline::build(connector, ROUTES, |raw: RawAction| raw.compile(), None)
}

fn event(id: &str, ty: &str, data: Value) -> RawMessage {
    pipeline::cloudevent(id, ty, data)
}

async fn name_of(cap: &SapCap, id: &str) -> Option<Value> {
    cap.get_entity("BusinessPartners", id)
        .await
        .expect("readable")
        .map(|e| e["name"].clone())
}

async fn operations(cap: &SapCap, service: &str, version: &str) {
    let p = pipeline(service, version, false);
    let n = |s: &str| format!("{version}-{s}");
    let created = event(
        &n("c1"),
        "partner.created",
        json!({"id": n("A"), "name": "Ada", "city": "Oslo"}),
    );
    assert_eq!(
        p.process(&created).await,
        Outcome::Ack(AckReason::Delivered),
        "{version} create"
    );
    assert_eq!(name_of(cap, &n("A")).await, Some(json!("Ada")));
    let dup = event(
        &n("c2"),
        "partner.created",
        json!({"id": n("A"), "name": "Other", "city": "X"}),
    );
    assert_eq!(
        p.process(&dup).await,
        Outcome::Ack(AckReason::AlreadyDone),
        "{version} duplicate create"
    );

    let renamed = event(
        &n("u1"),
        "partner.renamed",
        json!({"id": n("A"), "name": "Ada L."}),
    );
    assert_eq!(
        p.process(&renamed).await,
        Outcome::Ack(AckReason::Delivered),
        "{version} update reads the ETag"
    );
    assert_eq!(name_of(cap, &n("A")).await, Some(json!("Ada L.")));

    let stale = "W/\"2000-01-01T00:00:00.000Z\"";
    let conflict = event(
        &n("u2"),
        "partner.renamed.from",
        json!({"id": n("A"), "name": "Stale", "etag": stale}),
    );
    let Outcome::DeadLetter(dl) = p.process(&conflict).await else {
        panic!("{version}: a stale ETag must dead-letter")
    };
    assert!(
        dl.error.contains("conflict") && dl.http_status == Some(412),
        "{}",
        dl.error
    );
    let lww = event(
        &n("u3"),
        "partner.renamed.lww",
        json!({"id": n("A"), "name": "Latest", "etag": stale}),
    );
    assert_eq!(
        p.process(&lww).await,
        Outcome::Ack(AckReason::Delivered),
        "{version} last writer wins re-reads"
    );
    assert_eq!(name_of(cap, &n("A")).await, Some(json!("Latest")));

    let missing = event(
        &n("u4"),
        "partner.renamed",
        json!({"id": n("NOPE"), "name": "x"}),
    );
    assert!(
        matches!(p.process(&missing).await, Outcome::DeadLetter(_)),
        "{version} update of a missing entity"
    );

    let up_new = event(
        &n("p1"),
        "partner.upserted",
        json!({"id": n("B"), "name": "Bo", "city": "Rome"}),
    );
    assert_eq!(p.process(&up_new).await, Outcome::Ack(AckReason::Delivered));
    let up_old = event(
        &n("p2"),
        "partner.upserted",
        json!({"id": n("B"), "name": "Bob", "city": "Rome"}),
    );
    assert_eq!(p.process(&up_old).await, Outcome::Ack(AckReason::Delivered));
    assert_eq!(name_of(cap, &n("B")).await, Some(json!("Bob")));

    let del = event(&n("d1"), "partner.deleted", json!({"id": n("B")}));
    assert_eq!(p.process(&del).await, Outcome::Ack(AckReason::Delivered));
    assert_eq!(name_of(cap, &n("B")).await, None);
    let again = event(&n("d2"), "partner.deleted", json!({"id": n("B")}));
    assert_eq!(
        p.process(&again).await,
        Outcome::Ack(AckReason::AlreadyDone)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v4_and_v2_operations_with_etags() {
    let cap = SapCap::start().await.expect("SAP CAP starts");
    operations(&cap, &cap.v4_service(), "v4").await;
    operations(&cap, &cap.v2_service(), "v2").await;
}

async fn burst(
    p: &Arc<Pipeline<SapConnector>>,
    prefix: &str,
    n: usize,
    bad: &[usize],
) -> Vec<Outcome> {
    let messages = (0..n)
        .map(|i| {
            // String(10) keys: a longer one is refused by the service.
            let id = if bad.contains(&i) {
                format!("{prefix}-TOO-LONG-{i}")
            } else {
                format!("{prefix}{i:04}")
            };
            event(
                &format!("{prefix}-{i}"),
                "partner.created",
                json!({"id": id, "name": format!("P{i}"), "city": "X"}),
            )
        })
        .collect();
    pipeline::process_all(p, messages).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_of_100_with_two_bad_and_csrf_expiry() {
    let cap = SapCap::start().await.expect("SAP CAP starts");
    for (version, service) in [("v4", cap.v4_service()), ("v2", cap.v2_service())] {
        let p = pipeline(&service, version, true);
        let before = cap.stats().await.expect("stats")["requests"]
            .as_u64()
            .unwrap_or(0);
        let outcomes = burst(&p, &format!("{}B", &version[1..]), 100, &[13, 77]).await;
        let (applied, dead) = pipeline::delivered_and_dead(&outcomes);
        assert_eq!((applied, dead.len()), (98, 2), "{version}: {outcomes:?}");
        for d in &dead {
            assert!(
                d.error.contains("String(10)"),
                "{version}: SAP's message kept: {}",
                d.error
            );
        }
        let used = cap.stats().await.expect("stats")["requests"]
            .as_u64()
            .unwrap_or(0)
            - before;
        assert!(
            used <= 3,
            "{version}: 100 events in {used} OData requests (token fetch + $batch)"
        );

        // The session expires mid-run: one new token, no failed event.
        let fetches = p.connector().csrf_fetches();
        cap.invalidate_csrf().await.expect("invalidate");
        let outcomes = burst(&p, &format!("{}C", &version[1..]), 20, &[]).await;
        assert!(
            outcomes
                .iter()
                .all(|o| *o == Outcome::Ack(AckReason::Delivered)),
            "{version}: {outcomes:?}"
        );
        assert_eq!(
            p.connector().csrf_fetches(),
            fetches + 1,
            "{version}: one refetch"
        );
    }
}
