//! Credentials that expire every 5 s during a 2,000-event run.
//!
//! The token endpoint issues OAuth 2.0 client-credentials tokens with
//! `expires_in = 5`; the target answers 401 to a missing, unknown or expired
//! token, judged by the token server's clock. What the worker does
//! (crates/core/src/auth/client_credentials.rs): it caches the token and
//! refreshes it ahead of expiry, `refresh_ahead` = min(60 s, a tenth of the
//! token's life) = 0.5 s before, so a 5 s token is replaced after 4.5 s:
//! one refresh per expiry. The first caller past that point fetches while
//! the others keep using the still-valid token (one fetch per refresh,
//! whatever the concurrency). So:
//!
//! - token requests: one at start, then one per 4.5 s of traffic (bounds
//!   derived from the measured times, below);
//! - consecutive token requests at least 4.5 s apart (no stampede);
//! - no request ever reaches the target with an expired token: no 401 at
//!   all, so no event needs its one refresh-and-retry, none is dead-lettered.
//!
//! A rate limit of 100 events/s stretches the run over ~20 s, four token
//! lifetimes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use gluefleet_testkit::http_target::Reply;
use gluefleet_testkit::token::{TokenCheck, TokenServer};

use crate::harness::{self, Fleet, Setup, millis, secs, spread};

const EVENTS: usize = 2_000;
const LIFETIME: Duration = Duration::from_secs(5);
const CLIENT_ID: &str = "gluefleet-fault";
const CLIENT_SECRET: &str = "fault-secret";
/// Events per second the route may send.
const RATE: usize = 100;
/// Clock slack between the token requests (both read on this process's
/// clock; the fetch starts before the request arrives).
const SLACK: Duration = Duration::from_millis(50);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_expiring_every_5_s_are_refreshed_ahead_once_each_and_no_event_fails() {
    let _turn = harness::one_at_a_time().await;
    let tokens = TokenServer::start(CLIENT_ID, CLIENT_SECRET, LIFETIME)
        .await
        .expect("the token server starts");
    let mut setup = Setup::new("credentials");
    setup.pubsub = "concurrency = 64".into();
    setup.tables = format!(
        r#"
[rate_limits.erp]
requests = {RATE}
per = "1s"

[auth]
kind = "oauth2_client_credentials"
token_url = "{url}"
client_id = "{CLIENT_ID}"
client_secret = "${{FAULT_CLIENT_SECRET}}"
scopes = ["orders.write"]
"#,
        url = tokens.token_url()
    );
    setup.route = r#"rate_limit = { bucket = "erp" }"#.into();
    setup.env = vec![("FAULT_CLIENT_SECRET", CLIENT_SECRET.to_owned())];
    let mut fleet = Fleet::start(setup).await;

    let refused = Arc::new(AtomicUsize::new(0));
    let (verifier, count) = (tokens.verifier(), refused.clone());
    fleet.target.rule(move |r| {
        let check = verifier.check_request(r);
        (check != TokenCheck::Valid).then(|| {
            count.fetch_add(1, Ordering::SeqCst);
            Reply::status(401)
                .header("WWW-Authenticate", "Bearer error=\"invalid_token\"")
                .body(format!(
                    r#"{{"error":"invalid_token","check":"{check:?}"}}"#
                ))
        })
    });

    let expected = fleet.publish_new_orders(EVENTS).await;
    let mut worker = fleet.worker(&["run"]).await;
    fleet
        .assert_all_applied(&expected, Duration::from_secs(120), "", &worker)
        .await;
    fleet.settle_and_stop(&mut worker).await;

    let requests = fleet.target.requests();
    let answered_401 = requests.iter().filter(|r| r.status == 401).count();
    assert_eq!(
        (answered_401, refused.load(Ordering::SeqCst)),
        (0, 0),
        "no call carried an expired, unknown or missing token"
    );
    let refused_grants = tokens.requests().iter().filter(|r| r.status != 200).count();
    assert_eq!(refused_grants, 0, "every token request was granted");

    // One fetch at start, then one per refresh interval of traffic.
    let issued = tokens.issued();
    let first_token = issued.first().expect("a token was fetched").at;
    let first_call = requests.first().expect("the target was called").at;
    let last_call = requests.last().expect("the target was called").at;
    let refresh_every = LIFETIME - (LIFETIME / 10).min(Duration::from_secs(60));
    let intervals =
        |d: Duration, every: Duration| (d.as_secs_f64() / every.as_secs_f64()).floor() as usize;
    // At most: fetch n comes at least n refresh intervals after the first
    // (a token is only replaced once its refresh point has passed).
    let at_most = intervals(
        last_call.saturating_duration_since(first_token) + SLACK,
        refresh_every,
    ) + 1;
    // At least: while calls go out every 10 ms, a token is replaced at the
    // first call past its refresh point, so within a traffic window of W
    // there is a fetch at least every interval plus a little (calls, the
    // fetch itself; 100 ms allowed): floor(W / (interval + 100 ms)).
    let traffic = last_call.saturating_duration_since(first_call);
    let during_traffic = issued
        .iter()
        .filter(|t| t.at + SLACK >= first_call && t.at <= last_call)
        .count();
    let at_least = intervals(traffic, refresh_every + Duration::from_millis(100));
    assert!(
        issued.len() <= at_most && during_traffic >= at_least,
        "{} token requests ({during_traffic} during {} of traffic): expected at most {at_most}, and at least {at_least} during the traffic (one per {} of traffic)",
        issued.len(),
        secs(traffic),
        millis(refresh_every)
    );
    let gaps: Vec<Duration> = issued
        .windows(2)
        .map(|w| w[1].at.duration_since(w[0].at))
        .collect();
    assert!(
        gaps.iter().all(|g| *g + SLACK >= refresh_every),
        "no token fetched before the previous one reached its refresh point: gaps {gaps:?}"
    );

    fleet.assert_nothing_left().await;
    let tally = fleet.assert_clean_end(&expected, &worker).await;
    assert_eq!(
        tally.requests, EVENTS,
        "one call per event: no retry after a refused token"
    );
    fleet.report(
        &tally,
        0,
        &[
            ("token_lifetime", secs(LIFETIME)),
            ("token_requests", issued.len().to_string()),
            ("token_requests_during_traffic", during_traffic.to_string()),
            ("traffic", secs(traffic)),
            (
                "expected_token_requests",
                format!("at_least_{at_least}_during_traffic..=at_most_{at_most}"),
            ),
            ("gap_between_fetches(min/median/max)", spread(gaps)),
            ("answered_401", answered_401.to_string()),
        ],
    );
}
