//! `gluefleet-publish`: events from a file or stdin onto a Pub/Sub topic, in
//! the shapes the workers decode, through the official client's batching.
//!
//! The whole input is read, parsed and encoded before the first publish:
//! a bad line, a missing id field or an oversized record publishes nothing
//! and names what is wrong, so fixing the input and running again does not
//! double what was good. Once publishing starts every message's result is
//! kept: the summary (one JSON line on stdout) lists the message id of each
//! published event and the error of each that was not, and the exit code
//! says whether all went out (0), some did not (1), or the input or the
//! arguments were refused (64).
//!
//! With `--id-field` the event id comes from the record, so a re-run after
//! a partial failure republishes the same ids, and the workers' idempotency
//! turns the repeats into no-ops. Without it every run makes new ids.

pub mod encode;
pub mod input;

use crate::EXIT_CONFIG;
use crate::pubsub::Connection;
use clap::Parser;
use encode::{Encoded, Envelope, Records, Shape};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;

/// Some events were not published (the summary names them).
pub const EXIT_UNPUBLISHED: u8 = 1;

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "gluefleet-publish",
    version,
    about = "Publish JSON or JSON Lines records to a Pub/Sub topic as CloudEvents.",
    long_about = "Publish JSON or JSON Lines records (a file, or stdin) to a Pub/Sub topic as CloudEvents (binary mode by default), through the official client's batching. Nothing is published unless every record is valid. Prints one JSON summary line on stdout: published, failed, message ids. PUBSUB_EMULATOR_HOST selects the emulator; otherwise Application Default Credentials are used."
)]
pub struct PublishCli {
    /// The topic: `projects/P/topics/T`, or `T` with --project.
    #[arg(long)]
    pub topic: String,
    /// The project of a short topic name.
    #[arg(long, env = "GOOGLE_CLOUD_PROJECT")]
    pub project: Option<String>,
    /// The records: a JSON array, one JSON value, or JSON Lines; `-` for stdin.
    #[arg(default_value = "-")]
    pub input: String,
    /// What a record is: the event's data (type, source and id from the
    /// options), or a whole CloudEvent in JSON form carrying its own.
    #[arg(long, value_enum, default_value_t)]
    pub records: Records,
    /// The CloudEvents type of every event, e.g. `order.created`; required
    /// with `--records data`.
    #[arg(long = "type")]
    pub event_type: Option<String>,
    /// The CloudEvents source of every event [default: //gluefleet/publish
    /// with `--records data`].
    #[arg(long)]
    pub source: Option<String>,
    /// How events are laid out: CloudEvents binary (attributes + body),
    /// structured (one JSON body), or the plain `{"type","data"}` envelope.
    #[arg(long, value_enum, default_value_t)]
    pub envelope: Envelope,
    /// Take each event's id from this record field (else a new UUID each).
    #[arg(long)]
    pub id_field: Option<String>,
    /// Take each message's ordering key from this record field (of the
    /// event's `data` with `--records cloudevents`).
    #[arg(long)]
    pub ordering_key_field: Option<String>,
    /// Take each event's CloudEvents subject from this record field.
    #[arg(long)]
    pub subject_field: Option<String>,
    /// An attribute on every message, `key=value`; repeatable.
    #[arg(long = "attribute", value_parser = key_value)]
    pub attributes: Vec<(String, String)>,
    /// Check and encode everything, print the summary, publish nothing.
    #[arg(long)]
    pub dry_run: bool,
}

fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("{s:?} is not key=value")),
    }
}

/// Why nothing was published.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused(pub String);

impl PublishCli {
    /// The topic's full name.
    pub fn topic_name(&self) -> Result<String, Refused> {
        let t = self.topic.trim();
        let full = if t.starts_with("projects/") {
            t.to_owned()
        } else if t.contains('/') {
            return Err(Refused(format!(
                "--topic {t:?} is neither projects/P/topics/T nor a short topic name"
            )));
        } else {
            match self.project.as_deref().map(str::trim) {
                Some(p) if !p.is_empty() => format!("projects/{p}/topics/{t}"),
                _ => {
                    return Err(Refused(format!(
                        "--topic {t:?} is a short name: give --project (or GOOGLE_CLOUD_PROJECT), or projects/P/topics/{t}"
                    )));
                }
            }
        };
        let parts: Vec<&str> = full.split('/').collect();
        match parts.as_slice() {
            ["projects", p, "topics", t] if !p.is_empty() && !t.is_empty() => Ok(full),
            _ => Err(Refused(format!(
                "--topic {full:?} is not projects/P/topics/T"
            ))),
        }
    }

    fn shape(&self) -> Result<Shape, Refused> {
        if self.records == Records::Cloudevents {
            return self.cloudevents_shape();
        }
        let event_type = self.event_type.clone().unwrap_or_default();
        let source = self
            .source
            .clone()
            .unwrap_or_else(|| "//gluefleet/publish".to_owned());
        if event_type.trim().is_empty() {
            return Err(Refused(
                "--type is empty or missing: name the event type".to_owned(),
            ));
        }
        if source.trim().is_empty() && self.envelope != Envelope::Plain {
            return Err(Refused(
                "--source is empty: CloudEvents need a source".to_owned(),
            ));
        }
        if self.envelope == Envelope::Plain && self.id_field.is_some() {
            return Err(Refused(
                "--id-field needs a CloudEvents envelope: the plain envelope carries no id"
                    .to_owned(),
            ));
        }
        Ok(Shape {
            records: Records::Data,
            envelope: self.envelope,
            event_type,
            source,
            id_field: self.id_field.clone(),
            ordering_key_field: self.ordering_key_field.clone(),
            subject_field: self.subject_field.clone(),
            attributes: self.attributes.iter().cloned().collect(),
        })
    }
}

impl PublishCli {
    /// `--records cloudevents`: each event brings its type, source, id and
    /// subject, so the options that would set them are refused rather than
    /// silently ignored.
    fn cloudevents_shape(&self) -> Result<Shape, Refused> {
        let given: Vec<&str> = [
            ("--type", self.event_type.is_some()),
            ("--source", self.source.is_some()),
            ("--id-field", self.id_field.is_some()),
            ("--subject-field", self.subject_field.is_some()),
        ]
        .into_iter()
        .filter_map(|(flag, set)| set.then_some(flag))
        .collect();
        if !given.is_empty() {
            return Err(Refused(format!(
                "{} with --records cloudevents: each event carries its own type, source, id and subject",
                given.join(", ")
            )));
        }
        Ok(Shape {
            records: Records::Cloudevents,
            envelope: self.envelope,
            event_type: String::new(),
            source: String::new(),
            id_field: None,
            ordering_key_field: self.ordering_key_field.clone(),
            subject_field: None,
            attributes: self.attributes.iter().cloned().collect(),
        })
    }
}

/// Every record of `text` encoded, or every problem (the first ten named).
pub fn prepare(text: &str, shape: &Shape) -> Result<Vec<(String, Encoded)>, Refused> {
    let (layout, records) = input::records(text).map_err(|e| Refused(e.0))?;
    let mut out = Vec::with_capacity(records.len());
    let mut bad = Vec::new();
    for r in &records {
        let at = layout.name(r.position);
        match shape.encode(&r.value, || uuid::Uuid::new_v4().to_string()) {
            Ok(e) => out.push((at, e)),
            Err(e) => bad.push(format!("{at}: {e}")),
        }
    }
    if bad.is_empty() {
        return Ok(out);
    }
    let n = bad.len();
    bad.truncate(10);
    let more = n.saturating_sub(bad.len());
    let tail = if more > 0 {
        format!("\n  … and {more} more")
    } else {
        String::new()
    };
    Err(Refused(format!(
        "{n} of {} records cannot be published, so nothing was:\n  {}{tail}",
        records.len(),
        bad.join("\n  ")
    )))
}

/// What happened to one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Pub/Sub's message id.
    Published(String),
    /// The client's error, after its own retries.
    Failed(String),
}

/// Publishes every message through one batching publisher; the outcomes in
/// input order.
pub async fn publish_all(
    connection: &Connection,
    topic: &str,
    messages: &[(String, Encoded)],
) -> Result<Vec<Outcome>, String> {
    let publisher = connection.batching_publisher(topic).await?;
    let pending: Vec<_> = messages
        .iter()
        .map(|(_, e)| {
            let msg = google_cloud_pubsub::model::Message::new()
                .set_data(e.data.clone())
                .set_attributes(e.attributes.clone())
                .set_ordering_key(e.ordering_key.clone());
            publisher.publish(msg)
        })
        .collect();
    let results = futures::future::join_all(pending).await;
    Ok(results
        .into_iter()
        .map(|r| match r {
            Ok(id) => Outcome::Published(id),
            Err(e) => Outcome::Failed(e.to_string()),
        })
        .collect())
}

/// The summary line: counts, message ids in input order, and each failure
/// with its position and event id.
pub fn summary(
    topic: &str,
    messages: &[(String, Encoded)],
    outcomes: &[Outcome],
    dry_run: bool,
) -> Value {
    let published = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Published(_)))
        .count();
    let message_ids: Vec<Value> = outcomes
        .iter()
        .map(|o| match o {
            Outcome::Published(id) => json!(id),
            Outcome::Failed(_) => Value::Null,
        })
        .collect();
    let failures: Vec<Value> = messages
        .iter()
        .zip(outcomes)
        .filter_map(|((at, e), o)| match o {
            Outcome::Failed(err) => Some(json!({"at": at, "event_id": e.id, "error": err})),
            Outcome::Published(_) => None,
        })
        .collect();
    let mut s = json!({
        "topic": topic,
        "events": messages.len(),
        "published": published,
        "failed": failures.len(),
        "message_ids": message_ids,
        "event_ids": messages.iter().map(|(_, e)| e.id.clone()).collect::<Vec<_>>(),
        "failures": failures,
    });
    if dry_run {
        s["dry_run"] = json!(true);
    }
    s
}

fn read_input(input: &str) -> Result<String, Refused> {
    use std::io::Read as _;
    if input == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Refused(format!("cannot read stdin: {e}")))?;
        Ok(text)
    } else {
        let path = PathBuf::from(input);
        std::fs::read_to_string(&path)
            .map_err(|e| Refused(format!("cannot read {}: {e}", path.display())))
    }
}

/// The binary's `main`.
pub fn main() -> ExitCode {
    let cli = match PublishCli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return crate::command_line_exit(&e),
    };
    let refuse = |r: Refused| {
        eprintln!("gluefleet-publish: {}", r.0);
        ExitCode::from(EXIT_CONFIG)
    };
    let prepared = cli
        .topic_name()
        .and_then(|topic| Ok((topic, cli.shape()?)))
        .and_then(|(topic, shape)| Ok((topic, prepare(&read_input(&cli.input)?, &shape)?)));
    let (topic, messages) = match prepared {
        Ok(p) => p,
        Err(r) => return refuse(r),
    };
    if cli.dry_run {
        // Nothing published: no message ids, only the event ids.
        let s = summary(&topic, &messages, &[], true);
        println!("{s}");
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("gluefleet-publish: cannot start the async runtime: {e}");
            return ExitCode::from(crate::EXIT_BROKEN);
        }
    };
    let emulator = std::env::var("PUBSUB_EMULATOR_HOST")
        .ok()
        .filter(|h| !h.is_empty());
    let connection = Connection::with_emulator(emulator.as_deref());
    let outcomes = match runtime.block_on(publish_all(&connection, &topic, &messages)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("gluefleet-publish: {e}");
            return ExitCode::from(EXIT_UNPUBLISHED);
        }
    };
    let s = summary(&topic, &messages, &outcomes, false);
    println!("{s}");
    let failed = s["failed"].as_u64().unwrap_or_default();
    eprintln!(
        "gluefleet-publish: {} of {} events published to {topic}{}",
        s["published"],
        messages.len(),
        if failed > 0 {
            format!(", {failed} failed (listed in the summary)")
        } else {
            String::new()
        }
    );
    if failed > 0 {
        ExitCode::from(EXIT_UNPUBLISHED)
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn cli(args: &[&str]) -> PublishCli {
        PublishCli::try_parse_from(std::iter::once("gluefleet-publish").chain(args.iter().copied()))
            .expect("parses")
    }

    #[test]
    fn short_topic_names_need_a_project() {
        let c = cli(&["--topic", "orders", "--type", "t", "--project", "p"]);
        assert_eq!(c.topic_name(), Ok("projects/p/topics/orders".to_owned()));
        let mut c = cli(&["--topic", "orders", "--type", "t"]);
        c.project = None;
        assert!(
            c.topic_name()
                .expect_err("no project")
                .0
                .contains("give --project")
        );
        let c = cli(&["--topic", "projects/p/subscriptions/s", "--type", "t"]);
        assert!(
            c.topic_name()
                .expect_err("not a topic")
                .0
                .contains("is not projects/P/topics/T")
        );
    }

    #[test]
    fn attributes_and_envelopes_parse() {
        let c = cli(&[
            "--topic",
            "projects/p/topics/t",
            "--type",
            "order.created",
            "--attribute",
            "tenant=eu",
            "--attribute",
            "empty=",
            "--envelope",
            "structured",
        ]);
        assert_eq!(c.envelope, Envelope::Structured);
        let shape = c.shape().expect("valid");
        assert_eq!(shape.attributes, attrs(&[("tenant", "eu"), ("empty", "")]));
        assert!(
            PublishCli::try_parse_from([
                "p",
                "--topic",
                "t",
                "--type",
                "x",
                "--attribute",
                "novalue"
            ])
            .is_err()
        );
        let plain_with_id = cli(&[
            "--topic",
            "t",
            "--type",
            "x",
            "--envelope",
            "plain",
            "--id-field",
            "id",
        ]);
        assert!(
            plain_with_id
                .shape()
                .expect_err("refused")
                .0
                .contains("carries no id")
        );
    }

    #[test]
    fn cloudevent_records_refuse_the_options_they_would_override() {
        let c = cli(&[
            "--topic",
            "t",
            "--records",
            "cloudevents",
            "--type",
            "x",
            "--id-field",
            "id",
        ]);
        assert_eq!(
            c.shape().expect_err("refused").0,
            "--type, --id-field with --records cloudevents: each event carries its own type, source, id and subject"
        );
        let c = cli(&["--topic", "t", "--records", "cloudevents"]);
        let shape = c.shape().expect("valid");
        let ok = prepare(
            "{\"specversion\":\"1.0\",\"id\":\"e-1\",\"source\":\"//s\",\"type\":\"a\"}\n",
            &shape,
        )
        .expect("valid");
        assert_eq!(ok[0].1.id, "e-1");
        let data = cli(&["--topic", "t"]);
        assert!(
            data.shape()
                .expect_err("no type")
                .0
                .contains("name the event type")
        );
    }

    #[test]
    fn one_bad_record_publishes_nothing_and_is_named() {
        let c = cli(&["--topic", "t", "--type", "x", "--id-field", "id"]);
        let shape = c.shape().expect("valid");
        let err =
            prepare("{\"id\":1}\n{\"name\":\"no id\"}\n{\"id\":3}\n", &shape).expect_err("refused");
        assert_eq!(
            err.0,
            "1 of 3 records cannot be published, so nothing was:\n  line 2: field \"id\" (the event id) is missing"
        );
        let ok = prepare("[{\"id\":1},{\"id\":\"b\"}]", &shape).expect("valid");
        assert_eq!(
            ok.iter()
                .map(|(at, e)| (at.as_str(), e.id.as_str()))
                .collect::<Vec<_>>(),
            [("element 1", "1"), ("element 2", "b")]
        );
    }

    #[test]
    fn the_summary_keeps_input_order_and_names_failures() {
        let c = cli(&["--topic", "t", "--type", "x", "--id-field", "id"]);
        let messages = prepare(
            "{\"id\":\"a\"}\n{\"id\":\"b\"}\n",
            &c.shape().expect("valid"),
        )
        .expect("valid");
        let s = summary(
            "projects/p/topics/t",
            &messages,
            &[
                Outcome::Published("m-1".into()),
                Outcome::Failed("NOT_FOUND: topic".into()),
            ],
            false,
        );
        assert_eq!(s["published"], 1);
        assert_eq!(s["failed"], 1);
        assert_eq!(s["message_ids"], json!(["m-1", null]));
        assert_eq!(
            s["failures"],
            json!([{"at": "line 2", "event_id": "b", "error": "NOT_FOUND: topic"}])
        );
    }
}
