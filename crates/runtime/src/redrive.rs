//! `redrive`: dead letters back onto their source topic, once their cause
//! is fixed.
//!
//! Pulls from a dead-letter subscription, selects by the `gluefleet-*`
//! reasons (class, route, time), strips them, and republishes each original
//! (data and attributes, byte for byte) to the topic its subscription reads,
//! or to `--to`. A dead letter is acked only after Pub/Sub confirmed its
//! republish (or the file line is on disk), so a crash mid-run loses
//! nothing: the dead letters it had not acked come back and are moved by
//! the next run. One republished twice is the same event with the same id,
//! which the worker's idempotency key drops.
//!
//! The ones not selected are held (leased, not acked) until the run ends and
//! then released, so a run sees each dead letter once and leaves the others
//! where they were.

pub mod letter;

use crate::config::PubsubSettings;
use crate::pubsub::Connection;
use crate::source::from_pubsub;
use google_cloud_pubsub::client::Publisher;
use google_cloud_pubsub::subscriber::ShutdownBehavior;
use letter::{Filter, Letter};
use std::collections::HashMap;
use std::io::Write as _;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// How long the first dead letter may take to arrive: opening a streaming
/// pull on Google Cloud takes a moment, and an empty subscription answers
/// with silence.
const FIRST_WAIT: Duration = Duration::from_secs(10);

/// The command line of `redrive`.
#[derive(Clone, Debug, PartialEq, Eq, clap::Args)]
pub struct RedriveArgs {
    /// The dead-letter subscription to take from: a name in the config's
    /// project, or `projects/P/subscriptions/S`.
    #[arg(long)]
    pub from: String,
    /// Where the originals go: a topic (name or path), or `file:PATH` (JSON
    /// Lines a `--source file:` run replays). Default: the topic of the
    /// subscription each dead letter was pulled from.
    #[arg(long)]
    pub to: Option<String>,
    /// Only dead letters of this error class (repeatable): `permanent`,
    /// `poison`, `unroutable`, `max-attempts`, `outcome-unknown`, or
    /// `forwarded-by-pubsub` for those Pub/Sub's own policy forwarded.
    #[arg(long = "class")]
    pub classes: Vec<String>,
    /// Only dead letters of this route (repeatable).
    #[arg(long = "route")]
    pub routes: Vec<String>,
    /// Only those dead-lettered since: an RFC 3339 time, or a duration ago (`2h`).
    #[arg(long)]
    pub since: Option<String>,
    /// Move at most this many.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Show what would move; move nothing, ack nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Republish at most this many per second, so a worker that is also
    /// catching up is not flooded (default: as fast as Pub/Sub confirms).
    #[arg(long)]
    pub rate: Option<NonZeroU32>,
    /// Stop once no dead letter arrived for this long.
    #[arg(long, default_value = "3s")]
    pub idle: humantime::Duration,
    /// Look at most at this many dead letters in one run (the ones left are
    /// held until the end, and Pub/Sub hands out no more than this).
    #[arg(long, default_value_t = 10_000)]
    pub scan: usize,
}

/// What happened to one dead letter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Republished: the new message id (or `file`).
    Moved(String),
    /// `--dry-run`: would be republished to this destination.
    WouldMove(String),
    /// Not selected, or cannot be redriven as it is: why. Still on the
    /// dead-letter subscription.
    Left(String),
    /// The republish failed: why. Still on the dead-letter subscription.
    Failed(String),
}

/// One row of the table.
#[derive(Clone, Debug)]
pub struct Row {
    /// The dead letter's message id.
    pub message_id: String,
    /// The original's event id.
    pub event_id: String,
    /// The error class.
    pub class: String,
    /// The route.
    pub route: String,
    /// What was done.
    pub action: Action,
}

/// What one run did.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Every dead letter looked at, in the order they came.
    pub rows: Vec<Row>,
}

impl Report {
    fn count(&self, f: impl Fn(&Action) -> bool) -> usize {
        self.rows.iter().filter(|r| f(&r.action)).count()
    }

    /// Republished (or, in a dry run, would be).
    pub fn moved(&self) -> usize {
        self.count(|a| matches!(a, Action::Moved(_) | Action::WouldMove(_)))
    }

    /// Republishes that failed.
    pub fn failed(&self) -> usize {
        self.count(|a| matches!(a, Action::Failed(_)))
    }

    /// Left on the subscription by choice.
    pub fn left(&self) -> usize {
        self.count(|a| matches!(a, Action::Left(_)))
    }
}

/// The table's heading, for [`Row::line`].
pub fn heading() -> String {
    line(["dead letter", "event id", "class", "route", "action"])
}

fn line(cols: [&str; 5]) -> String {
    format!(
        "{:<20} {:<24} {:<20} {:<20} {}",
        cols[0], cols[1], cols[2], cols[3], cols[4]
    )
    .trim_end()
    .to_owned()
}

impl Row {
    /// The row as a line of the table, printed as it happens so a long run
    /// shows its progress.
    pub fn line(&self) -> String {
        let action = match &self.action {
            Action::Moved(id) => format!("moved: {id}"),
            Action::WouldMove(to) => format!("would move to {to}"),
            Action::Left(why) => format!("left: {why}"),
            Action::Failed(why) => format!("FAILED: {why}"),
        };
        line([
            &self.message_id,
            &self.event_id,
            &self.class,
            &self.route,
            &action,
        ])
    }
}

/// Where the originals go.
enum Destination {
    /// Each letter's own source topic, looked up once per subscription.
    Source,
    /// One topic.
    Topic(String),
    /// A JSON Lines file.
    File(PathBuf, std::fs::File),
}

/// Publishers by topic, and the topics of source subscriptions.
struct Outlets {
    conn: Connection,
    publishers: HashMap<String, Publisher>,
    topics: HashMap<String, String>,
}

impl Outlets {
    /// The topic `letter` goes back to.
    async fn source_topic(
        &mut self,
        letter: &Letter,
        pubsub: &PubsubSettings,
    ) -> Result<String, String> {
        let sub = letter
            .reasons
            .subscription
            .as_deref()
            .ok_or("it does not say which subscription it came from: give --to")?;
        if sub.starts_with("file:") {
            return Err(format!("it came from {sub}, not a subscription: give --to"));
        }
        let sub = pubsub
            .subscription_named(sub, "gluefleet-original-subscription")
            .map_err(|e| e.to_string())?;
        if let Some(t) = self.topics.get(&sub) {
            return Ok(t.clone());
        }
        let topic = self
            .conn
            .check_subscription(&sub)
            .await
            .map_err(|e| format!("finding its source topic: {e}"))?
            .topic;
        self.topics.insert(sub, topic.clone());
        Ok(topic)
    }

    /// Publishes the original to `topic`; the new message id once Pub/Sub
    /// confirmed it.
    async fn publish(&mut self, topic: &str, letter: &Letter) -> Result<String, String> {
        if !self.publishers.contains_key(topic) {
            let p = self.conn.publisher(topic).await?;
            self.publishers.insert(topic.to_owned(), p);
        }
        let publisher = self
            .publishers
            .get(topic)
            .ok_or_else(|| format!("no publisher for {topic}"))?;
        let msg = google_cloud_pubsub::model::Message::new()
            .set_data(letter.data.clone())
            .set_attributes(letter.attributes.clone());
        publisher
            .publish(msg)
            .await
            .map_err(|e| format!("publishing to {topic}: {e}"))
    }
}

/// Runs `redrive` with `args`, on the project and endpoint of `pubsub`.
/// `Err` for arguments that cannot work (nothing was moved); otherwise the
/// report, failures included.
pub async fn run(
    pubsub: &PubsubSettings,
    args: &RedriveArgs,
    each: &mut dyn FnMut(&Row),
) -> Result<Report, String> {
    let from = pubsub
        .subscription_named(&args.from, "--from")
        .map_err(|e| e.to_string())?;
    let filter = Filter {
        classes: args.classes.clone(),
        routes: args.routes.clone(),
        since: args
            .since
            .as_deref()
            .map(|s| letter::parse_since(s, SystemTime::now()))
            .transpose()?,
    };
    let mut destination = match args.to.as_deref() {
        None => Destination::Source,
        Some(to) => match to.strip_prefix("file:") {
            Some(path) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| format!("--to {to}: {e}"))?;
                Destination::File(PathBuf::from(path), file)
            }
            None => Destination::Topic(pubsub.topic_path(to, "--to").map_err(|e| e.to_string())?),
        },
    };
    let conn = Connection::new(pubsub);
    // Fails here, before anything is pulled, when the subscription is wrong.
    conn.check_subscription(&from).await?;
    let client = conn.subscriber().await?;
    let mut outlets = Outlets {
        conn,
        publishers: HashMap::new(),
        topics: HashMap::new(),
    };
    let pace = args
        .rate
        // Evenly spaced, with no burst: `--rate 10` is one every 100 ms.
        .map(|r| {
            governor::RateLimiter::direct(
                governor::Quota::per_second(r).allow_burst(NonZeroU32::MIN),
            )
        });
    let scan = i64::try_from(args.scan.max(1)).unwrap_or(i64::MAX);
    let mut stream = client
        .subscribe(from.clone())
        .set_max_outstanding_messages(scan)
        // Held for the whole run, but back on the subscription within
        // seconds of a crash.
        .set_max_lease(Duration::from_secs(3600))
        .set_max_lease_extension(Duration::from_secs(10))
        .set_shutdown_behavior(ShutdownBehavior::WaitForProcessing)
        .build();
    let token = stream.shutdown_token();
    let idle = Duration::from(args.idle);
    let mut report = Report::default();
    let mut held = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let limit = args.limit.unwrap_or(usize::MAX);
    let mut error = None;
    while report.moved() < limit && report.rows.len() < args.scan {
        let wait = if report.rows.is_empty() {
            idle.max(FIRST_WAIT)
        } else {
            idle
        };
        let (m, h) = match tokio::time::timeout(wait, stream.next()).await {
            Err(_) | Ok(None) => break,
            Ok(Some(Err(e))) => {
                error = Some(format!("pulling from {from}: {e}"));
                break;
            }
            Ok(Some(Ok(pair))) => pair,
        };
        let raw = from_pubsub(m, None);
        // Pub/Sub delivers at least once: a dead letter seen twice in one
        // run (a lease that ran out) is handled the first time only.
        if !seen.insert(raw.message_id.clone()) {
            held.push(h);
            continue;
        }
        let mut row = Row {
            message_id: raw.message_id.clone(),
            event_id: String::new(),
            class: String::new(),
            route: String::new(),
            action: Action::Left(String::new()),
        };
        let letter = match letter::read(&raw.data, &raw.attributes) {
            Ok(l) => l,
            Err(why) => {
                row.action = Action::Left(why);
                each(&row);
                report.rows.push(row);
                held.push(h);
                continue;
            }
        };
        row.event_id = letter.event_id().unwrap_or_default();
        row.class = letter.reasons.class.clone();
        row.route = letter.reasons.route.clone().unwrap_or_default();
        if let Some(why) = filter.rejects(&letter.reasons) {
            row.action = Action::Left(why);
            each(&row);
            report.rows.push(row);
            held.push(h);
            continue;
        }
        let topic = match &destination {
            Destination::Source => outlets.source_topic(&letter, pubsub).await,
            Destination::Topic(t) => Ok(t.clone()),
            Destination::File(p, _) => Ok(format!("file:{}", p.display())),
        };
        let topic = match topic {
            Ok(t) => t,
            Err(why) => {
                row.action = Action::Left(why);
                each(&row);
                report.rows.push(row);
                held.push(h);
                continue;
            }
        };
        if args.dry_run {
            row.action = Action::WouldMove(topic);
            each(&row);
            report.rows.push(row);
            held.push(h);
            continue;
        }
        if let Some(p) = &pace {
            p.until_ready().await;
        }
        let moved = match &mut destination {
            Destination::File(_, f) => {
                let line = crate::dead_letter::rest_json(
                    &raw.message_id,
                    &letter.data,
                    &letter.attributes,
                );
                writeln!(f, "{line}")
                    .and_then(|()| f.sync_data())
                    .map(|()| "file".to_owned())
                    .map_err(|e| format!("writing {topic}: {e}"))
            }
            _ => outlets.publish(&topic, &letter).await,
        };
        match moved {
            Ok(id) => {
                // Only now: the original is safely back.
                h.ack();
                row.action = Action::Moved(id);
            }
            Err(why) => {
                held.push(h);
                row.action = Action::Failed(why);
            }
        }
        each(&row);
        report.rows.push(row);
    }
    // Everything not moved goes back to the subscription at once (a nack),
    // instead of waiting out its lease. (The Pub/Sub emulator keeps a
    // message nacked this way until its 10 s lease runs out.)
    for h in held {
        h.nack();
    }
    for p in outlets.publishers.values() {
        p.flush().await;
    }
    token.shutdown().await;
    match error {
        Some(e) if report.rows.is_empty() => Err(e),
        Some(e) => {
            tracing::warn!(error = %e, "The streaming pull failed; stopping early.");
            Ok(report)
        }
        None => Ok(report),
    }
}
