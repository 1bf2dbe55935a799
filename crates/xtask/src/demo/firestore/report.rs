//! What happened to each account event, worked out from the documents in
//! the Firestore emulator, the dead letters and the worker's per-message
//! log lines, checked against what should have.

use super::accounts::{self, COLLECTION, Expect, SERVER_TIME, Sample};
use crate::demo::part::Run;
use crate::demo::report::{Contradiction, RETRIED_NOTE, Report, Row};
use gluefleet_testkit::firestore::plain;
use gluefleet_testkit::pubsub::OutgoingMessage;
use serde_json::Value;
use std::collections::BTreeMap;

/// Everything part 2 saw.
#[derive(Debug, Default)]
pub(crate) struct Observed {
    /// The collection's documents afterwards, as the REST API returns them.
    pub(crate) documents: Vec<Value>,
    /// What the worker left behind.
    pub(crate) run: Run,
}

/// What happened to one event.
#[derive(Debug)]
enum Seen {
    /// A create or update applied.
    Written,
    Deleted,
    /// A create that found its document: acked without a change.
    AlreadyExisted,
    /// Acked without a write: the same event as the row given.
    DuplicateSuppressed(Option<usize>),
    DeadLettered {
        class: String,
        error: String,
    },
    /// Acked for a reason that does not fit its operation.
    Acked(String),
    /// Neither acked nor dead-lettered.
    Vanished,
}

impl Seen {
    /// The outcome in a few words, without what the document adds.
    fn describe(&self) -> String {
        match self {
            Seen::Written => "written".to_owned(),
            Seen::Deleted => "deleted".to_owned(),
            Seen::AlreadyExisted => "already existed".to_owned(),
            Seen::DuplicateSuppressed(Some(of)) => {
                format!("duplicate suppressed (same event as #{of}, no second write)")
            }
            Seen::DuplicateSuppressed(None) => "duplicate suppressed".to_owned(),
            Seen::DeadLettered { class, .. } => format!("dead-lettered: {class}"),
            Seen::Acked(reason) => format!("acked ({reason})"),
            Seen::Vanished => "no outcome in the worker's log and no dead letter".to_owned(),
        }
    }
}

fn describe_expect(expect: Expect) -> String {
    match expect {
        Expect::Written => "written".to_owned(),
        Expect::DuplicateOf(n) => format!("duplicate of #{n}, no second write"),
        Expect::AlreadyExisted => "already existed, left as is".to_owned(),
        Expect::DeadLettered(class, text) => format!("dead-lettered as {class} ({text})"),
        Expect::Deleted => "deleted".to_owned(),
    }
}

fn event_type(sample: &Sample) -> &str {
    sample
        .message
        .attributes
        .get("ce-type")
        .map_or("", String::as_str)
}

/// The rows (1-based) of the other samples with the same CloudEvents id.
fn copies_of(samples: &[Sample], i: usize) -> impl Iterator<Item = usize> {
    let id = |s: &Sample| s.message.attributes.get("ce-id").cloned();
    let mine = id(&samples[i]);
    samples
        .iter()
        .enumerate()
        .filter(move |(j, s)| *j != i && id(s) == mine)
        .map(|(j, _)| j + 1)
}

/// What the log and the dead letters say about each sample.
fn seen_per_sample(samples: &[Sample], report: &Report<'_>) -> Vec<Seen> {
    samples
        .iter()
        .enumerate()
        .map(|(i, sample)| {
            if let Some(dl) = report.dead_letter(i) {
                return Seen::DeadLettered {
                    class: dl.attr("gluefleet-error-class"),
                    error: dl.attr("gluefleet-error"),
                };
            }
            match (report.acked(i), event_type(sample)) {
                (Some("delivered"), "account.deleted") => Seen::Deleted,
                (Some("delivered"), _) => Seen::Written,
                (Some("already-done"), "account.created") => Seen::AlreadyExisted,
                (Some("duplicate"), _) => Seen::DuplicateSuppressed(copies_of(samples, i).next()),
                (Some(other), _) => Seen::Acked(other.to_owned()),
                (None, _) => Seen::Vanished,
            }
        })
        .collect()
}

/// Whether row `i` (0-based) went as expected. The copies of one event
/// may be handled in either order, so a later copy written and an earlier
/// one suppressed is as good as the other way round.
fn matches(samples: &[Sample], seen: &[Seen], i: usize) -> bool {
    let seen_at = |row: usize| seen.get(row.wrapping_sub(1));
    match (&seen[i], samples[i].expect) {
        (Seen::Written, Expect::Written)
        | (Seen::Deleted, Expect::Deleted)
        | (Seen::AlreadyExisted, Expect::AlreadyExisted)
        | (Seen::DuplicateSuppressed(_), Expect::DuplicateOf(_)) => true,
        (Seen::Written, Expect::DuplicateOf(of)) => {
            matches!(seen_at(of), Some(Seen::DuplicateSuppressed(_)))
        }
        (Seen::DuplicateSuppressed(_), Expect::Written) => {
            copies_of(samples, i).any(|row| matches!(seen_at(row), Some(Seen::Written)))
        }
        (Seen::DeadLettered { class, error }, Expect::DeadLettered(want, text)) => {
            class == want && error.contains(text)
        }
        _ => false,
    }
}

/// The collection's documents by id, fields in plain JSON.
fn plain_documents(observed: &Observed) -> BTreeMap<String, (Value, &Value)> {
    observed
        .documents
        .iter()
        .map(|doc| {
            let name = doc.get("name").and_then(Value::as_str).unwrap_or_default();
            let id = name.rsplit('/').next().unwrap_or_default().to_owned();
            (id, (plain(&doc["fields"]), &doc["fields"]))
        })
        .collect()
}

/// `plan free → pro, visits 41 → 42`: the fields that differ.
fn changes(before: &Value, after: &Value) -> String {
    let (Some(before), Some(after)) = (before.as_object(), after.as_object()) else {
        return String::new();
    };
    let show = |v: Option<&Value>| match v {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "—".to_owned(),
    };
    after
        .keys()
        .chain(before.keys().filter(|k| !after.contains_key(*k)))
        .filter(|k| before.get(*k) != after.get(*k))
        .map(|k| format!("{k} {} → {}", show(before.get(k)), show(after.get(k))))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The outcome with what the document shows, or why it contradicts it.
fn outcome(sample: &Sample, seen: &Seen, doc: Option<&Value>) -> Result<String, Contradiction> {
    let path = sample.document();
    let seeded = accounts::seeds()
        .into_iter()
        .find(|s| s.account == sample.account)
        .map(|s| plain(&s.rest_fields()));
    match (seen, doc) {
        (Seen::Written | Seen::AlreadyExisted, None) => Err(Contradiction(format!(
            "{}, but {path} is not there",
            seen.describe()
        ))),
        (Seen::Deleted, Some(_)) => {
            Err(Contradiction(format!("deleted, but {path} is still there")))
        }
        (Seen::Written, Some(doc)) if event_type(sample) == "account.updated" => {
            match seeded.map(|before| changes(&before, doc)) {
                Some(changed) if !changed.is_empty() => Ok(format!("written: {changed}")),
                _ => Ok("written".to_owned()),
            }
        }
        (Seen::AlreadyExisted, Some(doc)) => {
            let kept = doc.get("name").and_then(Value::as_str);
            match (kept, accounts::sent_name(sample)) {
                (Some(kept), Some(sent)) if kept == sent => Err(Contradiction(format!(
                    "already existed, but {path} has the event's name {sent:?}"
                ))),
                (Some(kept), Some(sent)) => Ok(format!(
                    "already existed (kept name {kept:?}, not the event's {sent:?})"
                )),
                _ => Ok(seen.describe()),
            }
        }
        _ => Ok(seen.describe()),
    }
}

/// Prints the table, the documents, the dead letters and the worker's
/// summary; true when everything happened as expected.
pub(crate) fn print(samples: &[Sample], observed: &Observed) -> bool {
    let mut report = Report::new(&observed.run);
    let seen = seen_per_sample(samples, &report);
    let documents = plain_documents(observed);

    for (i, sample) in samples.iter().enumerate() {
        let doc = documents.get(sample.account).map(|(fields, _)| fields);
        let suffix = match (&seen[i], report.handed_back(i)) {
            (_, 0) => String::new(),
            (Seen::DuplicateSuppressed(Some(of)), 1) => {
                format!(", handed back once first: #{of} was in flight")
            }
            (_, n) => format!(", handed back {n}× first"),
        };
        let row = Row {
            label: sample.label.clone(),
            cells: vec![sample.document()],
            outcome: outcome(sample, &seen[i], doc),
            mismatch: (!matches(samples, &seen, i))
                .then(|| (describe_expect(sample.expect), seen[i].describe())),
            suffix,
            error: match &seen[i] {
                Seen::DeadLettered { error, .. } => Some(error.clone()),
                _ => None,
            },
        };
        report.row(i, row);
    }
    report.print_table(
        "What happened to each event:",
        &["#", "event", "document", "outcome"],
    );

    print_documents(&documents, &mut report);
    let sent: Vec<&OutgoingMessage> = samples.iter().map(|s| &s.message).collect();
    report.print_dead_letters(&sent);
    let writes = seen
        .iter()
        .filter(|s| !matches!(s, Seen::DuplicateSuppressed(_)))
        .count();
    print_summary(samples.len(), writes, &mut report);
    report.finish()
}

/// Lists the collection and compares it with [`accounts::documents_after`].
fn print_documents(documents: &BTreeMap<String, (Value, &Value)>, report: &mut Report<'_>) {
    println!(
        "\nThe {COLLECTION} collection afterwards ({} documents, read back from the Firestore \
         emulator):",
        documents.len()
    );
    let width = documents.keys().map(String::len).max().unwrap_or(0);
    for (id, (fields, _)) in documents {
        println!("  {id:<width$}  {fields}");
    }
    let expected = accounts::documents_after();
    for (id, want) in &expected {
        let Some((got, raw)) = documents.get(*id) else {
            report.problem(format!("{COLLECTION}/{id} should be there, but is not"));
            continue;
        };
        if !same_fields(want, got, raw) {
            report.problem(format!("{COLLECTION}/{id} holds {got}, expected {want}"));
        }
    }
    for id in documents.keys() {
        if !expected.iter().any(|(want, _)| want == id) {
            report.problem(format!("{COLLECTION}/{id} should not be there"));
        }
    }
}

/// Whether the fields are as expected; a [`SERVER_TIME`] field must be a
/// timestamp (which `plain` turns into a string like any other).
fn same_fields(want: &Value, got: &Value, raw: &Value) -> bool {
    let (Some(want), Some(got)) = (want.as_object(), got.as_object()) else {
        return false;
    };
    want.len() == got.len()
        && want.iter().all(|(k, w)| {
            if w == SERVER_TIME {
                raw[k.as_str()]["timestampValue"].is_string()
            } else {
                got.get(k) == Some(w)
            }
        })
}

/// The worker's summary, its counters checked, and what batching saved.
fn print_summary(events: usize, writes: usize, report: &mut Report<'_>) {
    let summary = report.check_summary(events);
    report.print_summary_line(Some(&format!("{RETRIED_NOTE})")));
    let Some(summary) = summary else {
        return;
    };
    let Some(requests) = summary.get("target_requests").and_then(Value::as_u64) else {
        report.problem(format!(
            "the worker's summary has no target_requests: {summary}"
        ));
        return;
    };
    println!(
        "  {requests} Firestore requests for {events} events: {writes} writes (a suppressed \
         duplicate makes none), and writes\n  waiting at the same moment share one batchWrite \
         (two writes to one document never do)"
    );
    if requests == 0 && writes > 0 {
        report.problem(format!("{writes} writes but no Firestore request"));
    } else if requests > writes as u64 {
        report.problem(format!(
            "{requests} Firestore requests for {writes} writes: more requests than writes"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::firestore::accounts::samples;
    use serde_json::json;

    #[test]
    fn copies_of_one_event_may_be_handled_in_either_order() {
        let samples = samples();
        let mut seen: Vec<Seen> = samples
            .iter()
            .map(|s| match s.expect {
                Expect::Written => Seen::Written,
                Expect::DuplicateOf(of) => Seen::DuplicateSuppressed(Some(of)),
                Expect::AlreadyExisted => Seen::AlreadyExisted,
                Expect::DeadLettered(class, text) => Seen::DeadLettered {
                    class: class.to_owned(),
                    error: format!("update: {text}"),
                },
                Expect::Deleted => Seen::Deleted,
            })
            .collect();
        assert!((0..samples.len()).all(|i| matches(&samples, &seen, i)));
        // #4 (the second copy of #1's event) written, #1 suppressed: fine.
        seen[0] = Seen::DuplicateSuppressed(Some(4));
        seen[3] = Seen::Written;
        assert!(matches(&samples, &seen, 0) && matches(&samples, &seen, 3));
        // Both written: the second copy is the one in the wrong.
        seen[0] = Seen::Written;
        assert!(matches(&samples, &seen, 0) && !matches(&samples, &seen, 3));
    }

    #[test]
    fn changes_name_the_fields_that_differ() {
        let before = json!({ "plan": "free", "visits": 41, "name": "T" });
        let after = json!({ "plan": "pro", "visits": 42, "name": "T" });
        assert_eq!(changes(&before, &after), "plan free → pro, visits 41 → 42");
    }

    #[test]
    fn a_server_time_field_must_be_a_timestamp() {
        let want = json!({ "createdAt": SERVER_TIME, "name": "A" });
        let got = json!({ "createdAt": "2025-01-01T00:00:00Z", "name": "A" });
        let raw = json!({ "createdAt": { "timestampValue": "2025-01-01T00:00:00Z" } });
        assert!(same_fields(&want, &got, &raw));
        let raw = json!({ "createdAt": { "stringValue": "2025-01-01T00:00:00Z" } });
        assert!(!same_fields(&want, &got, &raw));
    }
}
