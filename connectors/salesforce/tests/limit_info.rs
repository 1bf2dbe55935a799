//! The daily-limit gate against the Salesforce double speaking each
//! documented `Sforce-Limit-Info` form: a header near the limit stops calls
//! for `limit_backoff`, events wait as delayed nacks (never dead letters),
//! and once usage falls every one of them is applied. The pipeline runs in
//! process, so outcomes and the summary's figures are read directly.

mod common;

use gluefleet_core::outcome::{AckReason, NackReason, Outcome};
use gluefleet_core::{Connector, Pipeline, RawMessage};
use gluefleet_salesforce::SalesforceConnector;
use gluefleet_testkit::pipeline;
use gluefleet_testkit::salesforce::{
    AppAllocation, LimitInfoForm, SalesforceConfig, SalesforceDouble,
};
use std::sync::Arc;
use std::time::Duration;

/// The shortest `limit_backoff` the config takes: real sockets cannot run
/// on paused time.
const BACKOFF: Duration = Duration::from_secs(1);

/// A retry budget too short to wait out the gate in process, so a closed
/// gate shows as a delayed nack, as it does for any wait longer than the
/// budget.
/// `[target]`: a short linger and the shortest gate.
fn target() -> String {
    format!(
        "linger = \"20ms\"\nlimit_backoff = \"{}s\"",
        BACKOFF.as_secs()
    )
}

const ROUTES: &str = r#"
[[routes]]
type = "customer.upserted"
retry = { budget = "300ms" }
action = { operation = "upsert", sobject = "Account", external_id_field = "External_Id__c", external_id = "{data.id}", fields = "{Name: .data.name}" }
"#;

/// The figures the job summary prints.
fn summary(p: &Pipeline<SalesforceConnector>) -> Vec<(&'static str, u64)> {
    p.connector()
        .stats()
        .into_iter()
        .filter(|(k, _)| k.starts_with("api_"))
        .collect()
}

fn delivered(o: &Outcome) -> bool {
    *o == Outcome::Ack(AckReason::Delivered)
}

/// The limit is reached: every event is handed back to wait, none is lost or
/// dead-lettered, and no call goes out.
async fn events_wait_without_a_call(
    p: &Arc<Pipeline<SalesforceConnector>>,
    double: &SalesforceDouble,
    events: Vec<RawMessage>,
    what: &str,
) {
    let calls = double.api_calls();
    let outcomes = pipeline::process_all(p, events).await;
    for o in &outcomes {
        assert!(
            matches!(o, Outcome::Nack { reason: NackReason::RateLimited, delay } if !delay.is_zero() && *delay <= BACKOFF),
            "{what}: {o:?}"
        );
    }
    assert_eq!(
        double.api_calls(),
        calls,
        "{what}: no call while the limit is near"
    );
}

/// Once usage has fallen and `limit_backoff` passed, redelivered events are
/// all applied (a redelivery is what Pub/Sub does after a delayed nack).
async fn all_applied_after_usage_falls(
    p: &Arc<Pipeline<SalesforceConnector>>,
    events: Vec<RawMessage>,
    what: &str,
) {
    tokio::time::sleep(BACKOFF + Duration::from_millis(100)).await;
    let mut pending = events;
    for _ in 0..3 {
        if pending.is_empty() {
            break;
        }
        let outcomes = pipeline::process_all(p, pending.clone()).await;
        let mut next = Vec::new();
        for (m, o) in pending.into_iter().zip(outcomes) {
            if delivered(&o) {
                continue;
            }
            assert!(
                matches!(
                    o,
                    Outcome::Nack {
                        reason: NackReason::RateLimited,
                        ..
                    }
                ),
                "{what}: {o:?}"
            );
            next.push(m);
        }
        pending = next;
    }
    assert!(pending.is_empty(), "{what}: {} not applied", pending.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_at_96_of_100_stops_calls_until_usage_falls() {
    for (form, header) in [
        (LimitInfoForm::Current, "api-usage=96/100; api-bursts=1/750"),
        (LimitInfoForm::Commas, "api-usage=96/100, api-bursts=1/750"),
        (LimitInfoForm::UsageOnly, "api-usage=96/100"),
    ] {
        let what = format!("{form:?}");
        let double = SalesforceDouble::start(SalesforceConfig {
            daily_limit: 100,
            initial_usage: 95,
            limit_info: form,
            ..SalesforceConfig::default()
        })
        .await
        .expect("double");
        let p = common::pipeline(&double, &target(), ROUTES);
        let first = pipeline::process_all(&p, common::upserts("F", 1)).await;
        assert!(first.iter().all(delivered), "{what}: {first:?}");
        let answered = double.requests();
        let last = answered.last().expect("a call");
        assert_eq!(last.status, 200, "{what}");
        assert_eq!(double.api_calls(), 1);
        assert_eq!(
            summary(&p),
            [
                ("api_usage", 96),
                ("api_limit", 100),
                ("api_app_usage", 0),
                ("api_app_limit", 0)
            ],
            "{what}: the summary holds what {header:?} said"
        );

        let waiting = common::upserts("W", 20);
        events_wait_without_a_call(&p, &double, waiting.clone(), &what).await;
        assert_eq!(double.record_count("Account"), 1, "{what}");

        double.set_usage(10);
        all_applied_after_usage_falls(&p, waiting, &what).await;
        assert_eq!(double.record_count("Account"), 21, "{what}");
        let calls = double.api_calls();
        assert!(calls <= 4, "{what}: 20 waiting upserts in {calls} calls");
        assert_eq!(summary(&p)[0], ("api_usage", 10 + calls - 1), "{what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_app_allocation_stops_calls_while_the_org_has_plenty() {
    // An older org's form: `api-usage=1/15000; per-app-api-usage=238/250(appName=…)`.
    let double = SalesforceDouble::start(SalesforceConfig {
        limit_info: LimitInfoForm::UsageOnly,
        app_allocation: Some(AppAllocation {
            name: "gluefleet-erp".to_owned(),
            limit: 250,
            initial_usage: 237,
        }),
        ..SalesforceConfig::default()
    })
    .await
    .expect("double");
    let p = common::pipeline(&double, &target(), ROUTES);
    let first = pipeline::process_all(&p, common::upserts("F", 1)).await;
    assert!(first.iter().all(delivered), "{first:?}");
    assert_eq!(
        summary(&p),
        [
            ("api_usage", 1),
            ("api_limit", 15_000),
            ("api_app_usage", 238),
            ("api_app_limit", 250)
        ],
        "the org's and the app's figures side by side"
    );

    let waiting = common::upserts("W", 20);
    events_wait_without_a_call(&p, &double, waiting.clone(), "app at 95 %").await;
    let refused = double.requests().iter().filter(|r| r.status == 403).count();
    assert_eq!(
        refused, 0,
        "the gate stopped calls before Salesforce had to"
    );

    double.set_app_usage(0);
    all_applied_after_usage_falls(&p, waiting, "app usage fell").await;
    assert_eq!(double.record_count("Account"), 21);
}
