//! What happened to each order event, worked out from what the order
//! system saw and what reached the dead-letter topic, checked against what
//! should have.

use super::events::{Expect, Sample};
use super::order_system::BASE_PATH;
use crate::demo::part::Run;
use crate::demo::report::{RETRIED_NOTE, Report, Row};
use gluefleet_testkit::http_target::LoggedRequest;
use gluefleet_testkit::pubsub::OutgoingMessage;
use std::collections::BTreeMap;

/// Everything part 1 saw.
#[derive(Debug, Default)]
pub(crate) struct Observed {
    /// Every call the order system got.
    pub(crate) requests: Vec<LoggedRequest>,
    /// Per Idempotency-Key, how many calls were applied (2xx).
    pub(crate) effects: BTreeMap<String, usize>,
    /// What the worker left behind.
    pub(crate) run: Run,
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

/// Prints the table, the dead letters, the effects and the worker's
/// summary; true when everything happened as expected.
pub(crate) fn print(samples: &[Sample], observed: &Observed) -> bool {
    let mut report = Report::new(&observed.run);
    let calls = calls_per_sample(samples, &observed.requests);
    for (i, sample) in samples.iter().enumerate() {
        let mine = &calls[i];
        let oks = mine.iter().filter(|r| is_2xx(r.status)).count();
        let seen = if let Some(dl) = report.dead_letter(i) {
            Seen::DeadLettered {
                class: dl.attr("gluefleet-error-class"),
                error: dl.attr("gluefleet-error"),
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
        let row = Row {
            label: sample.label.clone(),
            cells: vec![
                sample.shape.to_owned(),
                sample.order.unwrap_or("—").to_owned(),
                calls_text(mine),
            ],
            outcome: Ok(seen.short()),
            mismatch: (!seen.matches(sample.expect))
                .then(|| (describe_expect(sample.expect), seen.describe())),
            suffix: String::new(),
            error: match &seen {
                Seen::DeadLettered { error, .. } => Some(error.clone()),
                _ => None,
            },
        };
        report.row(i, row);
    }
    report.print_table(
        "What happened to each event:",
        &[
            "#",
            "event",
            "sent as",
            "order",
            "calls the order system got",
            "outcome",
        ],
    );

    // Calls nobody asked for.
    for r in &observed.requests {
        let expected = samples
            .iter()
            .filter_map(|s| s.path.as_ref())
            .any(|p| format!("{BASE_PATH}{p}") == r.path);
        if !expected {
            report.problem(format!(
                "the order system got an unexpected call: {} {} → {}",
                r.method, r.path, r.status
            ));
        }
        if r.idempotency_key().is_none() {
            report.problem(format!(
                "{} {} came without an Idempotency-Key header",
                r.method, r.path
            ));
        }
    }

    let sent: Vec<&OutgoingMessage> = samples.iter().map(|s| &s.message).collect();
    report.print_dead_letters(&sent);
    print_effects(observed, &mut report);
    report.check_summary(samples.len());
    report.print_summary_line(Some(&format!(
        "{RETRIED_NOTE}; retries within one delivery, like the one after the 503, are not \
         counted)"
    )));
    report.finish()
}

fn print_effects(observed: &Observed, report: &mut Report<'_>) {
    let total: usize = observed.effects.values().sum();
    println!(
        "\nThe order system applied {total} change(s), by Idempotency-Key \
         (CloudEvents source + id, else the Pub/Sub message id):"
    );
    for (key, n) in &observed.effects {
        println!("  {key:<32} applied {n}×");
        if *n > 1 {
            report.problem(format!("Idempotency-Key {key} was applied {n} times"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::legacy_rest::events::samples;
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
