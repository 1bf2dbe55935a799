//! Result events: a route with `results` reports each outcome to its topic,
//! and the original is acked only after that publish is confirmed.
//!
//! The event is a CloudEvent in binary mode (context in `ce-*` attributes,
//! JSON data), so any gluefleet connector reads it as it reads any event:
//!
//! | attribute | value |
//! |-----------|-------|
//! | `ce-type` | `gluefleet.delivered` or `gluefleet.dead-lettered` |
//! | `ce-source` | `gluefleet/<connector>/<route>` |
//! | `ce-id` | from the original's idempotency key and the outcome, so a republished result keeps its id |
//! | `ce-subject` | the original event's id: what a waiting step correlates on |
//! | `ce-gluefleetroute`, `ce-gluefleetconnector` | for subscription filters |
//! | `ce-originalid`, `ce-originalsource`, `ce-originaltype` | the original's context |
//!
//! The data (docs/PUBLISHING.md#results):
//!
//! ```json
//! {"outcome": "delivered", "reason": "delivered", "connector": "legacy-rest",
//!  "route": "create-customer", "attempts": 1, "replayed": false,
//!  "event": {"id": "c-1", "source": "crm", "type": "customer.created", "message_id": "17"},
//!  "answer": {"status": 201, "location": "/customers/42"},
//!  "data": {"name": "Ada"}}
//! ```

use crate::dead_letter::{rest_json, truncate};
use crate::pubsub::Connection;
use gluefleet_core::outcome::Outcome;
use gluefleet_core::results::{DEAD_LETTERED, DELIVERED, ResultFacts};
use gluefleet_core::{ConfigError, Connector, Pipeline};
use google_cloud_pubsub::client::Publisher;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::sync::Mutex;
use std::time::SystemTime;

/// Where result events go.
#[derive(Debug, Default)]
pub enum ResultSink {
    /// No route has `results`.
    #[default]
    None,
    /// One publisher per results topic, keyed by the topic as configured.
    Pubsub(HashMap<String, Publisher>),
    /// JSONL lines in Pub/Sub's REST shape (local runs): a file, or stderr
    /// when `file` is `None`.
    Lines(Option<Mutex<std::fs::File>>),
}

/// One result event, ready to publish.
#[derive(Clone, Debug, PartialEq)]
pub struct ResultEvent {
    /// The id (`ce-id`).
    pub id: String,
    /// The JSON data.
    pub data: Vec<u8>,
    /// The CloudEvents attributes.
    pub attributes: BTreeMap<String, String>,
}

/// The result event for `outcome`, or `None` for a nack (not finished yet).
pub fn event(facts: &ResultFacts, outcome: &Outcome, attempts: u32) -> Option<ResultEvent> {
    let (event_type, label, reason, failure) = match outcome {
        Outcome::Ack(reason) => (DELIVERED, "delivered", reason.as_str(), None),
        Outcome::DeadLetter(dl) => (DEAD_LETTERED, "dead-lettered", dl.class.as_str(), Some(dl)),
        _ => return None,
    };
    let basis = if facts.key.is_empty() {
        // Dead-lettered before the key was worked out (a bad subject).
        format!("message:{}", facts.message_id)
    } else {
        facts.key.clone()
    };
    let digest = Sha256::digest(basis.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    let id = format!("{hex}-{label}");
    let mut data = json!({
        "outcome": label,
        "reason": reason,
        "connector": facts.connector,
        "route": facts.route,
        "attempts": attempts,
        "replayed": facts.replayed,
        "event": {
            "id": facts.event_id,
            "source": facts.event_source,
            "type": facts.event_type,
            "subject": facts.event_subject,
            "message_id": facts.message_id,
        },
        "answer": facts.answer,
        "data": facts.data,
    });
    if let Some(dl) = failure {
        data["error"] = json!(dl.error);
        data["http_status"] = json!(dl.http_status);
    }
    let mut attributes = BTreeMap::new();
    let mut put = |k: &str, v: &str| {
        attributes.insert(k.to_owned(), truncate(v.to_owned()));
    };
    put("ce-specversion", "1.0");
    put("ce-id", &id);
    put("ce-type", event_type);
    put(
        "ce-source",
        &format!("gluefleet/{}/{}", facts.connector, facts.route),
    );
    put("ce-subject", &facts.event_id);
    put(
        "ce-time",
        &humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
    );
    put("ce-gluefleetroute", &facts.route);
    put("ce-gluefleetconnector", facts.connector);
    put("ce-originalid", &facts.event_id);
    put("ce-originalsource", &facts.event_source);
    put("ce-originaltype", &facts.event_type);
    put("content-type", "application/json");
    Some(ResultEvent {
        id,
        data: data.to_string().into_bytes(),
        attributes,
    })
}

impl ResultSink {
    /// A publisher for every results topic the pipeline's routes name,
    /// resolved against `pubsub.project`. A name that is not a topic fails
    /// here, at start, naming the route.
    pub async fn pubsub<C: Connector>(
        pipeline: &Pipeline<C>,
        settings: &crate::config::PubsubSettings,
        conn: &Connection,
    ) -> Result<Self, ConfigError> {
        let mut publishers = HashMap::new();
        for route in pipeline.routes().iter() {
            let Some(topic) = &route.results else {
                continue;
            };
            if publishers.contains_key(topic) {
                continue;
            }
            let path = settings.topic_path(topic, &format!("routes[{}].results", route.name))?;
            let publisher = conn.publisher(&path).await.map_err(ConfigError::from)?;
            publishers.insert(topic.clone(), publisher);
        }
        Ok(if publishers.is_empty() {
            Self::None
        } else {
            Self::Pubsub(publishers)
        })
    }

    /// Publishes `facts`' result for `outcome`; only after `Ok` may the
    /// original be acked.
    pub async fn publish(
        &self,
        facts: &ResultFacts,
        outcome: &Outcome,
        attempts: u32,
    ) -> Result<(), String> {
        let Some(event) = event(facts, outcome, attempts) else {
            return Ok(());
        };
        match self {
            ResultSink::None => Err(format!(
                "route {} has results = {:?}, but no results publisher was set up",
                facts.route, facts.topic
            )),
            ResultSink::Pubsub(publishers) => {
                let publisher = publishers
                    .get(&facts.topic)
                    .ok_or_else(|| format!("no publisher for results topic {:?}", facts.topic))?;
                let msg = google_cloud_pubsub::model::Message::new()
                    .set_data(event.data)
                    .set_attributes(event.attributes);
                publisher
                    .publish(msg)
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("publishing the result to {}: {e}", facts.topic))
            }
            ResultSink::Lines(file) => {
                let line = rest_json(&event.id, &event.data, &event.attributes);
                match file {
                    Some(f) => {
                        let mut f = f.lock().unwrap_or_else(|p| p.into_inner());
                        writeln!(f, "{line}").map_err(|e| format!("writing the results file: {e}"))
                    }
                    None => writeln!(std::io::stderr(), "{line}")
                        .map_err(|e| format!("writing results to stderr: {e}")),
                }
            }
        }
    }
}

/// The data of a result event as JSON, for tests and tools that read one.
pub fn data_of(event: &ResultEvent) -> Option<Value> {
    serde_json::from_slice(&event.data).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use gluefleet_core::event::{RawMessage, decode};
    use gluefleet_core::outcome::AckReason;

    fn facts(key: &str) -> ResultFacts {
        ResultFacts {
            topic: "results".into(),
            connector: "legacy-rest",
            route: "create-customer".into(),
            key: key.into(),
            event_id: "c-1".into(),
            event_source: "crm".into(),
            event_type: "customer.created".into(),
            event_subject: None,
            message_id: "17".into(),
            data: json!({"name": "Ada"}),
            answer: Some(
                json!({"status": 201, "location": "/customers/42"})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            ),
            replayed: false,
        }
    }

    #[test]
    fn a_result_is_a_cloudevent_any_connector_reads() {
        let e = event(&facts("k"), &Outcome::Ack(AckReason::Delivered), 1).expect("acked");
        let raw = RawMessage {
            message_id: "99".into(),
            data: e.data.clone(),
            attributes: e.attributes.clone(),
            ..RawMessage::default()
        };
        let decoded = decode(&raw).expect("a result decodes as an event");
        assert_eq!(decoded.event_type, DELIVERED);
        assert_eq!(decoded.subject.as_deref(), Some("c-1"));
        assert_eq!(decoded.source, "gluefleet/legacy-rest/create-customer");
        assert_eq!(decoded.data["answer"]["location"], "/customers/42");
        assert_eq!(decoded.data["data"]["name"], "Ada");
        assert_eq!(decoded.data["event"]["type"], "customer.created");
    }

    #[test]
    fn the_id_follows_the_effect_not_the_delivery() {
        let first = event(&facts("k"), &Outcome::Ack(AckReason::Delivered), 1).expect("acked");
        let mut again = facts("k");
        again.replayed = true;
        let replay = event(&again, &Outcome::Ack(AckReason::Duplicate), 0).expect("acked");
        assert_eq!(first.id, replay.id, "a republished result keeps its id");
        let other = event(&facts("k2"), &Outcome::Ack(AckReason::Delivered), 1).expect("acked");
        assert_ne!(first.id, other.id);
        let dead = event(
            &facts("k"),
            &Outcome::dead_letter("permanent", "400 Bad Request", Some(400), "r", 1),
            1,
        )
        .expect("dead-lettered");
        assert_ne!(first.id, dead.id, "each outcome its own id");
        assert_eq!(dead.attributes["ce-type"], DEAD_LETTERED);
        let data = data_of(&dead).expect("json");
        assert_eq!(
            (data["reason"].as_str(), data["http_status"].as_u64()),
            (Some("permanent"), Some(400))
        );
        assert!(
            event(
                &facts("k"),
                &Outcome::Nack {
                    delay: std::time::Duration::from_secs(1),
                    reason: gluefleet_core::outcome::NackReason::Retryable
                },
                1
            )
            .is_none(),
            "a nack is not an outcome to report"
        );
    }
}
