//! What happened to each HR and sales event, worked out from the worker's
//! per-message log lines and the dead letters, checked against what the
//! Workspace double holds afterwards (the sheet's rows, the seller's sent
//! mail, the organizer's calendar, the Directory); then the tokens it
//! issued per user and the requests it found outside Google's Discovery
//! documents.

use super::samples::{
    BOOKED_BEFORE, BOOKED_TITLE, Expect, NAMELESS_VIOLATION, RATE_LIMITED_INSERTS, SHEET,
    SPREADSHEET, Sample,
};
use crate::demo::part::Run;
use crate::demo::report::{Contradiction, DeadLetter, Report, Row};
use gluefleet_testkit::pubsub::OutgoingMessage;
use gluefleet_testkit::workspace::SentMessage;
use serde_json::Value;
use std::collections::BTreeSet;

/// Everything part 4 saw.
#[derive(Debug, Default)]
pub(crate) struct Observed {
    /// The orders sheet's rows afterwards.
    pub(crate) rows: Vec<Vec<Value>>,
    /// The mail the seller sent.
    pub(crate) sent: Vec<SentMessage>,
    /// The organizer's calendar (events not cancelled).
    pub(crate) events: Vec<Value>,
    /// The meeting booked before the run, as Calendar holds it afterwards.
    pub(crate) cancelled: Option<Value>,
    /// Each hire's Directory entry afterwards, by email.
    pub(crate) users: Vec<(String, Option<Value>)>,
    /// Token calls during the run, per user.
    pub(crate) token_calls: Vec<(String, u64)>,
    /// `calendar.events.insert` calls during the run, rate-limited ones
    /// included.
    pub(crate) calendar_inserts: u64,
    /// The double's Discovery violations.
    pub(crate) violations: Vec<String>,
    /// What the worker left behind.
    pub(crate) run: Run,
}

/// What the worker did with one event, by its log and the dead letters.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// Acked with this reason (`Delivered`, `AlreadyDone`, `Duplicate`).
    Acked(String),
    DeadLettered {
        class: String,
        error: String,
        status: Option<u16>,
    },
    /// Neither acked nor dead-lettered.
    Vanished,
}

impl Seen {
    fn describe(&self) -> String {
        match self {
            Seen::Acked(reason) => format!("acked: {reason}"),
            Seen::DeadLettered { class, status, .. } => match status {
                Some(s) => format!("dead letter: {class} ({s})"),
                None => format!("dead letter: {class}"),
            },
            Seen::Vanished => "no outcome in the log, no dead letter".to_owned(),
        }
    }

    fn matches(&self, expect: Expect) -> bool {
        match (self, expect) {
            (Seen::Acked(r), Expect::Applied) => r == "delivered",
            (Seen::Acked(r), Expect::AppliedOnce) => r == "delivered" || r == "already-done",
            (
                Seen::DeadLettered {
                    class,
                    error,
                    status,
                },
                Expect::DeadLettered(want, text, want_status),
            ) => class == want && error.contains(text) && *status == Some(want_status),
            _ => false,
        }
    }
}

fn describe_expect(expect: Expect) -> String {
    match expect {
        Expect::Applied => "acked: Delivered".to_owned(),
        Expect::AppliedOnce => "acked: Delivered or AlreadyDone".to_owned(),
        Expect::DeadLettered(class, text, status) => {
            format!("dead letter: {class} ({status}, {text})")
        }
    }
}

fn seen(reason: Option<&str>, dead: Option<&DeadLetter>) -> Seen {
    if let Some(dl) = dead {
        return Seen::DeadLettered {
            class: dl.attr("gluefleet-error-class"),
            error: dl.attr("gluefleet-error"),
            status: dl.attr("gluefleet-http-status").parse().ok(),
        };
    }
    reason.map_or(Seen::Vanished, |r| Seen::Acked(r.to_owned()))
}

/// A cell as the sheet shows it.
fn cell(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}

/// The user part of an address, for narrow columns.
fn local(email: &str) -> &str {
    email.split('@').next().unwrap_or(email)
}

/// What the double shows about `sample`, or why it contradicts what the
/// worker did.
fn outcome(sample: &Sample, seen: &Seen, observed: &Observed) -> Result<String, Contradiction> {
    let acked = matches!(seen, Seen::Acked(_));
    let fail = |why: String| Err(Contradiction(why));
    match sample.event_type() {
        "order.created" => {
            let id = sample.field("id");
            let rows: Vec<(usize, &Vec<Value>)> = observed
                .rows
                .iter()
                .enumerate()
                .filter(|(_, r)| r.first().and_then(Value::as_str) == Some(id))
                .collect();
            match (acked, rows.as_slice()) {
                (true, [(at, row)]) => {
                    let cells: Vec<String> = row.iter().map(cell).collect();
                    if *seen == Seen::Acked("already-done".to_owned()) {
                        Ok(format!(
                            "{id} already in column A (row {}): no second row",
                            at + 1
                        ))
                    } else {
                        Ok(format!("row {}: {}", at + 1, cells.join(" | ")))
                    }
                }
                (true, rows) => fail(format!("{} rows for {id}, not one", rows.len())),
                (false, []) => Ok(format!("no row for {id}")),
                (false, _) => fail(format!("not acked, but the sheet has {id}")),
            }
        }
        "order.shipped" => {
            let subject = format!("Order {} shipped", sample.field("id"));
            let mails: Vec<&SentMessage> = observed
                .sent
                .iter()
                .filter(|m| m.headers.get("subject") == Some(&subject))
                .collect();
            let header = |m: &SentMessage, h: &str| m.headers.get(h).cloned().unwrap_or_default();
            match (acked, mails.as_slice()) {
                (true, [m]) => Ok(format!(
                    "mail to {}: \"{}\" (below)",
                    header(m, "to"),
                    header(m, "subject"),
                )),
                (true, mails) => fail(format!("{} mails \"{subject}\", not one", mails.len())),
                (false, []) => Ok("no mail".to_owned()),
                (false, _) => fail(format!("not acked, but \"{subject}\" went out")),
            }
        }
        "meeting.booked" => {
            let title = sample.field("title");
            let found: Vec<&Value> = observed
                .events
                .iter()
                .filter(|e| e["summary"].as_str() == Some(title))
                .collect();
            match (acked, found.as_slice()) {
                (true, [_]) => Ok(format!(
                    "\"{title}\" on {}'s calendar: call {} of events.insert, after {} × 403 \
                     userRateLimitExceeded",
                    local(sample.acting_as),
                    observed.calendar_inserts,
                    observed.calendar_inserts.saturating_sub(1)
                )),
                (true, found) => fail(format!("{} events \"{title}\", not one", found.len())),
                (false, []) => Ok("no calendar event".to_owned()),
                (false, _) => fail(format!("not acked, but \"{title}\" is on the calendar")),
            }
        }
        "meeting.cancelled" => {
            let status = observed
                .cancelled
                .as_ref()
                .and_then(|e| e["status"].as_str())
                .unwrap_or("gone");
            match (acked, status) {
                (true, "cancelled") => Ok(format!(
                    "{BOOKED_BEFORE} \"{}\" cancelled (kept with status cancelled)",
                    observed
                        .cancelled
                        .as_ref()
                        .and_then(|e| e["summary"].as_str())
                        .unwrap_or("?")
                )),
                (true, status) => fail(format!("acked, but {BOOKED_BEFORE} is {status}")),
                (false, status) => Ok(format!("{BOOKED_BEFORE} is {status}")),
            }
        }
        "employee.hired" => {
            let email = sample.field("email");
            let user = observed
                .users
                .iter()
                .find(|(e, _)| e == email)
                .and_then(|(_, u)| u.as_ref());
            match (acked, user) {
                (true, Some(u)) => Ok(format!(
                    "user {email}: {}",
                    u["name"]["fullName"].as_str().unwrap_or("?")
                )),
                (true, None) => fail(format!("acked, but the Directory has no {email}")),
                (false, None) => Ok(format!("no user {email}")),
                (false, Some(_)) => fail(format!("not acked, but the Directory has {email}")),
            }
        }
        other => fail(format!("no route for {other}")),
    }
}

/// Prints the table, what Workspace holds, the dead letters, the worker's
/// summary, the token calls and the Discovery check; true when everything
/// happened as expected.
pub(crate) fn print(samples: &[Sample], observed: &Observed) -> bool {
    let mut report = Report::new(&observed.run);
    for (i, sample) in samples.iter().enumerate() {
        let seen = seen(report.acked(i), report.dead_letter(i));
        let suffix = match report.handed_back(i) {
            0 => String::new(),
            n => format!(", handed back {n}× first"),
        };
        let row = Row {
            label: sample.label.clone(),
            cells: vec![local(sample.acting_as).to_owned(), seen.describe()],
            outcome: outcome(sample, &seen, observed),
            mismatch: (!seen.matches(sample.expect))
                .then(|| (describe_expect(sample.expect), seen.describe())),
            suffix,
            error: match &seen {
                Seen::DeadLettered { error, .. } => Some(error.clone()),
                _ => None,
            },
        };
        report.row(i, row);
    }
    report.print_table(
        "What happened to each event (checked against what the Workspace double holds):",
        &["#", "event", "as", "the worker", "Workspace shows"],
    );

    print_sheet(samples, observed, &mut report);
    print_mail(observed);
    if observed.calendar_inserts != u64::from(RATE_LIMITED_INSERTS) + 1 {
        report.problem(format!(
            "Calendar got {} events.insert calls for \"{BOOKED_TITLE}\", expected {} rate-limited \
             and one that landed",
            observed.calendar_inserts, RATE_LIMITED_INSERTS
        ));
    }
    let sent: Vec<&OutgoingMessage> = samples.iter().map(|s| &s.message).collect();
    report.print_dead_letters(&sent);
    report.check_summary(samples.len());
    report.print_summary_line(Some(
        "  (retried = handed back to Pub/Sub; the rate-limited Calendar inserts were retried in \
         process, with backoff)",
    ));
    print_tokens(samples, observed, &mut report);
    print_violations(samples, &observed.violations, &mut report);
    report.finish()
}

/// Lists the orders sheet; one row per order however often it came.
fn print_sheet(samples: &[Sample], observed: &Observed, report: &mut Report<'_>) {
    let orders: BTreeSet<&str> = samples
        .iter()
        .filter(|s| s.event_type() == "order.created")
        .map(|s| s.field("id"))
        .collect();
    let events = samples
        .iter()
        .filter(|s| s.event_type() == "order.created")
        .count();
    println!(
        "\n{SHEET} (spreadsheet {SPREADSHEET}) afterwards: {} rows for {events} order events \
         ({} orders):",
        observed.rows.len(),
        orders.len()
    );
    for (i, row) in observed.rows.iter().enumerate() {
        let cells: Vec<String> = row.iter().map(cell).collect();
        println!("  {:>2}  {}", i + 1, cells.join(" | "));
    }
    let keys: BTreeSet<&str> = observed
        .rows
        .iter()
        .filter_map(|r| r.first().and_then(Value::as_str))
        .collect();
    if observed.rows.len() != orders.len() || keys != orders {
        report.problem(format!(
            "{SHEET} has {} rows with keys {keys:?}, expected one per order {orders:?}",
            observed.rows.len()
        ));
    }
}

/// The seller's sent mail, as the double parsed it.
fn print_mail(observed: &Observed) {
    println!(
        "\nMail {} sent (read back from the double's mailbox):",
        super::samples::ALICE
    );
    for m in &observed.sent {
        for h in ["to", "subject", "reply-to", "message-id"] {
            let v = m.headers.get(h).map_or("—", String::as_str);
            println!("  {h:<11} {v}");
        }
    }
    println!(
        "  (gluefleet sets the Message-ID from the event's key: a send whose answer is lost is \
         looked up by it\n   with rfc822msgid: before anything is sent again)"
    );
}

/// Token calls per user: one each, however many events acted as them.
fn print_tokens(samples: &[Sample], observed: &Observed, report: &mut Report<'_>) {
    let shown: Vec<String> = observed
        .token_calls
        .iter()
        .map(|(user, calls)| {
            let events = samples.iter().filter(|s| s.acting_as == user).count();
            if events > 0 && *calls != 1 {
                report.problem(format!(
                    "{calls} token calls for {user} ({events} events), expected one"
                ));
            }
            format!("{user} {calls} ({events} events)")
        })
        .collect();
    println!(
        "\ndomain-wide delegation: the double's token calls during the run, per user (one each, \
         however many events):\n  {}",
        shown.join(", ")
    );
}

/// The requests the double found outside Google's Discovery documents:
/// only the hire without a first name, which the demo sends on purpose.
fn print_violations(samples: &[Sample], violations: &[String], report: &mut Report<'_>) {
    let nameless = samples
        .iter()
        .position(|s| s.event_type() == "employee.hired" && s.field("first").is_empty())
        .map_or(0, |i| i + 1);
    let (meant, other): (Vec<&String>, Vec<&String>) =
        violations.iter().partition(|v| *v == NAMELESS_VIOLATION);
    println!(
        "\n{} requests outside Google's Discovery documents (the double checks every one), apart \
         from #{nameless}, the hire\n  without a first name, which the demo sends on purpose and \
         Google refuses ({NAMELESS_VIOLATION})",
        other.len()
    );
    for v in &other {
        println!("  ✗ {v}");
    }
    if !other.is_empty() {
        report.problem(format!(
            "{} request(s) outside Google's Discovery documents: {other:?}",
            other.len()
        ));
    }
    if meant.len() != 1 {
        report.problem(format!(
            "the user without a first name reached the double {} times, expected once",
            meant.len()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::workspace::samples::samples;
    use serde_json::json;

    fn observed_rows(rows: Vec<Vec<Value>>) -> Observed {
        Observed {
            rows,
            ..Observed::default()
        }
    }

    #[test]
    fn an_order_published_twice_must_leave_one_row() {
        let twice = &samples()[0];
        assert_eq!(twice.expect, Expect::AppliedOnce);
        let row = vec![json!("A-1001"), json!("Carol's Bakery"), json!(1250.0)];
        let done = Seen::Acked("already-done".to_owned());
        assert!(done.matches(twice.expect));
        assert!(outcome(twice, &done, &observed_rows(vec![row.clone()])).is_ok());
        let doubled = observed_rows(vec![row.clone(), row]);
        assert!(outcome(twice, &done, &doubled).is_err(), "two rows");
        assert!(outcome(twice, &done, &observed_rows(Vec::new())).is_err());
        // The other orders are single: already done would be wrong.
        assert!(!done.matches(samples()[1].expect));
    }

    #[test]
    fn a_refused_hire_must_have_its_class_text_and_status_and_no_user() {
        let nameless = &samples()[7];
        let dl = |status| Seen::DeadLettered {
            class: "permanent".to_owned(),
            error: "directory.users.insert: 400 invalid: Invalid Given/Family Name: GivenName"
                .to_owned(),
            status,
        };
        assert!(dl(Some(400)).matches(nameless.expect));
        assert!(!dl(Some(403)).matches(nameless.expect));
        assert!(!Seen::Acked("delivered".to_owned()).matches(nameless.expect));
        let with_user = Observed {
            users: vec![("erik@example.com".to_owned(), Some(json!({})))],
            ..Observed::default()
        };
        assert!(outcome(nameless, &dl(Some(400)), &with_user).is_err());
        assert!(outcome(nameless, &dl(Some(400)), &Observed::default()).is_ok());
    }

    #[test]
    fn only_the_nameless_hire_may_fall_outside_the_discovery_documents() {
        let run = Run::default();
        let judge = |violations: &[&str]| {
            let mut report = Report::new(&run);
            let violations: Vec<String> = violations.iter().map(|v| (*v).to_owned()).collect();
            print_violations(&samples(), &violations, &mut report);
            report.finish()
        };
        assert!(judge(&[NAMELESS_VIOLATION]));
        assert!(!judge(&[
            NAMELESS_VIOLATION,
            "sheets.spreadsheets.values.append: Invalid value at 'values'"
        ]));
        assert!(!judge(&[]), "the nameless hire never reached Google");
        assert!(!judge(&[NAMELESS_VIOLATION, NAMELESS_VIOLATION]));
    }
}
