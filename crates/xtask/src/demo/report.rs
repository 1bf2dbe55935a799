//! What happened to each event, worked out from what the order system saw
//! and what reached the dead-letter topic, checked against what should have.

use super::events::{Expect, Sample};
use super::order_system::BASE_PATH;
use gluefleet_testkit::http_target::LoggedRequest;
use gluefleet_testkit::pubsub::OutgoingMessage;
use std::collections::BTreeMap;

/// A dead letter as read back: the original body and attributes plus the
/// worker's `gluefleet-*` attributes.
#[derive(Debug, Default)]
pub(crate) struct DeadLetter {
    pub(crate) data: Vec<u8>,
    pub(crate) attributes: BTreeMap<String, String>,
}

/// Everything the demo saw.
#[derive(Debug, Default)]
pub(crate) struct Observed {
    /// The message id of each sample, in sample order.
    pub(crate) message_ids: Vec<String>,
    /// Every call the order system got.
    pub(crate) requests: Vec<LoggedRequest>,
    /// Per Idempotency-Key, how many calls were applied (2xx).
    pub(crate) effects: BTreeMap<String, usize>,
    /// The dead letters.
    pub(crate) dead_letters: Vec<DeadLetter>,
    /// Where they were read from, for the report.
    pub(crate) dead_letter_place: String,
    /// The worker's output.
    pub(crate) worker_log: Vec<String>,
    /// The worker's `{"summary": …}` line.
    pub(crate) summary_line: Option<String>,
}

/// What happened to one event.
#[derive(Debug)]
enum Seen {
    Delivered,
    RetriedThenDelivered(Vec<u16>),
    DuplicateSuppressed(usize),
    AlreadyDone,
    DeadLettered { class: String, error: String },
    NoEffect,
    Applied(usize),
    Vanished,
}

impl Seen {
    fn matches(&self, expect: Expect) -> bool {
        match (self, expect) {
            (Seen::Delivered, Expect::Delivered)
            | (Seen::RetriedThenDelivered(_), Expect::RetriedThenDelivered)
            | (Seen::DuplicateSuppressed(_) | Seen::AlreadyDone, Expect::DuplicateOf(_)) => true,
            (Seen::DeadLettered { class, .. }, Expect::DeadLettered(want)) => class == want,
            _ => false,
        }
    }

    /// The outcome in a few words; a dead letter's error comes separately.
    fn short(&self) -> String {
        match self {
            Seen::DeadLettered { class, .. } => format!("dead-lettered: {class}"),
            other => other.describe(),
        }
    }

    fn describe(&self) -> String {
        match self {
            Seen::Delivered => "delivered".to_owned(),
            Seen::RetriedThenDelivered(failed) => {
                let failed: Vec<String> = failed.iter().map(u16::to_string).collect();
                format!("retried then delivered (after {})", failed.join(", "))
            }
            Seen::DuplicateSuppressed(of) => {
                format!("duplicate suppressed (same event as #{of}, no second call)")
            }
            Seen::AlreadyDone => "already done (the order system answered 409)".to_owned(),
            Seen::DeadLettered { class, error } => format!("dead-lettered: {class}: {error}"),
            Seen::NoEffect => "NO EFFECT: never applied, not dead-lettered".to_owned(),
            Seen::Applied(n) => format!("APPLIED {n} TIMES"),
            Seen::Vanished => "no call and no dead letter".to_owned(),
        }
    }
}

fn describe_expect(expect: Expect) -> String {
    match expect {
        Expect::Delivered => "delivered".to_owned(),
        Expect::DuplicateOf(n) => format!("duplicate of #{n}, no second effect"),
        Expect::RetriedThenDelivered => "retried then delivered".to_owned(),
        Expect::DeadLettered(class) => format!("dead-lettered as {class}"),
    }
}

fn is_2xx(status: u16) -> bool {
    (200..300).contains(&status)
}

/// Splits the calls on each path between the samples that target it: the
/// first sample takes the calls up to and including the first 2xx, the
/// next one (a duplicate) the rest.
fn calls_per_sample<'a>(
    samples: &[Sample],
    requests: &'a [LoggedRequest],
) -> Vec<Vec<&'a LoggedRequest>> {
    let mut calls = vec![Vec::new(); samples.len()];
    let mut by_path: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, s) in samples.iter().enumerate() {
        if let Some(p) = &s.path {
            by_path
                .entry(format!("{BASE_PATH}{p}"))
                .or_default()
                .push(i);
        }
    }
    for (path, rows) in by_path {
        let on_path: Vec<&LoggedRequest> = requests.iter().filter(|r| r.path == path).collect();
        let split = match rows.len() {
            1 => on_path.len(),
            _ => on_path
                .iter()
                .position(|r| is_2xx(r.status))
                .map_or(on_path.len(), |k| k + 1),
        };
        let (first, rest) = on_path.split_at(split);
        if let Some(&row) = rows.first() {
            calls[row] = first.to_vec();
        }
        if let Some(&row) = rows.get(1) {
            calls[row] = rest.to_vec();
        }
    }
    calls
}

/// `2× POST /erp/orders/A-1003 → 503, 201`.
fn calls_text(calls: &[&LoggedRequest]) -> String {
    let Some(first) = calls.first() else {
        return "no call".to_owned();
    };
    let statuses: Vec<String> = calls.iter().map(|r| r.status.to_string()).collect();
    format!(
        "{}× {} {} → {}",
        calls.len(),
        first.method,
        first.path,
        statuses.join(", ")
    )
}

/// Prints the table, the dead letters and the effects; returns every
/// unexpected thing found.
pub(crate) fn print(samples: &[Sample], observed: &Observed) -> Vec<String> {
    let mut problems = Vec::new();

    let dead = dead_letters_by_row(&observed.dead_letters, &observed.message_ids, &mut problems);

    let calls = calls_per_sample(samples, &observed.requests);
    let mut rows = Vec::new();
    for (i, sample) in samples.iter().enumerate() {
        let mine = &calls[i];
        let oks = mine.iter().filter(|r| is_2xx(r.status)).count();
        let seen = if let Some(dls) = dead.get(&i) {
            let attr = |k: &str| dls[0].attributes.get(k).cloned().unwrap_or_default();
            Seen::DeadLettered {
                class: attr("gluefleet-error-class"),
                error: attr("gluefleet-error"),
            }
        } else if let Expect::DuplicateOf(of) = sample.expect {
            match oks {
                0 if mine.is_empty() => Seen::DuplicateSuppressed(of),
                0 if mine.iter().all(|r| r.status == 409) => Seen::AlreadyDone,
                0 => Seen::NoEffect,
                n => Seen::Applied(n + 1),
            }
        } else if sample.path.is_none() {
            Seen::Vanished
        } else {
            match oks {
                0 => Seen::NoEffect,
                1 if mine.len() == 1 => Seen::Delivered,
                1 => Seen::RetriedThenDelivered(
                    mine.iter()
                        .map(|r| r.status)
                        .filter(|s| !is_2xx(*s))
                        .collect(),
                ),
                n => Seen::Applied(n),
            }
        };
        let mut outcome = seen.short();
        if !seen.matches(sample.expect) {
            problems.push(format!(
                "#{} {}: expected {}, but {}",
                i + 1,
                sample.label,
                describe_expect(sample.expect),
                seen.describe()
            ));
            outcome = format!("✗ {outcome} (expected: {})", describe_expect(sample.expect));
        }
        let detail = match &seen {
            Seen::DeadLettered { error, .. } => Some(format!("gluefleet-error: {error}")),
            _ => None,
        };
        rows.push((
            [
                (i + 1).to_string(),
                sample.label.clone(),
                sample.shape.to_owned(),
                sample.order.unwrap_or("—").to_owned(),
                calls_text(mine),
                outcome,
            ],
            detail,
        ));
    }
    println!("\nWhat happened to each event:\n");
    print_table(
        [
            "#",
            "event",
            "sent as",
            "order",
            "calls the order system got",
            "outcome",
        ],
        &rows,
    );

    // Calls nobody asked for.
    for r in &observed.requests {
        let expected = samples
            .iter()
            .filter_map(|s| s.path.as_ref())
            .any(|p| format!("{BASE_PATH}{p}") == r.path);
        if !expected {
            problems.push(format!(
                "the order system got an unexpected call: {} {} → {}",
                r.method, r.path, r.status
            ));
        }
        if r.idempotency_key().is_none() {
            problems.push(format!(
                "{} {} came without an Idempotency-Key header",
                r.method, r.path
            ));
        }
    }

    let sent: Vec<&OutgoingMessage> = samples.iter().map(|s| &s.message).collect();
    print_dead_letters(
        &sent,
        &observed.dead_letter_place,
        observed.dead_letters.len(),
        &dead,
        &mut problems,
    );
    print_effects(observed, &mut problems);
    check_summary(
        observed.summary_line.as_deref(),
        samples.len(),
        observed.dead_letters.len(),
        &mut problems,
    );
    problems
}

/// The dead letters by the row (0-based) of the message they stand for,
/// found by `gluefleet-original-message-id`.
pub(crate) fn dead_letters_by_row<'a>(
    dead_letters: &'a [DeadLetter],
    message_ids: &[String],
    problems: &mut Vec<String>,
) -> BTreeMap<usize, Vec<&'a DeadLetter>> {
    let mut dead: BTreeMap<usize, Vec<&DeadLetter>> = BTreeMap::new();
    for dl in dead_letters {
        let original = dl
            .attributes
            .get("gluefleet-original-message-id")
            .map(String::as_str);
        match original.and_then(|id| message_ids.iter().position(|m| m == id)) {
            Some(i) => dead.entry(i).or_default().push(dl),
            None => problems.push(format!(
                "a dead letter for a message the demo did not send ({original:?})"
            )),
        }
    }
    for (i, dls) in &dead {
        if dls.len() > 1 {
            problems.push(format!("#{}: dead-lettered {} times", i + 1, dls.len()));
        }
    }
    dead
}

/// Lists the dead letters (`sent` are the published messages, by row) and
/// checks that each kept its original's body and attributes.
pub(crate) fn print_dead_letters(
    sent: &[&OutgoingMessage],
    place: &str,
    count: usize,
    dead: &BTreeMap<usize, Vec<&DeadLetter>>,
    problems: &mut Vec<String>,
) {
    println!("\nDead letters ({place}): {count}, each the original message plus why it failed:");
    for (&i, dls) in dead {
        let Some(message) = sent.get(i) else {
            continue;
        };
        for dl in dls {
            let shown: Vec<String> = [
                "gluefleet-error-class",
                "gluefleet-http-status",
                "gluefleet-route",
                "gluefleet-attempts",
            ]
            .iter()
            .filter_map(|k| {
                let v = dl.attributes.get(*k).filter(|v| !v.is_empty())?;
                Some(format!("{k}={v}"))
            })
            .collect();
            println!("  #{:<2} {}", i + 1, shown.join("  "));
            if dl.data != message.data {
                problems.push(format!(
                    "#{}: the dead letter's body differs from the original",
                    i + 1
                ));
            }
            let lost: Vec<&String> = message
                .attributes
                .iter()
                .filter(|(k, v)| dl.attributes.get(*k) != Some(*v))
                .map(|(k, _)| k)
                .collect();
            if !lost.is_empty() {
                problems.push(format!(
                    "#{}: the dead letter lost original attributes {lost:?}",
                    i + 1
                ));
            }
        }
    }
}

fn print_effects(observed: &Observed, problems: &mut Vec<String>) {
    let total: usize = observed.effects.values().sum();
    println!(
        "\nThe order system applied {total} change(s), by Idempotency-Key \
         (CloudEvents source + id, else the Pub/Sub message id):"
    );
    for (key, n) in &observed.effects {
        println!("  {key:<32} applied {n}×");
        if *n > 1 {
            problems.push(format!("Idempotency-Key {key} was applied {n} times"));
        }
    }
}

/// What the worker's log says about one message.
#[derive(Debug, Default)]
pub(crate) struct Logged {
    /// The `reason` of its `Acked.` line: `Delivered`, `AlreadyDone` or
    /// `Duplicate`.
    pub(crate) acked: Option<String>,
    /// How often it was handed back for redelivery first (a copy that
    /// arrived while the same event was in flight).
    pub(crate) handed_back: usize,
}

/// The worker's log lines about each message, by message id.
pub(crate) fn logged(log: &[String]) -> BTreeMap<String, Logged> {
    let mut by_id: BTreeMap<String, Logged> = BTreeMap::new();
    for line in log {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let text = |k: &str| v.get(k).and_then(serde_json::Value::as_str);
        let (Some(message), Some(id)) = (text("message"), text("message_id")) else {
            continue;
        };
        let entry = by_id.entry(id.to_owned()).or_default();
        match message {
            "Acked." => entry.acked = text("reason").map(str::to_owned),
            "Nacked with a delay." => entry.handed_back += 1,
            _ => {}
        }
    }
    by_id
}

/// Checks the worker's counters against what was sent (`sent` messages)
/// and read back (`dead_letters_read`); returns the summary object for
/// checks of a connector's own counters.
pub(crate) fn check_summary(
    summary_line: Option<&str>,
    sent: usize,
    dead_letters_read: usize,
    problems: &mut Vec<String>,
) -> Option<serde_json::Value> {
    let summary = summary_line
        .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .and_then(|v| v.get("summary").cloned());
    let Some(summary) = summary else {
        problems.push("the worker printed no {\"summary\": …} line".to_owned());
        return None;
    };
    let n = |k: &str| summary.get(k).and_then(serde_json::Value::as_u64);
    let (
        Some(received),
        Some(acked),
        Some(duplicates),
        Some(retried),
        Some(dead_lettered),
        Some(dead_letter_failed),
    ) = (
        n("received"),
        n("acked"),
        n("duplicates"),
        n("retried"),
        n("dead_lettered"),
        n("dead_letter_failed"),
    )
    else {
        problems.push(format!("the worker's summary lacks a counter: {summary}"));
        return Some(summary);
    };
    let settled = acked + duplicates + dead_lettered;
    if settled != sent as u64 {
        problems.push(format!(
            "the worker settled {settled} messages (acked + duplicates + dead-lettered), \
             {sent} were sent"
        ));
    }
    if received != settled + retried {
        problems.push(format!(
            "the worker received {received} deliveries but settled {settled} and handed back {retried}"
        ));
    }
    if dead_letter_failed > 0 {
        problems.push(format!(
            "{dead_letter_failed} dead letter(s) could not be published"
        ));
    }
    if dead_lettered != dead_letters_read as u64 {
        problems.push(format!(
            "the worker says it dead-lettered {dead_lettered}, {dead_letters_read} were read back"
        ));
    }
    Some(summary)
}

/// Prints left-aligned columns, two spaces apart; a row's detail, if any,
/// goes on a line of its own below it.
pub(crate) fn print_table<const N: usize>(
    header: [&str; N],
    rows: &[([String; N], Option<String>)],
) {
    let mut widths = header.map(|h| h.chars().count());
    for (row, _) in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; N]| {
        let mut out = String::from(" ");
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            out.push(' ');
            out.push_str(cell);
            if i + 1 < N {
                let pad = w.saturating_sub(cell.chars().count()) + 1;
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header);
    line(widths.map(|w| "─".repeat(w)).each_ref().map(String::as_str));
    let indent = widths.first().map_or(0, |w| w + 3);
    for (row, detail) in rows {
        line(row.each_ref().map(String::as_str));
        if let Some(detail) = detail {
            // One line, however many the target's message had.
            let detail = detail.split_whitespace().collect::<Vec<_>>().join(" ");
            println!("{:indent$}└ {detail}", "");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::events::samples;
    use std::time::Instant;

    fn call(path: &str, status: u16) -> LoggedRequest {
        LoggedRequest {
            method: "POST".to_owned(),
            path: format!("{BASE_PATH}{path}"),
            headers: BTreeMap::from([("idempotency-key".to_owned(), "k".to_owned())]),
            body: String::new(),
            at: Instant::now(),
            status,
        }
    }

    #[test]
    fn the_log_gives_each_message_its_reason_and_handbacks() {
        let log = [
            r#"{"message":"Nacked with a delay.","message_id":"7","reason":"InFlight"}"#,
            r#"{"message":"Acked.","message_id":"7","reason":"Duplicate"}"#,
            r#"{"message":"Acked.","message_id":"8","reason":"Delivered"}"#,
            r#"{"summary":{"acked":1}}"#,
            "not json",
        ]
        .map(str::to_owned);
        let by_id = logged(&log);
        assert_eq!(by_id["7"].acked.as_deref(), Some("Duplicate"));
        assert_eq!(by_id["7"].handed_back, 1);
        assert_eq!(by_id["8"].acked.as_deref(), Some("Delivered"));
        assert_eq!(by_id.len(), 2);
    }

    #[test]
    fn a_duplicate_gets_the_calls_after_the_first_success() {
        let samples = samples();
        let requests = [
            call("/orders/A-1003", 503),
            call("/orders/A-1001", 201),
            call("/orders/A-1003", 201),
            call("/orders/A-1001", 409),
        ];
        let calls = calls_per_sample(&samples, &requests);
        let statuses =
            |row: usize| -> Vec<u16> { calls[row - 1].iter().map(|r| r.status).collect() };
        assert_eq!(statuses(1), [201], "#1 takes up to its first success");
        assert_eq!(statuses(2), [409], "#2, its duplicate, the rest");
        assert_eq!(statuses(4), [503, 201], "a single sample takes every call");
        assert!(statuses(8).is_empty(), "no path, no calls");
        assert_eq!(
            calls_text(&calls[3]),
            "2× POST /erp/orders/A-1003 → 503, 201"
        );
    }
}
