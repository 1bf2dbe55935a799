//! What every case shares: the Pub/Sub topics of one case, the proxy, the
//! subject, the worker's config, and reading the outcome.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::shared::{Shared, SharedLease};
use super::{FaultProxy, Subject};
use crate::bin::{Worker, connector_binary};
use crate::pubsub::{OutgoingMessage, PubsubEmulator, PulledMessage, SubscriptionOptions};

/// One Pub/Sub emulator per test binary.
static PUBSUB: Shared<PubsubEmulator> = Shared::new();
/// Numbers the cases of this test binary, for unique names and tags.
static NEXT_CASE: AtomicUsize = AtomicUsize::new(0);

/// The CloudEvents source of every event.
pub(crate) const SOURCE: &str = "//conformance";
/// The route the ordinary cases use.
pub(crate) const ROUTE: &str = "conformance";
/// How long a job waits with nothing to do before it ends.
const IDLE_EXIT: &str = "2s";
/// How long a job may take in all.
const JOB_TIMEOUT: Duration = Duration::from_secs(120);

/// One running case.
pub(crate) struct Case<S: Subject> {
    pub(crate) name: &'static str,
    pub(crate) subject: S,
    pub(crate) proxy: FaultProxy,
    pubsub: SharedLease<PubsubEmulator>,
    number: usize,
    topic: String,
    subscription: String,
    dead_topic: String,
    dead_sub: String,
    config: PathBuf,
    binary: PathBuf,
}

/// What a worker run left behind.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// The job's summary line (empty object for a `run`).
    pub(crate) summary: Value,
    /// Everything published to the dead-letter topic.
    pub(crate) dead: Vec<PulledMessage>,
    /// Messages still on the worker's subscription (taken and acked).
    pub(crate) left: Vec<PulledMessage>,
    /// The worker's output.
    pub(crate) logs: Vec<String>,
}

impl Outcome {
    /// A summary counter, 0 when absent.
    pub(crate) fn count(&self, field: &str) -> u64 {
        self.summary[field].as_u64().unwrap_or(0)
    }

    /// The last lines of the worker's output, for assertion messages.
    pub(crate) fn tail(&self) -> String {
        let start = self.logs.len().saturating_sub(40);
        format!(
            "summary: {}\ndead letters: {:?}\nworker output (tail):\n{}",
            self.summary,
            self.dead.iter().map(|m| &m.attributes).collect::<Vec<_>>(),
            self.logs[start..].join("\n")
        )
    }
}

/// Says on the real stderr (not captured by the test harness) that `case`
/// does not apply to `connector`, so a skip is never silent.
pub(crate) fn note(connector: &str, case: &str, why: &str) {
    let _ = writeln!(std::io::stderr(), "conformance: {connector}: {case}: {why}");
}

impl<S: Subject> Case<S> {
    /// Starts the subject, its proxy, the case's topics and writes the
    /// worker's config.
    pub(crate) async fn start(name: &'static str) -> Self {
        let number = NEXT_CASE.fetch_add(1, Ordering::Relaxed);
        let pubsub = PUBSUB
            .acquire(PubsubEmulator::start)
            .await
            .expect("the Pub/Sub emulator starts (gcloud with the pubsub-emulator component)");
        let proxy = FaultProxy::start().await.expect("the fault proxy starts");
        proxy.set_is_call(S::is_call);
        let (subject, upstream) = S::start(proxy.url())
            .await
            .unwrap_or_else(|e| panic!("{}: the system under test starts: {e}", S::CONNECTOR));
        proxy.set_upstream(&upstream);

        let base = format!("conf{}-{number}", std::process::id());
        let topic = format!("{base}-events");
        let subscription = format!("{base}-sub");
        let dead_topic = format!("{base}-dead");
        let dead_sub = format!("{base}-dead-sub");
        {
            let (t, s, d, ds) = (
                topic.clone(),
                subscription.clone(),
                dead_topic.clone(),
                dead_sub.clone(),
            );
            pubsub
                .run(move |ps| async move {
                    ps.create_worker_subscription(&t, &s, &d, 10).await?;
                    ps.create_subscription(&ds, &d, SubscriptionOptions::default())
                        .await
                })
                .await
                .expect("the case's topics and subscriptions");
        }

        let dir = std::env::temp_dir().join(format!("gluefleet-{base}"));
        std::fs::create_dir_all(&dir).expect("a temp dir for the config");
        let config = dir.join(format!("{}.toml", S::CONNECTOR));
        std::fs::write(&config, config_text(&subject, &proxy)).expect("the config is written");
        let binary = tokio::task::spawn_blocking(|| connector_binary(S::CONNECTOR))
            .await
            .expect("finding the binary does not panic")
            .unwrap_or_else(|e| panic!("the connector binary: {e}"));
        Self {
            name,
            subject,
            proxy,
            pubsub,
            number,
            topic,
            subscription,
            dead_topic,
            dead_sub,
            config,
            binary,
        }
    }

    /// A tag for event `i` of this case: short enough for any key.
    pub(crate) fn tag(&self, i: usize) -> String {
        format!("c{}x{i}", self.number)
    }

    /// The event `tag` of `event_type` with `data`.
    pub(crate) fn event_with(&self, tag: &str, event_type: &str, data: Value) -> OutgoingMessage {
        OutgoingMessage::json(&json!({
            "specversion": "1.0",
            "id": tag,
            "source": SOURCE,
            "type": event_type,
            "data": data,
        }))
    }

    /// The ordinary event `tag`: route `conformance`, one effect.
    pub(crate) fn event(&self, tag: &str) -> OutgoingMessage {
        self.event_with(
            tag,
            "conformance.applied",
            json!({"id": tag, "name": format!("conformance {tag}")}),
        )
    }

    /// Publishes `messages`; returns their message ids.
    pub(crate) async fn publish(&self, messages: Vec<OutgoingMessage>) -> Vec<String> {
        let topic = self.topic.clone();
        let n = messages.len();
        let ids = self
            .pubsub
            .run(move |ps| async move { ps.publish(&topic, &messages).await })
            .await
            .expect("published to the emulator");
        assert_eq!(ids.len(), n, "one message id per message");
        ids
    }

    /// Starts the worker in `mode` (`run` or `job`).
    pub(crate) async fn worker(&self, mode: &str) -> Worker {
        let config = self.config.display().to_string();
        let mut args = vec![mode, "--config", config.as_str()];
        if mode == "job" {
            args.extend(["--idle-exit", IDLE_EXIT]);
        }
        let mut env: Vec<(String, String)> = vec![
            ("PUBSUB_EMULATOR_HOST".into(), self.pubsub.host()),
            (
                "GOOGLE_CLOUD_PROJECT".into(),
                self.pubsub.project().to_owned(),
            ),
            ("GLUEFLEET_SUBSCRIPTION".into(), self.subscription.clone()),
            (
                "GLUEFLEET_DEAD_LETTER_TOPIC".into(),
                self.dead_topic.clone(),
            ),
            ("PORT".into(), crate::free_port().to_string()),
            ("RUST_LOG".into(), "info".into()),
        ];
        env.extend(self.subject.env(&self.proxy));
        let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        Worker::spawn(&self.binary, &args, &env)
            .await
            .expect("the worker starts")
    }

    /// Runs a job until it is idle and reads what it left.
    pub(crate) async fn job(&self) -> Outcome {
        let worker = self.worker("job").await;
        self.finish_job(worker).await
    }

    /// Waits for a job started with [`Case::worker`] to end when idle, and
    /// reads what it left.
    pub(crate) async fn finish_job(&self, mut worker: Worker) -> Outcome {
        let status = worker.wait(JOB_TIMEOUT).await;
        let logs = worker.logs();
        let status = status.unwrap_or_else(|| {
            panic!(
                "{}: the job did not end within {JOB_TIMEOUT:?}\n{}",
                self.name,
                logs.join("\n")
            )
        });
        assert!(
            status.success(),
            "{}: the job exits 0, got {status:?}\n{}",
            self.name,
            logs.join("\n")
        );
        let summary = worker.summary().unwrap_or_else(|| json!({}));
        self.outcome(summary, logs).await
    }

    /// Reads the dead letters and what is left on the subscription.
    pub(crate) async fn outcome(&self, summary: Value, logs: Vec<String>) -> Outcome {
        let (sub, dead_sub) = (self.subscription.clone(), self.dead_sub.clone());
        let (dead, left) = self
            .pubsub
            .run(move |ps| async move {
                let dead = ps.drain(&dead_sub, Duration::from_millis(500)).await?;
                let left = ps.drain(&sub, Duration::from_millis(500)).await?;
                Ok::<_, crate::TestkitError>((dead, left))
            })
            .await
            .expect("reading the emulator");
        Outcome {
            summary,
            dead,
            left,
            logs,
        }
    }

    /// The effects of the event `tag` so far.
    pub(crate) async fn effects(&self, tag: &str) -> usize {
        self.subject.effects(tag, &self.proxy).await
    }

    /// The calls so far that belong to the event `tag`.
    pub(crate) fn calls_of(&self, tag: &str) -> Vec<super::Proxied> {
        self.proxy
            .calls()
            .into_iter()
            .filter(|p| p.mentions(tag))
            .collect()
    }

    /// The subscription's full name, as dead letters report it.
    pub(crate) fn subscription_path(&self) -> String {
        format!(
            "projects/{}/subscriptions/{}",
            self.pubsub.project(),
            self.subscription
        )
    }

    /// Polls `cond` every 20 ms until it holds or `timeout` passes.
    pub(crate) async fn until(&self, timeout: Duration, cond: impl Fn(&Self) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if cond(self) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Asserts a run ended with nothing left on the subscription and no
    /// dead letter.
    pub(crate) fn assert_clean(&self, outcome: &Outcome) {
        assert!(
            outcome.dead.is_empty(),
            "{}: no dead letter expected\n{}",
            self.name,
            outcome.tail()
        );
        assert!(
            outcome.left.is_empty(),
            "{}: {} messages left unacked\n{}",
            self.name,
            outcome.left.len(),
            outcome.tail()
        );
    }
}

impl<S: Subject> Drop for Case<S> {
    /// The case's config directory goes with it.
    fn drop(&mut self) {
        if let Some(dir) = self.config.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The worker's config: the suite's shared tables, the subject's
/// `[target]`, and the routes.
fn config_text<S: Subject>(subject: &S, proxy: &FaultProxy) -> String {
    let timeout = humantime_ms(S::ROUTE_TIMEOUT);
    let mut text = format!(
        r#"
[pubsub]
concurrency = 32
lease_extension = "10s"

[delivery.retry]
initial_backoff = "50ms"
max_backoff = "200ms"
budget = "20s"
max_retry_after = "10s"

{target}

[[routes]]
name = "{ROUTE}"
type = "conformance.applied"
timeout = "{timeout}"
action = {action}
"#,
        target = subject.target(proxy),
        action = subject.action(),
    );
    if let Some(batch) = subject.batch() {
        let refused = batch.refused_action.as_deref().unwrap_or(&batch.action);
        text.push_str(&format!(
            r#"
[[routes]]
name = "conformance-batch"
type = "conformance.batch"
timeout = "{timeout}"
action = {good}

[[routes]]
name = "conformance-refused"
type = "conformance.refused"
timeout = "{timeout}"
action = {refused}
"#,
            good = batch.action,
        ));
    }
    text
}

fn humantime_ms(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// The attributes of `m` named `gluefleet-*`, without the prefix.
pub(crate) fn reasons(m: &PulledMessage) -> BTreeMap<String, String> {
    m.attributes
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("gluefleet-")
                .map(|k| (k.to_owned(), v.clone()))
        })
        .collect()
}
