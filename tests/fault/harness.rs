//! What every fault scenario shares: a fleet (the Pub/Sub emulator, a target
//! that honours idempotency keys, a legacy-rest config), numbered orders
//! with unique event ids, waiting for conditions, and the final accounting
//! with its one-line report.
//!
//! The accounting reads the target's own log, never the worker's word: an
//! event counts as applied when the target applied a request carrying its
//! `Idempotency-Key` (`ce:<source>/<id>`), and a redelivery the target
//! recognised is counted as a replay, not as a second effect.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use gluefleet_testkit::bin::{Worker, connector_binary};
use gluefleet_testkit::http_target::HttpTarget;
use gluefleet_testkit::pubsub::{
    OutgoingMessage, PubsubEmulator, PulledMessage, SubscriptionOptions,
};
use gluefleet_testkit::{TempDir, free_port};
use serde_json::{Value, json};
use tokio::sync::{Mutex, MutexGuard};

/// The topic the orders are published to.
pub(crate) const TOPIC: &str = "orders";
/// The worker's subscription (dead-letter policy after 10 attempts, so the
/// emulator counts delivery attempts).
pub(crate) const SUBSCRIPTION: &str = "orders-sub";
/// The worker's dead-letter topic.
pub(crate) const DEAD_LETTER_TOPIC: &str = "orders-dead";
/// A subscription on the dead-letter topic, to read what the worker put there.
pub(crate) const DEAD_LETTER_SUB: &str = "orders-dead-inspect";
/// How far each lease extension of the worker reaches, and so how long the
/// messages a killed worker held stay invisible (the client's minimum).
pub(crate) const LEASE: Duration = Duration::from_secs(10);
/// Worker output lines quoted when an assertion fails.
const TAIL_LINES: usize = 40;

/// Each scenario runs an emulator (a JVM) and a worker on a 2-core machine,
/// and several measure time: they take turns, whatever the test threads.
static TURN: Mutex<()> = Mutex::const_new(());

/// Waits for this scenario's turn; hold the guard for the whole test.
pub(crate) async fn one_at_a_time() -> MutexGuard<'static, ()> {
    TURN.lock().await
}

/// What a scenario changes in the fleet.
#[derive(Debug)]
pub(crate) struct Setup {
    /// Short name: the report's label and the events' CloudEvents source.
    pub(crate) scenario: &'static str,
    /// The subscription's ack deadline: how soon a message whose lease was
    /// never extended (or whose nack was lost) comes back.
    pub(crate) ack_deadline_secs: u32,
    /// Extra keys of `[pubsub]`.
    pub(crate) pubsub: String,
    /// Further TOML tables (`[delivery]`, `[delivery.retry]`, `[auth]`,
    /// `[rate_limits.NAME]`).
    pub(crate) tables: String,
    /// Extra keys of the orders route (`rate_limit = ...`, `retry = ...`).
    pub(crate) route: String,
    /// Extra environment of every worker (secrets the config refers to).
    pub(crate) env: Vec<(&'static str, String)>,
}

impl Setup {
    /// The defaults: 10 s ack deadline, nothing extra.
    pub(crate) fn new(scenario: &'static str) -> Self {
        Self {
            scenario,
            ack_deadline_secs: 10,
            pubsub: String::new(),
            tables: String::new(),
            route: String::new(),
            env: Vec::new(),
        }
    }
}

/// One numbered order: its idempotency key and its message.
#[derive(Clone, Debug)]
pub(crate) struct Order {
    /// `ce://fault/<scenario>/ev-NNNNN`, what the worker sends as
    /// `Idempotency-Key`.
    pub(crate) key: String,
    /// The structured CloudEvent.
    pub(crate) message: OutgoingMessage,
}

/// The emulator, the target and the worker config of one scenario.
#[derive(Debug)]
pub(crate) struct Fleet {
    pub(crate) scenario: &'static str,
    pub(crate) emulator: PubsubEmulator,
    pub(crate) target: HttpTarget,
    config: PathBuf,
    binary: PathBuf,
    /// What the scenario asked for, for config variants and workers' env.
    setup: Setup,
    /// Set by the first publish: the scenario's wall time starts there.
    run_started: Option<Instant>,
    /// Holds the configs; removed with the fleet.
    dir: TempDir,
}

impl Fleet {
    /// Starts the emulator (topic, subscription, dead-letter topic and its
    /// inspection subscription) and the target (idempotency keys honoured),
    /// and writes the worker's config.
    pub(crate) async fn start(setup: Setup) -> Self {
        let binary = connector_binary("legacy-rest").expect("the legacy-rest binary is built");
        let emulator = PubsubEmulator::start()
            .await
            .expect("the Pub/Sub emulator starts (gcloud with the pubsub-emulator component)");
        let target = HttpTarget::start().await.expect("the HTTP target starts");
        target.honour_idempotency_keys();
        let dir =
            TempDir::new(&format!("fault-{}", setup.scenario)).expect("a temp dir for the config");
        let config = dir
            .write("legacy-rest.toml", config_text(&setup, &target.url(), ""))
            .expect("config written");
        let fleet = Self {
            dir,
            scenario: setup.scenario,
            emulator,
            target,
            config,
            binary,
            setup,
            run_started: None,
        };
        fleet.create_pubsub().await;
        fleet
    }

    /// Creates the topics and subscriptions: at start, and again after the
    /// emulator restarted and forgot them.
    pub(crate) async fn create_pubsub(&self) {
        self.emulator
            .create_worker_subscription(
                TOPIC,
                SUBSCRIPTION,
                DEAD_LETTER_TOPIC,
                self.setup.ack_deadline_secs,
            )
            .await
            .expect("topic, dead-letter topic and worker subscription");
        self.emulator
            .create_subscription(
                DEAD_LETTER_SUB,
                DEAD_LETTER_TOPIC,
                SubscriptionOptions::default(),
            )
            .await
            .expect("dead-letter inspection subscription");
    }

    /// The CloudEvents source of this scenario's events.
    pub(crate) fn source(&self) -> String {
        format!("//fault/{}", self.scenario)
    }

    /// The idempotency key the worker sends for event `id` of this scenario.
    pub(crate) fn key_of(&self, id: &str) -> String {
        format!("ce:{}/{id}", self.source())
    }

    /// A structured CloudEvent `order.created` with event id `id` and `data`.
    pub(crate) fn cloud_event(&self, id: &str, event_type: &str, data: &Value) -> OutgoingMessage {
        OutgoingMessage::json(&json!({
            "specversion": "1.0",
            "id": id,
            "source": self.source(),
            "type": event_type,
            "data": data,
        }))
    }

    /// Order number `i`: event id `ev-NNNNN`, order id `<SCENARIO>-NNNNN`.
    pub(crate) fn order(&self, i: usize) -> Order {
        let id = format!("ev-{i:05}");
        let data =
            json!({"orderId": format!("{}-{i:05}", self.scenario.to_uppercase()), "total": i});
        Order {
            key: self.key_of(&id),
            message: self.cloud_event(&id, "order.created", &data),
        }
    }

    /// Orders `0..n`.
    pub(crate) fn orders(&self, n: usize) -> Vec<Order> {
        (0..n).map(|i| self.order(i)).collect()
    }

    /// Publishes `messages` to the orders topic; the first publish starts
    /// the scenario's clock. Returns the message ids.
    pub(crate) async fn publish(&mut self, messages: &[OutgoingMessage]) -> Vec<String> {
        self.run_started.get_or_insert_with(Instant::now);
        let ids = self
            .emulator
            .publish(TOPIC, messages)
            .await
            .expect("published to the emulator");
        assert_eq!(ids.len(), messages.len(), "one message id per message");
        ids
    }

    /// Publishes these orders.
    pub(crate) async fn publish_orders(&mut self, orders: &[Order]) -> Vec<String> {
        let messages: Vec<OutgoingMessage> = orders.iter().map(|o| o.message.clone()).collect();
        self.publish(&messages).await
    }

    /// Publishes `n` fresh orders; their keys, each of which must end up
    /// applied exactly once.
    pub(crate) async fn publish_new_orders(&mut self, n: usize) -> BTreeSet<String> {
        let orders = self.orders(n);
        self.publish_orders(&orders).await;
        keys(&orders)
    }

    /// Starts a worker (`args`, e.g. `["run"]`) on this fleet's
    /// subscription, with its health server on a free port.
    pub(crate) async fn worker(&self, args: &[&str]) -> Worker {
        self.worker_with_config(&self.config, args).await.0
    }

    /// [`Fleet::worker`], also returning the port of its `/healthz` and
    /// `/readyz`.
    pub(crate) async fn worker_with_port(&self, args: &[&str]) -> (Worker, u16) {
        self.worker_with_config(&self.config, args).await
    }

    /// Starts a worker whose `[pubsub]` table also has `pubsub_extra`
    /// (written as a second config file next to the first).
    pub(crate) async fn worker_with(&self, pubsub_extra: &str, args: &[&str]) -> Worker {
        let variant = self
            .dir
            .write(
                &format!("legacy-rest-{}.toml", free_port()),
                config_text(&self.setup, &self.target.url(), pubsub_extra),
            )
            .expect("config variant written");
        self.worker_with_config(&variant, args).await.0
    }

    async fn worker_with_config(&self, config: &std::path::Path, args: &[&str]) -> (Worker, u16) {
        let port = free_port();
        let config = config.display().to_string();
        let mut all_args: Vec<&str> = args.to_vec();
        all_args.extend(["--config", config.as_str()]);
        let mut env = self.emulator.worker_env(SUBSCRIPTION, DEAD_LETTER_TOPIC);
        // The health probes on a port the scenario knows (the last value wins).
        env.push(("PORT", port.to_string()));
        env.push(("RUST_LOG", "info".to_owned()));
        env.extend(self.setup.env.iter().cloned());
        let worker = Worker::spawn(&self.binary, &all_args, &env)
            .await
            .expect("the worker starts");
        (worker, port)
    }

    /// Waits until at least `n` distinct keys were applied.
    pub(crate) async fn wait_applied_at_least(&self, n: usize, timeout: Duration) -> bool {
        until(timeout, || self.target.applied().len() >= n).await
    }

    /// Waits until at least `n` distinct keys were applied, else fails the
    /// test with the end of `worker`'s log; `when` says at which point of
    /// the scenario (`"before the outage"`).
    pub(crate) async fn assert_applied_at_least(
        &self,
        n: usize,
        timeout: Duration,
        when: &str,
        worker: &Worker,
    ) {
        assert!(
            self.wait_applied_at_least(n, timeout).await,
            "{n} events applied {when}\n{}",
            tail(worker)
        );
    }

    /// Waits until every one of `keys` was applied, else fails the test
    /// with how many were and the end of `worker`'s log; `how` completes
    /// "every event applied" (`" after the emulator restart"`).
    pub(crate) async fn assert_all_applied(
        &self,
        keys: &BTreeSet<String>,
        timeout: Duration,
        how: &str,
        worker: &Worker,
    ) {
        assert!(
            self.wait_all_applied(keys, timeout).await,
            "every event applied{how}: {} of {}\n{}",
            self.target.applied().len(),
            keys.len(),
            tail(worker)
        );
    }

    /// Waits until every one of `keys` was applied.
    pub(crate) async fn wait_all_applied(
        &self,
        keys: &BTreeSet<String>,
        timeout: Duration,
    ) -> bool {
        until(timeout, || {
            let applied = self.target.applied();
            keys.iter().all(|k| applied.contains_key(k))
        })
        .await
    }

    /// Waits until the target got no request for `quiet`.
    pub(crate) async fn wait_quiet(&self, quiet: Duration, timeout: Duration) -> bool {
        let mut seen = self.target.requests().len();
        let mut since = Instant::now();
        until(timeout, || {
            let now = self.target.requests().len();
            if now != seen {
                seen = now;
                since = Instant::now();
            }
            since.elapsed() >= quiet
        })
        .await
    }

    /// Takes (and acks) everything on the dead-letter inspection
    /// subscription, until it has been quiet for a second.
    pub(crate) async fn dead_letters(&self) -> Vec<PulledMessage> {
        self.emulator
            .drain(DEAD_LETTER_SUB, Duration::from_secs(1))
            .await
            .expect("reading the dead-letter topic")
    }

    /// With every worker stopped: the messages still on the worker's
    /// subscription (taken and acked), until it has been quiet for 2 s.
    ///
    /// The emulator keeps leasing messages to a stopped worker's stream (see
    /// kill9.rs), so this can miss a leftover that is out on such a lease;
    /// it never reports one that is not there.
    pub(crate) async fn left_on_subscription(&self) -> Vec<PulledMessage> {
        self.emulator
            .drain(SUBSCRIPTION, Duration::from_secs(2))
            .await
            .expect("reading the worker's subscription")
    }

    /// Counts what the target did for `expected` keys.
    /// Waits until the target has been quiet for 2 s (everything
    /// delivered), then stops `worker` with SIGTERM: it must exit 0.
    pub(crate) async fn settle_and_stop(&self, worker: &mut Worker) {
        assert!(
            self.wait_quiet(Duration::from_secs(2), Duration::from_secs(60))
                .await,
            "the target goes quiet once everything is delivered"
        );
        let (status, _) = terminate(worker, Duration::from_secs(15)).await;
        assert!(status.success(), "{status:?}\n{}", tail(worker));
    }

    /// Asserts that no message is left unacked on the subscription.
    pub(crate) async fn assert_nothing_left(&self) {
        let left = self.left_on_subscription().await;
        assert!(
            left.is_empty(),
            "{} messages left unacked on the subscription",
            left.len()
        );
    }

    /// The end every scenario without bad events must reach: no dead
    /// letters, and every one of `expected` applied exactly once (else the
    /// test fails with the end of `worker`'s log). The tally, for the report.
    pub(crate) async fn assert_clean_end(
        &self,
        expected: &BTreeSet<String>,
        worker: &Worker,
    ) -> Tally {
        let dead = self.dead_letters().await;
        assert!(dead.is_empty(), "no dead letters: {dead:?}");
        let tally = self.tally(expected);
        tally.assert_exactly_once(&tail(worker));
        tally
    }

    pub(crate) fn tally(&self, expected: &BTreeSet<String>) -> Tally {
        let applied = self.target.applied();
        let requests = self.target.requests_with_replays();
        let missing = expected
            .iter()
            .filter(|k| !applied.contains_key(*k))
            .cloned()
            .collect();
        let repeated = applied
            .iter()
            .filter(|(k, n)| expected.contains(*k) && **n > 1)
            .map(|(k, n)| (k.clone(), *n))
            .collect();
        let stray = applied
            .iter()
            .filter(|(k, _)| !expected.contains(*k))
            .map(|(k, n)| (k.clone(), *n))
            .collect();
        Tally {
            events: expected.len(),
            applied: applied.values().sum(),
            replays: requests.iter().filter(|(_, replayed)| *replayed).count(),
            requests: requests.len(),
            missing,
            repeated,
            stray,
        }
    }

    /// Seconds since the first publish.
    pub(crate) fn wall(&self) -> f64 {
        self.run_started.map_or(0.0, |t| t.elapsed().as_secs_f64())
    }

    /// The scenario's one-line summary, with `figures` after the common ones.
    pub(crate) fn report(&self, tally: &Tally, dead_letters: usize, figures: &[(&str, String)]) {
        let mut line = format!(
            "[fault] {}: events={} applied={} replays_absorbed={} requests={} dead_letters={} wall={:.1}s",
            self.scenario,
            tally.events,
            tally.applied,
            tally.replays,
            tally.requests,
            dead_letters,
            self.wall()
        );
        for (name, value) in figures {
            line.push_str(&format!(" {name}={value}"));
        }
        eprintln!("{line}");
    }
}

/// The worker config of `setup` against the target at `url`, with
/// `pubsub_extra` added to `[pubsub]`.
fn config_text(setup: &Setup, url: &str, pubsub_extra: &str) -> String {
    format!(
        r#"
[pubsub]
lease_extension = "{lease}s"
{pubsub}
{pubsub_extra}

{tables}

[target]
base_url = "{url}/erp"
allow_insecure_http = true

[[routes]]
name = "orders"
type = "order.created"
{route}
action = {{ path = "/orders/{{data.orderId}}", body = "{{id: .data.orderId, total: .data.total}}" }}
"#,
        lease = LEASE.as_secs(),
        pubsub = setup.pubsub,
        tables = setup.tables,
        route = setup.route,
    )
}

/// What the target did for the published events.
#[derive(Debug)]
pub(crate) struct Tally {
    /// Events published (distinct keys expected).
    pub(crate) events: usize,
    /// Requests applied (2xx, not replays), all keys.
    pub(crate) applied: usize,
    /// Requests the target answered from its idempotency store.
    pub(crate) replays: usize,
    /// Every request the target got.
    pub(crate) requests: usize,
    /// Expected keys never applied.
    pub(crate) missing: Vec<String>,
    /// Expected keys applied more than once.
    pub(crate) repeated: Vec<(String, usize)>,
    /// Keys applied that no published event has.
    pub(crate) stray: Vec<(String, usize)>,
}

impl Tally {
    /// Every expected event applied exactly once, nothing else applied.
    pub(crate) fn assert_exactly_once(&self, context: &str) {
        let first = |v: &[String]| v.iter().take(10).cloned().collect::<Vec<_>>();
        assert!(
            self.missing.is_empty(),
            "{} of {} events never applied (first: {:?})\n{context}",
            self.missing.len(),
            self.events,
            first(&self.missing)
        );
        assert!(
            self.repeated.is_empty(),
            "{} events applied more than once (first: {:?})\n{context}",
            self.repeated.len(),
            self.repeated.iter().take(10).collect::<Vec<_>>()
        );
        assert!(
            self.stray.is_empty(),
            "{} keys applied that were never published (first: {:?})\n{context}",
            self.stray.len(),
            self.stray.iter().take(10).collect::<Vec<_>>()
        );
        assert_eq!(self.applied, self.events, "{context}");
    }
}

/// Polls `cond` every 50 ms until it holds (true) or `timeout` passes
/// (false).
pub(crate) async fn until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The keys of `orders`.
pub(crate) fn keys(orders: &[Order]) -> BTreeSet<String> {
    orders.iter().map(|o| o.key.clone()).collect()
}

/// The last lines of a worker's output, for assertion messages.
pub(crate) fn tail(worker: &Worker) -> String {
    let logs = worker.logs();
    let start = logs.len().saturating_sub(TAIL_LINES);
    format!(
        "last worker output:\n{}",
        logs.get(start..).unwrap_or_default().join("\n")
    )
}

/// The worker's JSON log lines whose `message` is `message`.
pub(crate) fn logged(worker: &Worker, message: &str) -> Vec<Value> {
    worker
        .logs()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("message").and_then(Value::as_str) == Some(message))
        .collect()
}

/// SIGTERM, then waits up to `timeout` for the exit; returns the status and
/// how long the worker took. Fails the test if it does not exit.
pub(crate) async fn terminate(worker: &mut Worker, timeout: Duration) -> (ExitStatus, Duration) {
    let asked = Instant::now();
    worker.signal_term();
    let status = worker.wait(timeout).await;
    let took = asked.elapsed();
    let status = status.unwrap_or_else(|| {
        panic!(
            "the worker did not exit within {timeout:?} of SIGTERM\n{}",
            tail(worker)
        )
    });
    (status, took)
}

/// Polls `/readyz` on `port` every 200 ms until it answers 200 (true) or
/// `timeout` passes (false).
pub(crate) async fn wait_ready(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("an HTTP client for /readyz");
    loop {
        let ready = client
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().as_u16() == 200);
        if ready {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether the worker is still running (has not exited).
pub(crate) async fn running(worker: &mut Worker) -> bool {
    worker.wait(Duration::from_millis(50)).await.is_none()
}

/// Seconds with one decimal, for reports.
pub(crate) fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// Milliseconds, for reports.
pub(crate) fn millis(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// Min / median / max of `values`, for reports; `-` when empty.
pub(crate) fn spread(mut values: Vec<Duration>) -> String {
    if values.is_empty() {
        return "-".to_owned();
    }
    values.sort();
    let median = values[values.len() / 2];
    format!(
        "{}/{}/{}",
        millis(values[0]),
        millis(median),
        millis(values[values.len() - 1])
    )
}

/// How many of the worker's log lines per `reason` field, among `lines`.
pub(crate) fn by_reason(lines: &[Value]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in lines {
        let reason = line
            .get("reason")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned();
        *counts.entry(reason).or_insert(0) += 1;
    }
    counts
}
