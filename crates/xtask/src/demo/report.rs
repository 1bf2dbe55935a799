//! The report every part prints, in one shape: a table of what happened to
//! each event, the dead letters with their reasons, the worker's summary
//! with its counters checked, and a verdict. A part only says what its
//! target shows about each event; how a row is judged, marked and listed
//! as a problem is decided here, once.

use super::part::Run;
use gluefleet_testkit::file_source::FileMessage;
use gluefleet_testkit::pubsub::{OutgoingMessage, PulledMessage};
use std::collections::BTreeMap;

/// Worker log lines shown when something went wrong.
const LOG_TAIL: usize = 40;
/// How the summary's `received` and `retried` read; a part may add to it.
pub(crate) const RETRIED_NOTE: &str = "  (received counts redeliveries too; retried = handed back \
     to Pub/Sub for redelivery, e.g. a copy\n   that arrived while the same event was in flight";

/// A dead letter as read back: the original body and attributes plus the
/// worker's `gluefleet-*` attributes.
#[derive(Debug, Default)]
pub(crate) struct DeadLetter {
    pub(crate) data: Vec<u8>,
    pub(crate) attributes: BTreeMap<String, String>,
}

impl From<PulledMessage> for DeadLetter {
    fn from(m: PulledMessage) -> Self {
        Self {
            data: m.data,
            attributes: m.attributes,
        }
    }
}

impl From<FileMessage> for DeadLetter {
    fn from(m: FileMessage) -> Self {
        Self {
            data: m.data,
            attributes: m.attributes,
        }
    }
}

impl DeadLetter {
    /// Attribute `key`, empty when absent.
    pub(crate) fn attr(&self, key: &str) -> String {
        self.attributes.get(key).cloned().unwrap_or_default()
    }
}

/// What the worker's log says about one message.
#[derive(Debug, Default)]
pub(crate) struct Logged {
    /// The `reason` of its `Acked.` line: `delivered`, `already-done` or
    /// `duplicate`.
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

/// What the target shows contradicts what the worker says it did: the
/// report marks the row ✗ and lists it as a problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Contradiction(pub(crate) String);

/// One event's line in the table, as its part judged it.
#[derive(Debug)]
pub(crate) struct Row {
    /// `order.created evt-1001`, for the table and the problems.
    pub(crate) label: String,
    /// The cells between the row number and the outcome.
    pub(crate) cells: Vec<String>,
    /// The outcome in words, or why the target contradicts it.
    pub(crate) outcome: Result<String, Contradiction>,
    /// When it did not go as expected: (what was expected, what happened).
    pub(crate) mismatch: Option<(String, String)>,
    /// Added to the outcome after the judgement (e.g. hand-backs).
    pub(crate) suffix: String,
    /// A dead letter's `gluefleet-error`, shown on a line below.
    pub(crate) error: Option<String>,
}

/// One part's report while it is being put together.
#[derive(Debug)]
pub(crate) struct Report<'a> {
    run: &'a Run,
    /// The dead letters by the row (0-based) of the message they stand for.
    dead: BTreeMap<usize, Vec<&'a DeadLetter>>,
    logged: BTreeMap<String, Logged>,
    problems: Vec<String>,
    rows: Vec<(Vec<String>, Option<String>)>,
}

impl<'a> Report<'a> {
    /// Matches the dead letters to the messages sent (by
    /// `gluefleet-original-message-id`) and reads the worker's log.
    pub(crate) fn new(run: &'a Run) -> Self {
        let mut problems = Vec::new();
        let mut dead: BTreeMap<usize, Vec<&DeadLetter>> = BTreeMap::new();
        for dl in &run.dead_letters {
            let original = dl
                .attributes
                .get("gluefleet-original-message-id")
                .map(String::as_str);
            match original.and_then(|id| run.message_ids.iter().position(|m| m == id)) {
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
        Self {
            run,
            dead,
            logged: logged(&run.worker_log),
            problems,
            rows: Vec::new(),
        }
    }

    /// The (first) dead letter of row `i` (0-based).
    pub(crate) fn dead_letter(&self, i: usize) -> Option<&'a DeadLetter> {
        self.dead.get(&i).and_then(|dls| dls.first().copied())
    }

    fn logged_at(&self, i: usize) -> Option<&Logged> {
        self.run
            .message_ids
            .get(i)
            .and_then(|id| self.logged.get(id))
    }

    /// The reason row `i` was acked for, by the worker's log.
    pub(crate) fn acked(&self, i: usize) -> Option<&str> {
        self.logged_at(i).and_then(|l| l.acked.as_deref())
    }

    /// How often row `i` was handed back for redelivery first.
    pub(crate) fn handed_back(&self, i: usize) -> usize {
        self.logged_at(i).map_or(0, |l| l.handed_back)
    }

    /// Records an unexpected thing.
    pub(crate) fn problem(&mut self, problem: String) {
        self.problems.push(problem);
    }

    /// Adds the row of event `i` (0-based): a contradiction or an
    /// unexpected outcome is marked ✗ and listed as a problem.
    pub(crate) fn row(&mut self, i: usize, row: Row) {
        let n = i + 1;
        let mut text = match row.outcome {
            Ok(text) => text,
            Err(Contradiction(why)) => {
                self.problems.push(format!("#{n} {}: {why}", row.label));
                format!("✗ {why}")
            }
        };
        if let Some((expected, seen)) = row.mismatch {
            self.problems.push(format!(
                "#{n} {}: expected {expected}, but {seen}",
                row.label
            ));
            let mark = if text.starts_with('✗') { "" } else { "✗ " };
            text = format!("{mark}{text} (expected: {expected})");
        }
        text.push_str(&row.suffix);
        let mut cells = vec![n.to_string(), row.label];
        cells.extend(row.cells);
        cells.push(text);
        let detail = row.error.map(|e| format!("gluefleet-error: {e}"));
        self.rows.push((cells, detail));
    }

    /// Prints `title` and the rows under `header`.
    pub(crate) fn print_table(&self, title: &str, header: &[&str]) {
        println!("\n{title}\n");
        print_table(header, &self.rows);
    }

    /// Lists the dead letters (`sent` are the published messages, by row)
    /// and checks that each kept its original's body and attributes.
    pub(crate) fn print_dead_letters(&mut self, sent: &[&OutgoingMessage]) {
        println!(
            "\nDead letters ({}): {}, each the original message plus why it failed:",
            self.run.dead_letter_place,
            self.run.dead_letters.len()
        );
        for (&i, dls) in &self.dead {
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
                    self.problems.push(format!(
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
                    self.problems.push(format!(
                        "#{}: the dead letter lost original attributes {lost:?}",
                        i + 1
                    ));
                }
            }
        }
    }

    /// Checks the worker's counters against the `sent` messages and the
    /// dead letters read back; returns the summary object for checks of a
    /// connector's own counters.
    pub(crate) fn check_summary(&mut self, sent: usize) -> Option<serde_json::Value> {
        let problems = &mut self.problems;
        let dead_letters_read = self.run.dead_letters.len();
        let summary = self
            .run
            .summary_line
            .as_deref()
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

    /// Prints the worker's summary line, and `note` below it if any.
    pub(crate) fn print_summary_line(&self, note: Option<&str>) {
        if let Some(line) = &self.run.summary_line {
            println!("\nworker summary: {line}");
            if let Some(note) = note {
                println!("{note}");
            }
        }
    }

    /// The closing lines: all well, or each problem and the end of the
    /// worker's log to find out why. True when all went as expected.
    pub(crate) fn finish(self) -> bool {
        if self.problems.is_empty() {
            println!("\n✓ everything happened as expected.");
            return true;
        }
        println!("\n✗ {} unexpected result(s):", self.problems.len());
        for p in &self.problems {
            println!("  - {p}");
        }
        println!("\nlast lines of the worker's log:");
        for line in tail(&self.run.worker_log, LOG_TAIL) {
            println!("  {line}");
        }
        false
    }
}

/// The last `n` lines.
fn tail(lines: &[String], n: usize) -> &[String] {
    &lines[lines.len().saturating_sub(n)..]
}

/// Prints left-aligned columns, two spaces apart; a row's detail, if any,
/// goes on a line of its own below it.
fn print_table(header: &[&str], rows: &[(Vec<String>, Option<String>)]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for (row, _) in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let columns = widths.len();
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::from(" ");
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            out.push(' ');
            out.push_str(cell);
            if i + 1 < columns {
                let pad = w.saturating_sub(cell.chars().count()) + 1;
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        println!("{}", out.trim_end());
    };
    line(&mut header.iter().copied());
    let rules: Vec<String> = widths.iter().map(|w| "─".repeat(*w)).collect();
    line(&mut rules.iter().map(String::as_str));
    let indent = widths.first().map_or(0, |w| w + 3);
    for (row, detail) in rows {
        line(&mut row.iter().map(String::as_str));
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

    #[test]
    fn the_log_gives_each_message_its_reason_and_handbacks() {
        let log = [
            r#"{"message":"Nacked with a delay.","message_id":"7","reason":"in-flight"}"#,
            r#"{"message":"Acked.","message_id":"7","reason":"duplicate"}"#,
            r#"{"message":"Acked.","message_id":"8","reason":"delivered"}"#,
            r#"{"summary":{"acked":1}}"#,
            "not json",
        ]
        .map(str::to_owned);
        let by_id = logged(&log);
        assert_eq!(by_id["7"].acked.as_deref(), Some("duplicate"));
        assert_eq!(by_id["7"].handed_back, 1);
        assert_eq!(by_id["8"].acked.as_deref(), Some("delivered"));
        assert_eq!(by_id.len(), 2);
    }

    #[test]
    fn an_unexpected_or_contradicted_row_is_marked_once_and_listed() {
        let run = Run::default();
        let mut report = Report::new(&run);
        let row = |outcome, mismatch| Row {
            label: "e".to_owned(),
            cells: Vec::new(),
            outcome,
            mismatch,
            suffix: String::new(),
            error: None,
        };
        report.row(0, row(Ok("fine".to_owned()), None));
        report.row(
            1,
            row(
                Err(Contradiction("but the target disagrees".to_owned())),
                Some(("written".to_owned(), "deleted".to_owned())),
            ),
        );
        assert_eq!(report.rows[0].0, ["1", "e", "fine"]);
        assert_eq!(
            report.rows[1].0[2],
            "✗ but the target disagrees (expected: written)"
        );
        assert_eq!(
            report.problems,
            [
                "#2 e: but the target disagrees",
                "#2 e: expected written, but deleted"
            ]
        );
        assert!(!report.finish());
    }
}
