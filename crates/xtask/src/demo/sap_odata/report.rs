//! What happened to each partner event, worked out from the entities the
//! SAP CAP server holds before and after, the dead letters and the
//! worker's per-message log lines, checked against what should have; and
//! the OData requests it took, counted by the worker and by the server.

use super::partners::{self, ENTITY_SET, Expect, Sample};
use crate::demo::part::Run;
use crate::demo::report::{Contradiction, DeadLetter, Report, Row};
use gluefleet_testkit::pubsub::OutgoingMessage;
use serde_json::Value;
use std::collections::BTreeMap;

/// Everything part 3 saw.
#[derive(Debug, Default)]
pub(crate) struct Observed {
    /// The partners the demo looks at, before the run: key → entity.
    pub(crate) before: BTreeMap<String, Option<Value>>,
    /// The same partners afterwards.
    pub(crate) after: BTreeMap<String, Option<Value>>,
    /// The SAP CAP server's `/__admin/stats` afterwards.
    pub(crate) server_stats: Value,
    /// What the worker left behind.
    pub(crate) run: Run,
}

/// What happened to one event, by the worker's log and the dead letters.
#[derive(Debug)]
enum Seen {
    /// A create, or an upsert, applied.
    Created,
    /// A create SAP answered 409: acked as already done.
    AlreadyExisted,
    /// An update applied.
    Renamed,
    Deleted,
    DeadLettered {
        class: String,
        error: String,
        status: Option<u16>,
    },
    /// Acked for a reason that does not fit its operation.
    Acked(String),
    /// Neither acked nor dead-lettered.
    Vanished,
}

impl Seen {
    fn describe(&self) -> String {
        match self {
            Seen::Created => "created".to_owned(),
            Seen::AlreadyExisted => "already existed".to_owned(),
            Seen::Renamed => "renamed".to_owned(),
            Seen::Deleted => "deleted".to_owned(),
            Seen::DeadLettered { class, status, .. } => match status {
                Some(s) => format!("dead-lettered: {class} ({s})"),
                None => format!("dead-lettered: {class}"),
            },
            Seen::Acked(reason) => format!("acked ({reason})"),
            Seen::Vanished => "no outcome in the worker's log and no dead letter".to_owned(),
        }
    }

    fn matches(&self, expect: Expect) -> bool {
        match (self, expect) {
            (Seen::Created, Expect::Created)
            | (Seen::AlreadyExisted, Expect::AlreadyExisted)
            | (Seen::Renamed, Expect::Renamed)
            | (Seen::Deleted, Expect::Deleted) => true,
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
        Expect::Created => "created".to_owned(),
        Expect::AlreadyExisted => "already existed, left as is".to_owned(),
        Expect::Renamed => "renamed".to_owned(),
        Expect::DeadLettered(class, text, status) => {
            format!("dead-lettered as {class} ({status}, {text})")
        }
        Expect::Deleted => "deleted".to_owned(),
    }
}

/// What the log and the dead letters say about one sample.
fn seen(sample: &Sample, reason: Option<&str>, dead: Option<&DeadLetter>) -> Seen {
    if let Some(dl) = dead {
        return Seen::DeadLettered {
            class: dl.attr("gluefleet-error-class"),
            error: dl.attr("gluefleet-error"),
            status: dl.attr("gluefleet-http-status").parse().ok(),
        };
    }
    match (reason, sample.event_type()) {
        (Some("delivered"), "partner.created" | "partner.upserted") => Seen::Created,
        (Some("delivered"), t) if t.starts_with("partner.renamed") => Seen::Renamed,
        (Some("delivered"), "partner.deleted") => Seen::Deleted,
        (Some("already-done"), "partner.created") => Seen::AlreadyExisted,
        (Some(other), _) => Seen::Acked(other.to_owned()),
        (None, _) => Seen::Vanished,
    }
}

fn field<'a>(entity: &'a Value, name: &str) -> &'a str {
    entity[name].as_str().unwrap_or("—")
}

/// The outcome with what SAP holds, or why SAP contradicts it.
fn outcome(
    sample: &Sample,
    seen: &Seen,
    before: Option<&Value>,
    after: Option<&Value>,
) -> Result<String, Contradiction> {
    let key = sample.partner;
    let sent_name = sample.sent("name");
    let has_sent_name = |e: &Value| sent_name.as_deref() == e["name"].as_str();
    match seen {
        Seen::Created => {
            let Some(e) = after else {
                return Err(Contradiction(format!("created, but SAP has no {key}")));
            };
            if before.is_some() {
                return Err(Contradiction(format!(
                    "{key} existed before: updated, not created"
                )));
            }
            if !has_sent_name(e) || sample.sent("city").as_deref() != e["city"].as_str() {
                return Err(Contradiction(format!(
                    "created, but SAP has {} ({}), not the event's",
                    field(e, "name"),
                    field(e, "city")
                )));
            }
            let how = if sample.event_type() == "partner.upserted" {
                "created (the upsert found none)"
            } else {
                "created"
            };
            Ok(format!(
                "{how}: {} ({})",
                field(e, "name"),
                field(e, "city")
            ))
        }
        Seen::AlreadyExisted => match after {
            None => Err(Contradiction(format!(
                "already existed, but SAP has no {key}"
            ))),
            Some(e) if has_sent_name(e) => Err(Contradiction(format!(
                "already existed, but {key} has the event's name {:?}",
                field(e, "name")
            ))),
            Some(_) => Ok(format!(
                "already existed (SAP answered 409; the event's name {:?} not written)",
                sent_name.unwrap_or_default()
            )),
        },
        Seen::Renamed => match (before, after) {
            (_, None) => Err(Contradiction(format!("renamed, but SAP has no {key}"))),
            (_, Some(e)) if !has_sent_name(e) => Err(Contradiction(format!(
                "renamed, but {key} is called {:?}",
                field(e, "name")
            ))),
            (Some(b), Some(e)) => Ok(format!(
                "renamed{}: {} → {}",
                if sample.sent("etag").is_none() {
                    " (ETag read first)"
                } else {
                    ""
                },
                field(b, "name"),
                field(e, "name")
            )),
            (None, Some(_)) => Ok(seen.describe()),
        },
        Seen::Deleted => match after {
            Some(_) => Err(Contradiction(format!("deleted, but SAP still has {key}"))),
            None => Ok(seen.describe()),
        },
        Seen::DeadLettered { .. } => {
            let written = match sample.event_type() {
                "partner.created" | "partner.upserted" => before.is_none() && after.is_some(),
                _ => after.is_some_and(has_sent_name),
            };
            if written {
                Err(Contradiction(format!(
                    "{}, but SAP has the event's change",
                    seen.describe()
                )))
            } else {
                Ok(seen.describe())
            }
        }
        Seen::Acked(_) | Seen::Vanished => Ok(seen.describe()),
    }
}

/// Prints the table, the partners, the dead letters and the worker's
/// summary; true when everything happened as expected.
pub(crate) fn print(samples: &[Sample], observed: &Observed) -> bool {
    let mut report = Report::new(&observed.run);
    let lookup = |map: &BTreeMap<String, Option<Value>>, key: &str| -> Option<Value> {
        map.get(key).cloned().flatten()
    };

    for (i, sample) in samples.iter().enumerate() {
        let seen = seen(sample, report.acked(i), report.dead_letter(i));
        let before = lookup(&observed.before, sample.partner);
        let after = lookup(&observed.after, sample.partner);
        let suffix = match report.handed_back(i) {
            0 => String::new(),
            n => format!(", handed back {n}× first"),
        };
        let row = Row {
            label: sample.label.clone(),
            cells: vec![sample.partner.to_owned()],
            outcome: outcome(sample, &seen, before.as_ref(), after.as_ref()),
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
        "What happened to each event (checked against what SAP holds):",
        &["#", "event", "partner", "outcome"],
    );

    print_partners(&observed.after, &mut report);
    let sent: Vec<&OutgoingMessage> = samples.iter().map(|s| &s.message).collect();
    report.print_dead_letters(&sent);
    print_summary(samples.len(), observed, &mut report);
    report.finish()
}

/// Lists the partners afterwards and compares them with
/// [`partners::partners_after`].
fn print_partners(after: &BTreeMap<String, Option<Value>>, report: &mut Report<'_>) {
    println!("\n{ENTITY_SET} afterwards (read back from the SAP CAP server, OData V4):");
    let width = after.keys().map(String::len).max().unwrap_or(0);
    for (key, entity) in after {
        match entity {
            Some(e) => println!(
                "  {key:<width$}  {:<26} {:<10} ETag {}",
                field(e, "name"),
                field(e, "city"),
                field(e, "@odata.etag")
            ),
            None => println!("  {key:<width$}  (none)"),
        }
    }
    for (key, want) in partners::partners_after() {
        let got = after.get(key).cloned().flatten();
        let got_pair = got.as_ref().map(|e| (field(e, "name"), field(e, "city")));
        if got_pair != want {
            report.problem(format!(
                "{ENTITY_SET}('{key}') is {got_pair:?}, expected {want:?}"
            ));
        }
    }
}

/// The worker's summary, its counters checked, and its OData requests
/// against the server's count.
fn print_summary(events: usize, observed: &Observed, report: &mut Report<'_>) {
    let summary = report.check_summary(events);
    report.print_summary_line(None);
    let Some(summary) = summary else {
        return;
    };
    let count = |v: &Value, k: &str| v.get(k).and_then(Value::as_u64);
    let stats = &observed.server_stats;
    let (Some(requests), Some(fetches)) = (
        count(&summary, "target_requests"),
        count(&summary, "csrf_fetches"),
    ) else {
        report.problem(format!(
            "the worker's summary lacks target_requests or csrf_fetches: {summary}"
        ));
        return;
    };
    let (Some(server_requests), Some(server_fetches), Some(batches)) = (
        count(stats, "requests"),
        count(stats, "csrf_fetch"),
        count(stats, "batch"),
    ) else {
        report.problem(format!("the SAP CAP server's stats lack a count: {stats}"));
        return;
    };
    let by_method: Vec<String> = stats["by_method"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(m, n)| format!("{m} {n}"))
        .collect();
    println!(
        "  the worker sent {requests} OData requests for {events} events (target_requests), \
         {fetches} of them a CSRF token\n  fetch (csrf_fetches); the SAP CAP server counted \
         {server_requests} ({}), {batches} of them $batch\n  (creates waiting at the same moment \
         share one), {server_fetches} token fetch(es), {} refused for want of a token.",
        by_method.join(", "),
        count(stats, "csrf_rejected").unwrap_or(0)
    );
    if requests != server_requests {
        report.problem(format!(
            "the worker counted {requests} OData requests, the SAP CAP server {server_requests}"
        ));
    }
    if fetches != server_fetches {
        report.problem(format!(
            "the worker counted {fetches} CSRF token fetches, the SAP CAP server {server_fetches}"
        ));
    }
    if fetches == 0 {
        report.problem("the worker wrote without fetching a CSRF token".to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::sap_odata::partners::samples;
    use serde_json::json;

    #[test]
    fn a_dead_letter_must_have_the_class_text_and_status() {
        let dl = |status| Seen::DeadLettered {
            class: "permanent".to_owned(),
            error: "PATCH BusinessPartners('BP0001'): conflict: …".to_owned(),
            status,
        };
        let want = Expect::DeadLettered("permanent", "conflict", 412);
        assert!(dl(Some(412)).matches(want));
        assert!(!dl(Some(400)).matches(want));
        assert!(!dl(None).matches(want));
        assert!(!Seen::Renamed.matches(want));
    }

    #[test]
    fn a_rename_must_show_in_sap() {
        let renamed = &samples()[3];
        assert_eq!(renamed.expect, Expect::Renamed);
        let before = json!({ "name": "Seed Partner One" });
        let after = json!({ "name": "Walldorf Instruments SE" });
        assert_eq!(
            outcome(renamed, &Seen::Renamed, Some(&before), Some(&after)).as_deref(),
            Ok("renamed (ETag read first): Seed Partner One → Walldorf Instruments SE")
        );
        assert!(outcome(renamed, &Seen::Renamed, Some(&before), Some(&before)).is_err());
        // A create that SAP refused must not have left an entity behind.
        let created = &samples()[0];
        let entity = json!({ "name": "Nordlicht Handel GmbH", "city": "Hamburg" });
        let refused = Seen::DeadLettered {
            class: "permanent".to_owned(),
            error: String::new(),
            status: Some(400),
        };
        assert!(outcome(created, &refused, None, Some(&entity)).is_err());
        assert!(outcome(created, &Seen::Created, None, Some(&entity)).is_ok());
    }
}
