//! Each operation through the pipeline in process, against the Workspace
//! double: real HTTP, real domain-wide delegation tokens, and every request
//! checked against Google's Discovery documents (a test fails on any
//! request the documents do not allow).

mod common;

use gluefleet_core::outcome::{AckReason, NackReason, Outcome};
use gluefleet_testkit::pipeline::{cloudevent, delivered_and_dead, process_all};
use gluefleet_testkit::workspace::{Fault, WorkspaceDouble};
use serde_json::json;
use std::time::Duration;

fn no_violations(double: &WorkspaceDouble) {
    let v = double.violations();
    assert!(
        v.is_empty(),
        "requests the Discovery documents refuse: {v:#?}"
    );
}

const SHEETS: &str = r#"
[[routes]]
type = "order.created"
subject = "alice@example.com"
action = { operation = "sheets_append", spreadsheet = "orders-2026", range = "Orders!A:C", row = "[.data.id, .data.customer, .data.total]", key_column = "A", value_input = "RAW" }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_go_out_batched_and_a_repeat_without_the_ledger_adds_no_row() {
    let double = common::double().await;
    double.create_spreadsheet("orders-2026", &["Orders"]);
    let events = |n: usize| {
        (0..n)
            .map(|i| {
                cloudevent(
                    &format!("o-{i}"),
                    "order.created",
                    json!({"id": format!("A-{i}"), "customer": "ACME", "total": i}),
                )
            })
            .collect::<Vec<_>>()
    };
    let p = common::pipeline(&double, "", SHEETS, common::provider(&double, None));
    let outcomes = process_all(&p, events(100)).await;
    let (delivered, dead) = delivered_and_dead(&outcomes);
    assert_eq!((delivered, dead.len()), (100, 0), "{outcomes:?}");
    let rows = double.rows("orders-2026", "Orders");
    assert_eq!(rows.len(), 100);
    let appends = double.calls("sheets.spreadsheets.values.append");
    assert!(appends <= 5, "100 rows in {appends} appends");

    // A second worker with no memory of the first (its ledger lost, the
    // events redelivered after a crash): the key column says they are in.
    let fresh = common::pipeline(&double, "", SHEETS, common::provider(&double, None));
    let outcomes = process_all(&fresh, events(100)).await;
    assert!(
        outcomes
            .iter()
            .all(|o| *o == Outcome::Ack(AckReason::AlreadyDone)),
        "{outcomes:?}"
    );
    assert_eq!(
        double.rows("orders-2026", "Orders").len(),
        100,
        "no row twice"
    );
    assert_eq!(
        double.calls("sheets.spreadsheets.values.append"),
        appends,
        "nothing was appended again"
    );
    no_violations(&double);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_cut_off_after_it_landed_is_not_appended_again() {
    let double = common::double().await;
    double.create_spreadsheet("orders-2026", &["Orders"]);
    let routes = SHEETS.replace("subject =", "timeout = \"1s\"\nsubject =");
    let p = common::pipeline(&double, "", &routes, common::provider(&double, None));
    double.fail_next(
        "sheets.spreadsheets.values.append",
        1,
        Fault::ApplyThenHold(Duration::from_secs(3)),
    );
    let outcome = p
        .process(&cloudevent(
            "o-1",
            "order.created",
            json!({"id": "A-1", "customer": "ACME", "total": 5}),
        ))
        .await;
    assert_eq!(
        outcome,
        Outcome::Ack(AckReason::AlreadyDone),
        "the retry read the key column and found the row"
    );
    assert_eq!(double.rows("orders-2026", "Orders").len(), 1, "one row");
    assert_eq!(double.calls("sheets.spreadsheets.values.append"), 1);
    no_violations(&double);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_writes_the_computed_row() {
    let double = common::double().await;
    double.create_spreadsheet("stock", &["Stock"]);
    let routes = r#"
[[routes]]
type = "stock.counted"
subject = "alice@example.com"
action = { operation = "sheets_update", spreadsheet = "stock", range = "Stock!A{data.row}", row = "[.data.sku, .data.count]" }
"#;
    let p = common::pipeline(&double, "", routes, common::provider(&double, None));
    for (id, count) in [("s-1", 4), ("s-2", 9)] {
        let outcome = p
            .process(&cloudevent(
                id,
                "stock.counted",
                json!({"row": 3, "sku": "SKU-1", "count": count}),
            ))
            .await;
        assert_eq!(outcome, Outcome::Ack(AckReason::Delivered));
    }
    let rows = double.rows("stock", "Stock");
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(rows[2], vec![json!("SKU-1"), json!(9)], "{rows:?}");
    no_violations(&double);
}

const GMAIL: &str = r#"
[[routes]]
type = "order.shipped"
subject = "{data.seller}"
timeout = "1s"
action = { operation = "gmail_send", to = "{data.buyer}", subject = "Order {data.id} shipped", text = "\"Your order \\(.data.id) is on its way.\"", headers = { "Reply-To" = "{data.seller}" } }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mail_goes_out_as_the_subject_once_even_when_its_answer_is_lost() {
    let double = common::double().await;
    let p = common::pipeline(&double, "", GMAIL, common::provider(&double, None));
    double.fail_next(
        "gmail.users.messages.send",
        1,
        Fault::ApplyThenHold(Duration::from_secs(3)),
    );
    let shipped = |id: &str| {
        cloudevent(
            id,
            "order.shipped",
            json!({"id": id, "seller": "alice@example.com", "buyer": "carol@customer.example"}),
        )
    };
    let outcome = p.process(&shipped("A-7")).await;
    assert_eq!(
        outcome,
        Outcome::Ack(AckReason::AlreadyDone),
        "the retry found the first send by its Message-ID"
    );
    let sent = double.sent("alice@example.com");
    assert_eq!(sent.len(), 1, "sent once");
    let headers = &sent[0].headers;
    assert_eq!(
        headers.get("to").map(String::as_str),
        Some("carol@customer.example")
    );
    assert_eq!(
        headers.get("subject").map(String::as_str),
        Some("Order A-7 shipped")
    );
    assert_eq!(
        headers.get("reply-to").map(String::as_str),
        Some("alice@example.com")
    );
    assert!(
        headers
            .get("message-id")
            .is_some_and(|m| m.ends_with("@gluefleet>")),
        "{headers:?}"
    );
    // The same event again: the store knows it.
    assert_eq!(
        p.process(&shipped("A-7")).await,
        Outcome::Ack(AckReason::Duplicate)
    );
    assert_eq!(double.sent_count(), 1);
    no_violations(&double);
}

const CALENDAR: &str = r#"
[[routes]]
type = "meeting.booked"
subject = "{data.organizer}"
action = { operation = "calendar_insert", event_key = "{data.meetingId}", event = "{summary: .data.title, start: {dateTime: .data.start}, end: {dateTime: .data.end}}", send_updates = "none" }

[[routes]]
type = "meeting.moved"
subject = "{data.organizer}"
action = { operation = "calendar_patch", event_key = "{data.meetingId}", event = "{start: {dateTime: .data.start}, end: {dateTime: .data.end}}" }

[[routes]]
type = "meeting.cancelled"
subject = "{data.organizer}"
action = { operation = "calendar_delete", event_key = "{data.meetingId}" }
"#;

fn meeting(id: &str, kind: &str, start: &str) -> gluefleet_core::RawMessage {
    cloudevent(
        id,
        kind,
        json!({"meetingId": "M-1", "organizer": "bob@example.com", "title": "Review",
               "start": start, "end": "2026-12-10T11:00:00Z"}),
    )
}

/// A `meeting.booked` event of meeting `meeting` organised by `who`.
fn booked(id: &str, meeting: &str, who: &str) -> gluefleet_core::RawMessage {
    cloudevent(
        id,
        "meeting.booked",
        json!({"meetingId": meeting, "organizer": who, "title": "x",
               "start": "2026-12-10T10:00:00Z", "end": "2026-12-10T11:00:00Z"}),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meeting_is_inserted_once_moved_and_cancelled_by_its_own_key() {
    let double = common::double().await;
    let p = common::pipeline(&double, "", CALENDAR, common::provider(&double, None));
    // Two events for one meeting (a producer that published twice, with
    // two ids): one calendar entry.
    for id in ["b-1", "b-2"] {
        let outcome = p
            .process(&meeting(id, "meeting.booked", "2026-12-10T10:00:00Z"))
            .await;
        assert!(
            matches!(
                outcome,
                Outcome::Ack(AckReason::Delivered | AckReason::AlreadyDone)
            ),
            "{outcome:?}"
        );
    }
    assert_eq!(double.events("bob@example.com").len(), 1);
    assert_eq!(
        double.calls("calendar.events.insert"),
        2,
        "the second got 409"
    );
    assert_eq!(
        p.process(&meeting("m-1", "meeting.moved", "2026-12-10T10:30:00Z"))
            .await,
        Outcome::Ack(AckReason::Delivered)
    );
    let events = double.events("bob@example.com");
    assert_eq!(events[0]["start"]["dateTime"], "2026-12-10T10:30:00Z");
    for id in ["c-1", "c-2"] {
        let outcome = p
            .process(&meeting(id, "meeting.cancelled", "2026-12-10T10:30:00Z"))
            .await;
        assert!(
            matches!(
                outcome,
                Outcome::Ack(AckReason::Delivered | AckReason::AlreadyDone)
            ),
            "{outcome:?}"
        );
    }
    assert!(double.events("bob@example.com").is_empty(), "cancelled");
    no_violations(&double);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_rate_limit_storm_delays_every_event_and_dead_letters_none() {
    let double = common::double().await;
    double.fail_next("calendar.events.insert", 10_000, Fault::UserRateLimit);
    let routes = CALENDAR.replacen(
        "subject = \"{data.organizer}\"",
        "subject = \"{data.organizer}\"\nretry = { budget = \"2s\", initial_backoff = \"50ms\", max_backoff = \"200ms\" }",
        1,
    );
    let p = common::pipeline(&double, "", &routes, common::provider(&double, None));
    let messages = (0..20)
        .map(|i| booked(&format!("r-{i}"), &format!("M-{i}"), "bob@example.com"))
        .collect();
    let outcomes = process_all(&p, messages).await;
    for o in &outcomes {
        assert!(
            matches!(
                o,
                Outcome::Nack {
                    reason: NackReason::RateLimited,
                    ..
                }
            ),
            "{o:?}"
        );
    }
    assert!(double.events("bob@example.com").is_empty());
    no_violations(&double);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_domain_policy_refusal_is_dead_lettered_in_googles_words() {
    let double = common::double().await;
    double.fail_next("calendar.events.insert", 1, Fault::DomainPolicy);
    let p = common::pipeline(&double, "", CALENDAR, common::provider(&double, None));
    let Outcome::DeadLetter(dl) = p
        .process(&meeting("d-1", "meeting.booked", "2026-12-10T10:00:00Z"))
        .await
    else {
        panic!("a dead letter")
    };
    assert_eq!(dl.class, "permanent");
    assert_eq!(dl.http_status, Some(403));
    assert!(dl.error.contains("domainPolicy"), "{}", dl.error);
    no_violations(&double);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_users_cost_a_hundred_token_calls_not_one_per_event() {
    let double = common::double().await;
    let users: Vec<String> = (0..100).map(|i| format!("user{i}@example.com")).collect();
    for u in &users {
        double.add_user(u, false);
    }
    let auth = common::provider(&double, None);
    let p = common::pipeline(&double, "", CALENDAR, auth.clone());
    let mut messages = Vec::new();
    for round in 0..3 {
        for (i, u) in users.iter().enumerate() {
            messages.push(booked(
                &format!("u-{round}-{i}"),
                &format!("M-{round}-{i}"),
                u,
            ));
        }
    }
    let outcomes = process_all(&p, messages).await;
    let (delivered, dead) = delivered_and_dead(&outcomes);
    assert_eq!((delivered, dead.len()), (300, 0), "{dead:?}");
    assert_eq!(double.token_calls(), 100, "one token per user");
    for u in users.iter().take(3) {
        assert_eq!(double.token_calls_for(u), 1, "{u}");
        assert_eq!(double.events(u).len(), 3, "{u}'s own calendar");
    }
    assert_eq!(auth.fetches(), 100);
    no_violations(&double);
}

const DIRECTORY: &str = r#"
[[routes]]
type = "employee.hired"
subject = "admin@example.com"
retry = { budget = "5s", initial_backoff = "20ms", max_backoff = "100ms" }
action = { operation = "directory_insert", user = "{primaryEmail: .data.email, name: {givenName: .data.first, familyName: .data.last}, password: .data.password}" }

[[routes]]
type = "employee.renamed"
subject = "admin@example.com"
retry = { budget = "5s", initial_backoff = "20ms", max_backoff = "100ms" }
action = { operation = "directory_update", user_key = "{data.email}", user = "{name: {givenName: .data.first, familyName: .data.last}}" }

[[routes]]
type = "employee.left"
subject = "admin@example.com"
action = { operation = "directory_delete", user_key = "{data.email}" }
"#;

fn employee(id: &str, kind: &str, first: &str) -> gluefleet_core::RawMessage {
    cloudevent(
        id,
        kind,
        json!({"email": "dana@example.com", "first": first, "last": "Ng", "password": "correct-horse-9"}),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_is_created_once_renamed_while_creation_completes_and_removed() {
    let double = common::double().await;
    double.creation_delay_calls(2);
    let p = common::pipeline(&double, "", DIRECTORY, common::provider(&double, None));
    assert_eq!(
        p.process(&employee("h-1", "employee.hired", "Dana")).await,
        Outcome::Ack(AckReason::Delivered)
    );
    assert_eq!(
        p.process(&employee("h-2", "employee.hired", "Dana")).await,
        Outcome::Ack(AckReason::AlreadyDone),
        "409: the user exists"
    );
    assert_eq!(
        p.process(&employee("r-1", "employee.renamed", "Danielle"))
            .await,
        Outcome::Ack(AckReason::Delivered),
        "'User creation is not complete' is retried"
    );
    let user = double.user("dana@example.com").expect("created");
    assert_eq!(user["name"]["givenName"], "Danielle");
    assert_eq!(
        user["name"]["familyName"], "Ng",
        "patch semantics keep the rest"
    );
    for id in ["l-1", "l-2"] {
        let outcome = p.process(&employee(id, "employee.left", "")).await;
        assert!(
            matches!(
                outcome,
                Outcome::Ack(AckReason::Delivered | AckReason::AlreadyDone)
            ),
            "{outcome:?}"
        );
    }
    assert!(double.user("dana@example.com").is_none());
    no_violations(&double);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_who_is_not_an_admin_cannot_manage_users() {
    let double = common::double().await;
    let routes = DIRECTORY.replace("admin@example.com", "alice@example.com");
    let p = common::pipeline(&double, "", &routes, common::provider(&double, None));
    let Outcome::DeadLetter(dl) = p.process(&employee("h-1", "employee.hired", "Dana")).await
    else {
        panic!("a dead letter")
    };
    assert_eq!(
        (dl.class.as_str(), dl.http_status),
        ("permanent", Some(403))
    );
    assert!(double.user("dana@example.com").is_none());
    no_violations(&double);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_is_fetched_again_for_its_user_only() {
    let double = common::double().await;
    let auth = common::provider(&double, None);
    let p = common::pipeline(&double, "", CALENDAR, auth.clone());
    for (id, who) in [("t-1", "alice@example.com"), ("t-2", "bob@example.com")] {
        assert_eq!(
            p.process(&booked(id, id, who)).await,
            Outcome::Ack(AckReason::Delivered)
        );
    }
    double.expire_tokens();
    assert_eq!(
        p.process(&booked("t-3", "t-3", "alice@example.com")).await,
        Outcome::Ack(AckReason::Delivered),
        "the 401 refreshed alice's token and the retry went through"
    );
    assert_eq!(double.token_calls_for("alice@example.com"), 2);
    assert_eq!(
        double.token_calls_for("bob@example.com"),
        1,
        "bob's was not touched"
    );
    no_violations(&double);
}
