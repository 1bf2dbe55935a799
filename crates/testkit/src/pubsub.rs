//! A real Pub/Sub emulator per test, and a small REST client for it.
//!
//! gluefleet workers are Pub/Sub pull subscribers; the behaviour worth
//! testing (acks, redelivery, delivery attempts, shutdown mid-pull) lives in
//! the interplay with the server, so tests run the official emulator rather
//! than a fake. Each [`PubsubEmulator`] is its own Java process on a free
//! port with its own project id, so tests run in parallel without seeing each
//! other's topics. The admin and test-side calls use the emulator's REST
//! surface on the same port, which needs nothing beyond `reqwest`.
//!
//! Known emulator limits: it counts delivery attempts but never forwards to a
//! dead-letter topic, and it refuses a dead-letter policy whose topic does not
//! exist yet.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::process::{self, ChildServer};
use crate::{TestkitError, admin, decode};

/// How long a cold emulator may take to say it listens (it is ~10 s, more
/// on a loaded CI machine).
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// How long `restart` waits for the old process to let go of the port.
const PORT_RELEASE_TIMEOUT: Duration = Duration::from_secs(15);
/// The emulator, like Pub/Sub, takes at most this many messages per publish.
const PUBLISH_BATCH: usize = 1000;
/// Ack ids per acknowledge call; keeps request bodies small.
const ACK_BATCH: usize = 1000;

/// A running Pub/Sub emulator, stopped (whole process group) on drop.
#[derive(Debug)]
pub struct PubsubEmulator {
    /// The gcloud process group, on the port fixed at the first start.
    server: ChildServer,
    project: String,
    /// The emulator writes `env.yaml` here; a directory per instance keeps
    /// parallel emulators from overwriting each other's.
    data_dir: PathBuf,
    http: reqwest::Client,
}

/// How a subscription is created.
#[derive(Clone, Debug, Default)]
pub struct SubscriptionOptions {
    /// Ack deadline in seconds; 0 means 60.
    pub ack_deadline_secs: u32,
    /// Dead-letter topic id (in the same project; it must already exist) and
    /// max delivery attempts (Pub/Sub accepts 5..=100). Setting a policy is
    /// also what makes the emulator report `delivery_attempt`.
    pub dead_letter: Option<(String, u32)>,
    /// Push instead of pull: the endpoint the emulator posts each message
    /// to (wrapped body, no token: the emulator signs nothing).
    pub push_endpoint: Option<String>,
}

/// A message to publish.
#[derive(Clone, Debug, Default)]
pub struct OutgoingMessage {
    /// The payload bytes.
    pub data: Vec<u8>,
    /// Message attributes.
    pub attributes: BTreeMap<String, String>,
}

impl OutgoingMessage {
    /// A message whose payload is `v` as JSON, the way gluefleet events travel.
    pub fn json(v: &Value) -> Self {
        Self {
            data: v.to_string().into_bytes(),
            attributes: BTreeMap::new(),
        }
    }

    /// A CloudEvent in structured content mode, the whole event one JSON
    /// body: how most publishers send gluefleet events.
    pub fn cloudevent(id: &str, source: &str, event_type: &str, data: Value) -> Self {
        Self::json(&json!({
            "specversion": "1.0",
            "id": id,
            "source": source,
            "type": event_type,
            "data": data,
        }))
    }

    /// A CloudEvent in binary content mode, as publishers that keep the
    /// context out of the body send it: `ce-*` attributes for the context,
    /// `data` as the JSON body.
    pub fn binary_cloudevent(id: &str, source: &str, event_type: &str, data: &Value) -> Self {
        Self::json(data)
            .with_attr("ce-specversion", "1.0")
            .with_attr("ce-id", id)
            .with_attr("ce-source", source)
            .with_attr("ce-type", event_type)
            .with_attr("content-type", "application/json")
    }

    /// Adds (or replaces) attribute `k`.
    #[must_use]
    pub fn with_attr(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.attributes.insert(k.into(), v.into());
        self
    }
}

/// A message received by [`PubsubEmulator::pull`].
#[derive(Clone, Debug)]
pub struct PulledMessage {
    /// What to pass to [`PubsubEmulator::ack`].
    pub ack_id: String,
    /// The id `publish` returned for it.
    pub message_id: String,
    /// The payload bytes.
    pub data: Vec<u8>,
    /// Message attributes.
    pub attributes: BTreeMap<String, String>,
    /// 1 on first delivery; only reported on subscriptions with a
    /// dead-letter policy.
    pub delivery_attempt: Option<i32>,
    /// The ordering key it was published with, empty when none.
    pub ordering_key: String,
}

impl PulledMessage {
    /// The payload parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.data).ok()
    }

    /// Attribute `key`, empty when absent: what a test reads off a dead
    /// letter (`gluefleet-error`, `gluefleet-error-class`).
    pub fn attr(&self, key: &str) -> &str {
        self.attributes.get(key).map_or("", String::as_str)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PublishResponse {
    #[serde(default)]
    message_ids: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PullResponse {
    #[serde(default)]
    received_messages: Vec<ReceivedMessage>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReceivedMessage {
    ack_id: String,
    message: WireMessage,
    #[serde(default)]
    delivery_attempt: Option<i32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireMessage {
    /// Absent when the payload is empty.
    #[serde(default)]
    data: String,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    #[serde(default)]
    message_id: String,
    /// Absent when the message has none.
    #[serde(default)]
    ordering_key: String,
}

impl PubsubEmulator {
    /// Whether `gcloud` is on `PATH`. Tests must not use this to skip: a
    /// missing emulator should fail loudly ([`TestkitError::GcloudMissing`]).
    pub fn available() -> bool {
        process::gcloud_available()
    }

    /// Starts an emulator on a free port with a fresh project id and waits
    /// until it listens.
    pub async fn start() -> Result<Self, TestkitError> {
        if !Self::available() {
            return Err(TestkitError::GcloudMissing);
        }
        let project = process::fresh_project("gluefleet-test");
        let data_dir = std::env::temp_dir().join(format!("{project}-pubsub"));
        let http = admin::client("Pub/Sub emulator")?;
        let mut emulator = Self {
            server: ChildServer::on_free_port(),
            project,
            data_dir,
            http,
        };
        // On error `emulator` drops here, which kills whatever did start.
        emulator.launch().await?;
        Ok(emulator)
    }

    /// `127.0.0.1:PORT`, the value `PUBSUB_EMULATOR_HOST` takes.
    pub fn host(&self) -> String {
        self.server.host()
    }

    /// The project id of this instance.
    pub fn project(&self) -> &str {
        &self.project
    }

    /// The emulator's output so far (since the last start), for debugging.
    pub fn logs(&self) -> Vec<String> {
        self.server.logs()
    }

    /// Creates topic `topic` (an id, not a full name).
    pub async fn create_topic(&self, topic: &str) -> Result<(), TestkitError> {
        let what = format!("creating topic {topic}");
        self.call(
            reqwest::Method::PUT,
            &format!("topics/{topic}"),
            &json!({}),
            &what,
        )
        .await?;
        Ok(())
    }

    /// Creates subscription `sub` on `topic` (ids, not full names).
    pub async fn create_subscription(
        &self,
        sub: &str,
        topic: &str,
        opts: SubscriptionOptions,
    ) -> Result<(), TestkitError> {
        let ack_deadline = if opts.ack_deadline_secs == 0 {
            60
        } else {
            opts.ack_deadline_secs
        };
        let mut body = json!({
            "topic": self.name("topics", topic),
            "ackDeadlineSeconds": ack_deadline,
        });
        if let Some((dl_topic, max_attempts)) = &opts.dead_letter {
            body["deadLetterPolicy"] = json!({
                "deadLetterTopic": self.name("topics", dl_topic),
                "maxDeliveryAttempts": max_attempts,
            });
        }
        if let Some(endpoint) = &opts.push_endpoint {
            body["pushConfig"] = json!({ "pushEndpoint": endpoint });
        }
        let what = format!("creating subscription {sub} on topic {topic}");
        self.call(
            reqwest::Method::PUT,
            &format!("subscriptions/{sub}"),
            &body,
            &what,
        )
        .await?;
        Ok(())
    }

    /// A topic and its worker subscription with a dead-letter policy (10
    /// attempts, so the emulator counts deliveries), creating the dead-letter
    /// topic when it does not exist yet: what every connector test needs.
    pub async fn create_worker_subscription(
        &self,
        topic: &str,
        subscription: &str,
        dead_letter_topic: &str,
        ack_deadline_secs: u32,
    ) -> Result<(), TestkitError> {
        self.create_topic(topic).await?;
        match self.create_topic(dead_letter_topic).await {
            Ok(()) | Err(TestkitError::Api { status: 409, .. }) => {}
            Err(e) => return Err(e),
        }
        let opts = SubscriptionOptions {
            ack_deadline_secs,
            dead_letter: Some((dead_letter_topic.to_owned(), 10)),
            push_endpoint: None,
        };
        self.create_subscription(subscription, topic, opts).await
    }

    /// The environment a worker on `subscription` of this emulator needs,
    /// as Cloud Run would give it: `PUBSUB_EMULATOR_HOST`,
    /// `GOOGLE_CLOUD_PROJECT`, `GLUEFLEET_SUBSCRIPTION`,
    /// `GLUEFLEET_DEAD_LETTER_TOPIC`, and a free `PORT` so its health
    /// probes never collide with another worker's.
    pub fn worker_env(
        &self,
        subscription: &str,
        dead_letter_topic: &str,
    ) -> Vec<(&'static str, String)> {
        vec![
            ("PUBSUB_EMULATOR_HOST", self.host()),
            ("GOOGLE_CLOUD_PROJECT", self.project.clone()),
            ("GLUEFLEET_SUBSCRIPTION", subscription.to_owned()),
            ("GLUEFLEET_DEAD_LETTER_TOPIC", dead_letter_topic.to_owned()),
            ("PORT", crate::free_port().to_string()),
        ]
    }

    /// Publishes `messages` to `topic` in batches of 1000 and returns their
    /// message ids in the same order.
    pub async fn publish(
        &self,
        topic: &str,
        messages: &[OutgoingMessage],
    ) -> Result<Vec<String>, TestkitError> {
        let mut ids = Vec::with_capacity(messages.len());
        for batch in messages.chunks(PUBLISH_BATCH) {
            let wire: Vec<Value> = batch
                .iter()
                .map(|m| json!({ "data": B64.encode(&m.data), "attributes": m.attributes }))
                .collect();
            let what = format!("publishing {} messages to {topic}", batch.len());
            let answer = self
                .call(
                    reqwest::Method::POST,
                    &format!("topics/{topic}:publish"),
                    &json!({ "messages": wire }),
                    &what,
                )
                .await?;
            let answer: PublishResponse =
                serde_json::from_value(answer).map_err(|e| decode(&what, e))?;
            if answer.message_ids.len() != batch.len() {
                return Err(TestkitError::Decode {
                    what,
                    detail: format!("got {} message ids", answer.message_ids.len()),
                });
            }
            ids.extend(answer.message_ids);
        }
        Ok(ids)
    }

    /// One pull of at most `max` messages that returns at once, empty when
    /// nothing is ready. Messages are not acked.
    pub async fn pull(&self, sub: &str, max: usize) -> Result<Vec<PulledMessage>, TestkitError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let what = format!("pulling from {sub}");
        // Without returnImmediately the emulator holds an empty pull ~90 s.
        let answer = self
            .call(
                reqwest::Method::POST,
                &format!("subscriptions/{sub}:pull"),
                &json!({ "maxMessages": max, "returnImmediately": true }),
                &what,
            )
            .await?;
        let answer: PullResponse = serde_json::from_value(answer).map_err(|e| decode(&what, e))?;
        answer
            .received_messages
            .into_iter()
            .map(|r| {
                let data = B64
                    .decode(r.message.data.as_bytes())
                    .map_err(|e| decode(&what, e))?;
                Ok(PulledMessage {
                    ack_id: r.ack_id,
                    message_id: r.message.message_id,
                    data,
                    attributes: r.message.attributes,
                    delivery_attempt: r.delivery_attempt,
                    ordering_key: r.message.ordering_key,
                })
            })
            .collect()
    }

    /// Acknowledges `ack_ids` on `sub`.
    pub async fn ack(&self, sub: &str, ack_ids: &[String]) -> Result<(), TestkitError> {
        for batch in ack_ids.chunks(ACK_BATCH) {
            let what = format!("acking {} messages on {sub}", batch.len());
            self.call(
                reqwest::Method::POST,
                &format!("subscriptions/{sub}:acknowledge"),
                &json!({ "ackIds": batch }),
                &what,
            )
            .await?;
        }
        Ok(())
    }

    /// Gives `to` the ack state of `from`, with nothing leased: a snapshot
    /// of `from`, then a seek of `to` to it. Both must read the same topic,
    /// and `to` must have existed when the messages were published.
    ///
    /// Stands in for leases running out after a subscriber was killed. The
    /// emulator keeps serving a streaming pull whose client is gone (it
    /// never sees the stream end), so that stream takes every message the
    /// subscription makes available again, for minutes (seen in CI: none of
    /// 92 back after 160 s); real Pub/Sub does not. `to` has no such stream.
    /// What `from` acked stays acked, so a message acked too early is still
    /// missing on `to`.
    pub async fn copy_ack_state(&self, from: &str, to: &str) -> Result<(), TestkitError> {
        static COPIES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COPIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let snapshot = format!("{from}-copy-{n}");
        self.call(
            reqwest::Method::PUT,
            &format!("snapshots/{snapshot}"),
            &json!({ "subscription": self.name("subscriptions", from) }),
            &format!("snapshotting {from}"),
        )
        .await?;
        self.call(
            reqwest::Method::POST,
            &format!("subscriptions/{to}:seek"),
            &json!({ "snapshot": self.name("snapshots", &snapshot) }),
            &format!("seeking {to} to a snapshot of {from}"),
        )
        .await?;
        self.call(
            reqwest::Method::DELETE,
            &format!("snapshots/{snapshot}"),
            &json!({}),
            &format!("deleting snapshot {snapshot}"),
        )
        .await?;
        Ok(())
    }

    /// Pulls and acks until no message arrived for `quiet`; returns all of
    /// them in arrival order. For reading what a worker published.
    pub async fn drain(
        &self,
        sub: &str,
        quiet: Duration,
    ) -> Result<Vec<PulledMessage>, TestkitError> {
        let mut all = Vec::new();
        let mut last_seen = Instant::now();
        loop {
            let batch = self.pull(sub, PUBLISH_BATCH).await?;
            if batch.is_empty() {
                if last_seen.elapsed() >= quiet {
                    return Ok(all);
                }
                tokio::time::sleep(quiet.min(Duration::from_millis(50))).await;
                continue;
            }
            let ids: Vec<String> = batch.iter().map(|m| m.ack_id.clone()).collect();
            self.ack(sub, &ids).await?;
            all.extend(batch);
            last_seen = Instant::now();
        }
    }

    /// Stops the emulator and starts it again on the same port and project,
    /// as a Pub/Sub outage would look to a worker. All topics, subscriptions
    /// and messages are gone afterwards.
    pub async fn restart(&mut self) -> Result<(), TestkitError> {
        self.stop();
        self.server
            .stop_and_release(PORT_RELEASE_TIMEOUT, "the Pub/Sub emulator")
            .await?;
        self.launch().await
    }

    /// Kills the emulator's process group (the gcloud wrapper and the Java
    /// server). Idempotent; also runs on drop.
    pub fn stop(&mut self) {
        self.server.stop();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }

    /// Spawns gcloud on `self.server.port()` and waits for the readiness line.
    async fn launch(&mut self) -> Result<(), TestkitError> {
        std::fs::create_dir_all(&self.data_dir).map_err(|source| TestkitError::Io {
            what: format!("creating emulator data dir {}", self.data_dir.display()),
            source,
        })?;
        let args = [
            "beta".to_owned(),
            "emulators".to_owned(),
            "pubsub".to_owned(),
            "start".to_owned(),
            format!("--host-port=127.0.0.1:{}", self.server.port()),
            format!("--project={}", self.project),
            format!("--data-dir={}", self.data_dir.display()),
        ];
        let (command, what) = process::gcloud(&args);
        let needle = format!("Server started, listening on {}", self.server.port());
        self.server
            .launch(command, what, &needle, READY_TIMEOUT)
            .await
    }

    /// The full name of a resource of `kind` (`topics`, `subscriptions`,
    /// `snapshots`) in the emulator's project.
    fn name(&self, kind: &str, id: &str) -> String {
        format!("projects/{}/{kind}/{id}", self.project)
    }

    /// One REST call below `/v1/projects/<project>/`; non-2xx is an error.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
        what: &str,
    ) -> Result<Value, TestkitError> {
        let url = format!(
            "http://127.0.0.1:{}/v1/projects/{}/{path}",
            self.server.port(),
            self.project
        );
        let (status, text) = admin::send(self.http.request(method, url).json(body), what).await?;
        admin::parse(what, status, &text)
    }
}

impl Drop for PubsubEmulator {
    fn drop(&mut self) {
        self.stop();
    }
}
