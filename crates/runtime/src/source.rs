//! Where messages come from: Pub/Sub (the official streaming-pull client) or
//! a JSONL file for local work. Both hand out [`Delivery`]s whose [`Acker`]
//! is the only way to settle a message.

use gluefleet_core::RawMessage;
use google_cloud_pubsub::subscriber::handler::Handler;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::mpsc;

/// One message and the means to settle it.
#[derive(Debug)]
pub struct Delivery {
    /// The message.
    pub raw: RawMessage,
    /// Settles it; dropping it unsettled nacks.
    pub acker: Acker,
    /// When the outcome is due, if the source has a deadline of its own
    /// (a push request); a lease-based source has none: it extends leases.
    pub answer_by: Option<tokio::time::Instant>,
}

/// Settles one message exactly once (the methods consume it).
#[derive(Debug)]
pub enum Acker {
    /// A Pub/Sub lease.
    Pubsub(Handler),
    /// A push request waiting for its answer (`serve`): the verdict becomes
    /// its HTTP status.
    Push(tokio::sync::oneshot::Sender<Verdict>),
    /// A line of a local file; a nack puts the message back after its delay,
    /// as Pub/Sub would redeliver it.
    Local {
        /// Where redeliveries go.
        requeue: mpsc::UnboundedSender<RawMessage>,
        /// The message, for the redelivery.
        raw: Box<RawMessage>,
    },
}

/// How a pushed message was settled: its HTTP answer says it to Pub/Sub.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: Pub/Sub forgets it.
    Ack,
    /// Non-2xx: Pub/Sub redelivers it, after its push backoff.
    Nack,
}

impl Acker {
    /// False when a nack must go out at once rather than after its delay: a
    /// push request cannot be held (Pub/Sub's push backoff spaces the
    /// redeliveries instead, and the request has its own deadline).
    pub fn holds(&self) -> bool {
        !matches!(self, Acker::Push(_))
    }

    /// The effect is done: Pub/Sub forgets the message. On an exactly-once
    /// subscription the ack is confirmed; a failed confirmation is logged (the
    /// effect stands, and the idempotency store absorbs the redelivery).
    pub async fn ack(self) {
        match self {
            Acker::Pubsub(Handler::ExactlyOnce(h)) => {
                if let Err(e) = h.confirmed_ack().await {
                    tracing::warn!(error = %e, "Exactly-once ack not confirmed; the message may be redelivered.");
                }
            }
            Acker::Pubsub(h) => h.ack(),
            // The request may have gone (Pub/Sub's deadline passed): then
            // it counts as a nack there, and the idempotency store takes
            // the redelivery.
            Acker::Push(tx) => {
                let _ = tx.send(Verdict::Ack);
            }
            Acker::Local { .. } => {}
        }
    }

    /// Hand the message back for redelivery now.
    pub fn nack(self) {
        match self {
            Acker::Pubsub(h) => h.nack(),
            Acker::Push(tx) => {
                let _ = tx.send(Verdict::Nack);
            }
            Acker::Local { requeue, mut raw } => {
                raw.delivery_attempt = Some(raw.delivery_attempt.unwrap_or(1) + 1);
                // The receiver is gone only when the worker is stopping.
                let _ = requeue.send(*raw);
            }
        }
    }
}

/// Converts a message of the official client.
pub fn from_pubsub(
    m: google_cloud_pubsub::model::Message,
    delivery_attempt: Option<i32>,
) -> RawMessage {
    RawMessage {
        data: m.data.to_vec(),
        attributes: m.attributes.into_iter().collect(),
        message_id: m.message_id,
        publish_time: m
            .publish_time
            .and_then(|t| std::time::SystemTime::try_from(t).ok()),
        ordering_key: m.ordering_key,
        delivery_attempt,
    }
}

/// Pub/Sub's REST shape of a message, as a JSONL line may hold it.
#[derive(serde::Deserialize)]
struct RestShape {
    attributes: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    data: Option<String>,
    #[serde(default, rename = "messageId")]
    message_id: Option<String>,
    #[serde(default, rename = "type")]
    event_type: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    specversion: Option<serde::de::IgnoredAny>,
}

/// Reads a JSONL file (or stdin) into messages.
///
/// Each line is a message body (a CloudEvent or an envelope). A line that is
/// an object with an `attributes` object and a base64 `data` string, and no
/// `type` or `specversion`, is read as Pub/Sub's REST shape instead, so a
/// captured message can be replayed as it was. Blank lines are skipped.
pub fn parse_jsonl(text: &str) -> Vec<RawMessage> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            let mut raw = RawMessage {
                data: line.as_bytes().to_vec(),
                message_id: format!("line-{}", i + 1),
                delivery_attempt: Some(1),
                ..RawMessage::default()
            };
            // Read into a typed shape, not a JSON tree: a body that is not the
            // REST shape is skipped over without being built in memory (a
            // 10 MB array would otherwise cost hundreds of MiB before the
            // size guard could refuse it).
            if let Ok(rest) = serde_json::from_str::<RestShape>(line)
                && rest.event_type.is_none()
                && rest.specversion.is_none()
            {
                use base64::Engine as _;
                let data = rest.data.unwrap_or_default();
                if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(data) {
                    raw.data = bytes;
                    raw.attributes = rest
                        .attributes
                        .into_iter()
                        .map(|(k, v)| {
                            let v = match v {
                                serde_json::Value::String(s) => s,
                                other => other.to_string(),
                            };
                            (k, v)
                        })
                        .collect::<BTreeMap<_, _>>();
                    if let Some(id) = rest.message_id {
                        raw.message_id = id;
                    }
                }
            }
            raw
        })
        .collect()
}

/// How long to wait before reopening a Pub/Sub stream that ended.
pub const STREAM_RETRY: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_bodies_and_rest_shape() {
        let text = "{\"type\":\"a\",\"data\":{}}\n\n{\"attributes\":{\"ce-id\":\"1\"},\"data\":\"e30=\",\"messageId\":\"77\"}\nnot json\n";
        let msgs = parse_jsonl(text);
        assert_eq!(msgs.len(), 3);
        assert_eq!(msgs[0].message_id, "line-1");
        assert_eq!(msgs[1].data, b"{}");
        assert_eq!(
            msgs[1].attributes.get("ce-id").map(String::as_str),
            Some("1")
        );
        assert_eq!(msgs[1].message_id, "77");
        assert_eq!(
            msgs[2].data, b"not json",
            "garbage stays garbage, to be dead-lettered"
        );
    }

    #[tokio::test]
    async fn local_nack_requeues_with_the_next_attempt() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let raw = RawMessage {
            message_id: "m".into(),
            delivery_attempt: Some(1),
            ..RawMessage::default()
        };
        Acker::Local {
            requeue: tx,
            raw: Box::new(raw),
        }
        .nack();
        assert_eq!(rx.recv().await.and_then(|m| m.delivery_attempt), Some(2));
    }
}
