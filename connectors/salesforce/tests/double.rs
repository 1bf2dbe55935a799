//! The connector against the Salesforce sandbox double (the documented
//! contract: JWT bearer, Collections, limits, sessions), with the pipeline in
//! process so outcomes are read directly.

mod common;

use gluefleet_core::outcome::{AckReason, NackReason, Outcome};
use gluefleet_testkit::pipeline;
use gluefleet_testkit::salesforce::{SalesforceConfig, SalesforceDouble};
use serde_json::json;

/// `[target]` with this linger and a gate that stays shut for the test.
fn target(linger_ms: u64) -> String {
    format!("linger = \"{linger_ms}ms\"\nlimit_backoff = \"120s\"")
}

const ROUTES: &str = r#"
[[routes]]
type = "customer.upserted"
action = { operation = "upsert", sobject = "Account", external_id_field = "External_Id__c", external_id = "{data.id}", fields = "{Name: .data.name}" }

[[routes]]
type = "customer.upserted.single"
action = { operation = "upsert", batch = false, sobject = "Account", external_id_field = "External_Id__c", external_id = "{data.id}", fields = "{Name: .data.name}" }

[[routes]]
type = "customer.removed"
action = { operation = "delete", sobject = "Account", id = "{data.sfid}" }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_upserts_take_five_collections_calls() {
    let double = SalesforceDouble::start(SalesforceConfig::default())
        .await
        .expect("double");
    let p = common::pipeline(&double, &target(200), ROUTES);
    let outcomes = pipeline::process_all(&p, common::upserts("C", 1000)).await;
    assert!(
        outcomes
            .iter()
            .all(|o| *o == Outcome::Ack(AckReason::Delivered))
    );
    assert_eq!(double.record_count("Account"), 1000);
    assert_eq!(
        double
            .record("Account", "C-0042")
            .map(|r| r["Name"].clone()),
        Some(json!("Customer 42"))
    );
    assert_eq!(double.api_calls(), 5, "200 records per call");
    assert_eq!(double.token_calls(), 1);
    assert_eq!(
        p.connector().api_usage(),
        (5, 15_000),
        "usage read from Sforce-Limit-Info"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_invalid_records_are_dead_lettered_and_197_acked() {
    let double = SalesforceDouble::start(SalesforceConfig::default())
        .await
        .expect("double");
    double.fail_record_when(|r| {
        r["Name"]
            .as_str()
            .filter(|n| n.ends_with(" 7") || n.ends_with(" 77") || n.ends_with(" 177"))
            .map(|_| {
                (
                    "FIELD_CUSTOM_VALIDATION_EXCEPTION".to_owned(),
                    "Name may not end in 7".to_owned(),
                    vec!["Name".to_owned()],
                )
            })
    });
    let p = common::pipeline(&double, &target(200), ROUTES);
    let outcomes = pipeline::process_all(&p, common::upserts("V", 200)).await;
    let (acked, dead) = pipeline::delivered_and_dead(&outcomes);
    assert_eq!((acked, dead.len()), (197, 3));
    for d in dead {
        assert_eq!(d.class, "permanent");
        assert!(
            d.error.contains(
                "FIELD_CUSTOM_VALIDATION_EXCEPTION: Name may not end in 7 (fields: Name)"
            ),
            "{}",
            d.error
        );
    }
    assert_eq!(
        double.api_calls(),
        1,
        "one Collections call for 200 records"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_expiry_mid_run_costs_one_refresh_and_no_event() {
    let double = SalesforceDouble::start(SalesforceConfig::default())
        .await
        .expect("double");
    let p = common::pipeline(&double, &target(50), ROUTES);
    let first = pipeline::process_all(&p, common::upserts("S1", 300)).await;
    double.expire_sessions();
    let second = pipeline::process_all(&p, common::upserts("S2", 300)).await;
    assert!(
        first
            .iter()
            .chain(&second)
            .all(|o| *o == Outcome::Ack(AckReason::Delivered))
    );
    assert_eq!(double.record_count("Account"), 600);
    assert_eq!(double.token_calls(), 2, "one refresh after the expiry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daily_limit_reached_stops_calls_and_delays_events() {
    let double = SalesforceDouble::start(SalesforceConfig {
        daily_limit: 1000,
        ..SalesforceConfig::default()
    })
    .await
    .expect("double");
    let p = common::pipeline(&double, &target(20), ROUTES);
    double.set_usage(1000);
    let outcomes = pipeline::process_all(&p, common::upserts("L", 50)).await;
    assert!(
        outcomes.iter().all(|o| matches!(o, Outcome::Nack { reason: NackReason::RateLimited, delay } if !delay.is_zero())),
        "{outcomes:?}"
    );
    let calls = double.api_calls();
    assert_eq!(double.record_count("Account"), 0);
    // The org is known to be out of calls: nothing more goes out.
    let again = pipeline::process_all(&p, common::upserts("L", 50)).await;
    assert!(again.iter().all(|o| matches!(
        o,
        Outcome::Nack {
            reason: NackReason::RateLimited,
            ..
        }
    )));
    assert_eq!(
        double.api_calls(),
        calls,
        "no call while the limit is spent"
    );
    let refused = double.requests().iter().filter(|r| r.status == 403).count();
    assert!(refused >= 1, "the first call met REQUEST_LIMIT_EXCEEDED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_upsert_and_idempotent_delete() {
    let double = SalesforceDouble::start(SalesforceConfig::default())
        .await
        .expect("double");
    let p = common::pipeline(&double, &target(5), ROUTES);
    let create = pipeline::cloudevent(
        "u1",
        "customer.upserted.single",
        json!({"id": "X-1", "name": "One"}),
    );
    assert_eq!(p.process(&create).await, Outcome::Ack(AckReason::Delivered));
    let update = pipeline::cloudevent(
        "u2",
        "customer.upserted.single",
        json!({"id": "X-1", "name": "Uno"}),
    );
    assert_eq!(p.process(&update).await, Outcome::Ack(AckReason::Delivered));
    assert_eq!(
        double.record("Account", "X-1").map(|r| r["Name"].clone()),
        Some(json!("Uno"))
    );
    let statuses: Vec<u16> = double
        .requests()
        .iter()
        .filter(|r| r.path.contains("/sobjects/Account/External_Id__c/"))
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [201, 200]);
    let gone = pipeline::cloudevent(
        "d1",
        "customer.removed",
        json!({"sfid": "001000000000000AAA"}),
    );
    assert_eq!(p.process(&gone).await, Outcome::Ack(AckReason::AlreadyDone));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_naming_an_untrusted_instance_is_never_followed() {
    for (instance, says) in [
        // Plain http to another machine: the core refuses the token itself.
        ("http://na1.salesforce.com", "not https"),
        // https, but outside Salesforce's domains (and not configured).
        (
            "https://salesforce.com.evil.example",
            "target.instance_domains",
        ),
    ] {
        let double = SalesforceDouble::start(SalesforceConfig {
            instance_url: Some(instance.to_owned()),
            ..SalesforceConfig::default()
        })
        .await
        .expect("double");
        let p = common::pipeline(&double, &target(5), ROUTES);
        let event = pipeline::cloudevent(
            "t1",
            "customer.upserted.single",
            json!({"id": "T-1", "name": "One"}),
        );
        match p.process(&event).await {
            Outcome::DeadLetter(d) => {
                assert_eq!(d.class, "permanent");
                assert!(
                    d.error.contains(instance) && d.error.contains(says),
                    "{}",
                    d.error
                );
            }
            other => panic!("{instance}: {other:?}"),
        }
        assert_eq!(double.token_calls(), 1);
        assert_eq!(double.api_calls(), 0, "no call reached any instance");
    }
}
