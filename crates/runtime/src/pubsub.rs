//! Pub/Sub through the official `google-cloud-pubsub` client: clients for
//! production (Application Default Credentials) or the emulator (plain
//! HTTP/2, anonymous), and the streaming-pull loops.

use crate::config::PubsubSettings;
use crate::source::{Acker, Delivery, STREAM_RETRY, from_pubsub};
use crate::worker::Engine;
use gluefleet_core::Connector;
use google_cloud_pubsub::client::{Publisher, Subscriber, SubscriptionAdmin, TopicAdmin};
use google_cloud_pubsub::subscriber::ShutdownBehavior;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long one admin call (`/readyz`, `check`) may take, client set-up
/// included: an endpoint that never answers must not leave readiness stuck.
pub const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs one admin call within [`ADMIN_TIMEOUT`].
async fn bounded<T>(
    what: &str,
    call: impl std::future::Future<Output = Result<T, String>>,
) -> Result<T, String> {
    tokio::time::timeout(ADMIN_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| Err(format!("{what}: no answer within {ADMIN_TIMEOUT:?}")))
}

/// Endpoint and credentials: the emulator when `emulator_host` is set.
#[derive(Clone, Debug)]
pub struct Connection {
    emulator: Option<String>,
}

impl Connection {
    /// From the settings.
    pub fn new(settings: &PubsubSettings) -> Self {
        Self {
            emulator: settings
                .emulator_host
                .as_ref()
                .map(|h| format!("http://{h}")),
        }
    }

    /// The emulator at `host` (`localhost:8085`), or Google Cloud with
    /// Application Default Credentials when `None`.
    pub fn with_emulator(host: Option<&str>) -> Self {
        Self {
            emulator: host.map(|h| format!("http://{h}")),
        }
    }

    /// A publisher for `topic` with the client's own batching (up to 100
    /// messages, 1 MB or 10 ms per request), for publishing many events.
    pub async fn batching_publisher(&self, topic: &str) -> Result<Publisher, String> {
        let mut b = Publisher::builder(topic);
        if let Some(e) = &self.emulator {
            b = b.with_endpoint(e).with_credentials(Self::anonymous());
        }
        b.build()
            .await
            .map_err(|e| format!("Pub/Sub publisher for {topic}: {e}"))
    }

    fn anonymous() -> google_cloud_auth::credentials::Credentials {
        google_cloud_auth::credentials::anonymous::Builder::new().build()
    }

    /// The streaming-pull client.
    pub async fn subscriber(&self) -> Result<Subscriber, String> {
        let mut b = Subscriber::builder();
        if let Some(e) = &self.emulator {
            b = b.with_endpoint(e).with_credentials(Self::anonymous());
        }
        b.build()
            .await
            .map_err(|e| format!("Pub/Sub subscriber client: {e}"))
    }

    /// A publisher for `topic` (the dead-letter topic).
    pub async fn publisher(&self, topic: &str) -> Result<Publisher, String> {
        let mut b = Publisher::builder(topic);
        if let Some(e) = &self.emulator {
            b = b.with_endpoint(e).with_credentials(Self::anonymous());
        }
        // Dead letters are rare and each one holds an ack: send at once.
        b.set_delay_threshold(Duration::from_millis(1))
            .build()
            .await
            .map_err(|e| format!("Pub/Sub publisher for {topic}: {e}"))
    }

    /// Checks that the subscription exists and can be read, within
    /// [`ADMIN_TIMEOUT`].
    pub async fn check_subscription(
        &self,
        subscription: &str,
    ) -> Result<SubscriptionFacts, String> {
        bounded(
            &format!("reading subscription {subscription}"),
            self.read_subscription(subscription),
        )
        .await
    }

    async fn read_subscription(&self, subscription: &str) -> Result<SubscriptionFacts, String> {
        let mut b = SubscriptionAdmin::builder();
        if let Some(e) = &self.emulator {
            b = b.with_endpoint(e).with_credentials(Self::anonymous());
        }
        let admin = b
            .build()
            .await
            .map_err(|e| format!("Pub/Sub admin client: {e}"))?;
        let s = admin
            .get_subscription()
            .set_subscription(subscription)
            .send()
            .await
            .map_err(|e| format!("reading subscription {subscription}: {e}"))?;
        Ok(SubscriptionFacts {
            name: subscription.to_owned(),
            topic: s.topic.clone(),
            max_delivery_attempts: s
                .dead_letter_policy
                .as_ref()
                .map(|p| u32::try_from(p.max_delivery_attempts).unwrap_or(0)),
            push_endpoint: s
                .push_config
                .as_ref()
                .map(|p| p.push_endpoint.clone())
                .filter(|e| !e.is_empty()),
            ack_deadline: Duration::from_secs(u64::try_from(s.ack_deadline_seconds).unwrap_or(0)),
        })
    }

    /// Checks that `topic` exists, within [`ADMIN_TIMEOUT`]; `what` names
    /// its use (`dead-letter topic`, `results topic`) in the answer.
    pub async fn check_topic(&self, what: &str, topic: &str) -> Result<String, String> {
        bounded(
            &format!("reading {what} {topic}"),
            self.read_topic(what, topic),
        )
        .await
    }

    async fn read_topic(&self, what: &str, topic: &str) -> Result<String, String> {
        let mut b = TopicAdmin::builder();
        if let Some(e) = &self.emulator {
            b = b.with_endpoint(e).with_credentials(Self::anonymous());
        }
        let admin = b
            .build()
            .await
            .map_err(|e| format!("Pub/Sub admin client: {e}"))?;
        admin
            .get_topic()
            .set_topic(topic)
            .send()
            .await
            .map_err(|e| format!("reading {what} {topic}: {e}"))?;
        Ok(format!("{what} {topic}"))
    }
}

/// What `check` reads of the subscription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionFacts {
    /// `projects/P/subscriptions/S`.
    pub name: String,
    /// The topic it is attached to.
    pub topic: String,
    /// The dead-letter policy's `maxDeliveryAttempts`; `None` without a
    /// policy (Pub/Sub then does not count delivery attempts at all).
    pub max_delivery_attempts: Option<u32>,
    /// Where Pub/Sub pushes, for a push subscription.
    pub push_endpoint: Option<String>,
    /// How long Pub/Sub waits for an ack (for a push: for the answer).
    pub ack_deadline: Duration,
}

impl SubscriptionFacts {
    /// The `check` line.
    pub fn describe(&self) -> String {
        let dl = match self.max_delivery_attempts {
            Some(n) => format!(", dead-letter policy after {n} attempts"),
            None => ", no dead-letter policy (delivery attempts are not counted)".into(),
        };
        format!("subscription {} on {}{dl}", self.name, self.topic)
    }

    /// A warning when the subscription's dead-letter policy and the worker's
    /// `delivery.max_delivery_attempts` disagree; `None` when they match.
    ///
    /// They are meant to be equal: the worker dead-letters on attempt
    /// `configured` with the reason of the last failure, and the policy is
    /// the second line behind it (a crash, a lease that ran out).
    pub fn attempts_mismatch(&self, configured: u32) -> Option<String> {
        match self.max_delivery_attempts {
            None => Some(format!(
                "subscription {} has no dead-letter policy: Pub/Sub does not count delivery attempts, so delivery.max_delivery_attempts = {configured} never applies and a failing message is retried until its retention ends; give it a dead-letter policy with max delivery attempts {configured}",
                self.name
            )),
            Some(n) if n < configured => Some(format!(
                "subscription {} dead-letters after {n} attempts, before the worker's delivery.max_delivery_attempts = {configured}: Pub/Sub forwards such messages itself, without the worker's reason; set both to the same number",
                self.name
            )),
            Some(n) if n > configured => Some(format!(
                "subscription {} dead-letters after {n} attempts, the worker after {configured} (delivery.max_delivery_attempts): the policy is only reached when the worker could not decide; set both to the same number",
                self.name
            )),
            Some(_) => None,
        }
    }

    /// A warning when a push subscription gives up on a request before the
    /// worker's `push.answer_within` ends: every answer that late comes
    /// after Pub/Sub has already pushed the message again.
    pub fn answer_too_late(&self, answer_within: Duration) -> Option<String> {
        let endpoint = self.push_endpoint.as_deref()?;
        (answer_within >= self.ack_deadline).then(|| {
            format!(
                "subscription {} pushes to {endpoint} with an ack deadline of {} s, not more than push.answer_within ({}): a slow answer arrives after Pub/Sub has pushed the message again; raise the ack deadline or lower push.answer_within",
                self.name,
                self.ack_deadline.as_secs(),
                humantime::format_duration(answer_within)
            )
        })
    }
}

/// Runs one streaming pull until the engine stops, reopening it when it ends
/// or fails. `connected` reports stream health to `/readyz`.
pub async fn pull_loop<C: Connector>(
    engine: Arc<Engine<C>>,
    client: Subscriber,
    subscription: String,
    settings: PubsubSettings,
    connected: Arc<AtomicBool>,
) {
    while !engine.stopping.is_cancelled() {
        let mut stream = client
            .subscribe(subscription.clone())
            .set_max_outstanding_messages(settings.max_outstanding_messages)
            .set_max_outstanding_bytes(settings.max_outstanding_bytes)
            .set_max_lease_extension(settings.lease_extension)
            .set_shutdown_behavior(ShutdownBehavior::WaitForProcessing)
            .build();
        let token = stream.shutdown_token();
        loop {
            let next = tokio::select! {
                biased;
                _ = engine.stopping.cancelled() => break,
                n = stream.next() => n,
            };
            match next {
                Some(Ok((m, h))) => {
                    connected.store(true, Ordering::Relaxed);
                    let raw = from_pubsub(m, h.delivery_attempt());
                    engine
                        .dispatch(Delivery {
                            raw,
                            acker: Acker::Pubsub(h),
                            answer_by: None,
                        })
                        .await;
                }
                Some(Err(e)) => {
                    connected.store(false, Ordering::Relaxed);
                    tracing::warn!(error = %e, subscription = %subscription, "Streaming pull failed; reopening.");
                    break;
                }
                None => {
                    tracing::info!(subscription = %subscription, "Streaming pull ended; reopening.");
                    break;
                }
            }
        }
        if engine.stopping.is_cancelled() {
            // Flush acks, and nack every message the client still leases
            // (received but never handed to us), before returning; the caller
            // bounds the wait with the drain timeout.
            token.shutdown().await;
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(STREAM_RETRY) => {}
            _ = engine.stopping.cancelled() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SubscriptionFacts;
    use std::time::Duration;

    fn facts(max: Option<u32>) -> SubscriptionFacts {
        SubscriptionFacts {
            name: "projects/p/subscriptions/s".into(),
            topic: "projects/p/topics/t".into(),
            max_delivery_attempts: max,
            push_endpoint: None,
            ack_deadline: Duration::from_secs(10),
        }
    }

    #[test]
    fn a_push_deadline_shorter_than_the_answer_is_warned() {
        let eight = Duration::from_secs(8);
        assert_eq!(
            facts(Some(10)).answer_too_late(eight),
            None,
            "pull: no push answer"
        );
        let push = SubscriptionFacts {
            push_endpoint: Some("https://w.example/".into()),
            ..facts(Some(10))
        };
        assert_eq!(push.answer_too_late(eight), None, "8 s inside 10 s");
        let w = push
            .answer_too_late(Duration::from_secs(10))
            .expect("10 s is not inside 10 s");
        assert!(
            w.contains("ack deadline of 10 s") && w.contains("push.answer_within"),
            "{w}"
        );
    }

    #[test]
    fn the_dead_letter_policy_is_compared_with_the_config() {
        assert_eq!(facts(Some(10)).attempts_mismatch(10), None);
        let fewer = facts(Some(5)).attempts_mismatch(10).expect("5 < 10 warned");
        assert!(
            fewer.contains("after 5 attempts") && fewer.contains("= 10"),
            "{fewer}"
        );
        let more = facts(Some(20))
            .attempts_mismatch(10)
            .expect("20 > 10 warned");
        assert!(
            more.contains("after 20 attempts") && more.contains("after 10"),
            "{more}"
        );
        let none = facts(None).attempts_mismatch(10).expect("no policy warned");
        assert!(none.contains("no dead-letter policy"), "{none}");
    }
}
