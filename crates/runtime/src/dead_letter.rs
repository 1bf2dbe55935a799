//! The dead-letter topic: where messages that can never succeed go, with
//! the reason, so nothing is lost and an operator can fix and replay them.
//! The format is documented in docs/DEAD-LETTERS.md.

use gluefleet_core::RawMessage;
use gluefleet_core::outcome::DeadLetter;
use google_cloud_pubsub::client::Publisher;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::Mutex;
use std::time::SystemTime;

/// Pub/Sub caps an attribute value at 1,024 bytes.
const MAX_ATTRIBUTE_BYTES: usize = 1024;

/// What the dead-letter message says about where it came from.
#[derive(Clone, Debug)]
pub struct Origin {
    /// `legacy-rest`, ...
    pub connector: String,
    /// The subscription (or `file:PATH`) the message came from.
    pub subscription: String,
}

/// Where dead letters go.
#[derive(Debug)]
pub enum DeadLetterSink {
    /// A Pub/Sub topic.
    Pubsub(Publisher),
    /// JSONL lines in a file (local runs).
    File(Mutex<std::fs::File>),
    /// JSONL lines on stderr (local runs).
    Stderr,
}

/// The attributes of a dead-letter message: the original ones plus ours.
pub fn attributes(
    raw: &RawMessage,
    dl: &DeadLetter,
    origin: &Origin,
    failed_at: SystemTime,
) -> BTreeMap<String, String> {
    let mut attrs = raw.attributes.clone();
    let mut put = |k: &str, v: String| {
        attrs.insert(k.to_owned(), truncate(v));
    };
    put("gluefleet-error-class", dl.class.clone());
    put("gluefleet-error", dl.error.clone());
    if let Some(s) = dl.http_status {
        put("gluefleet-http-status", s.to_string());
    }
    put("gluefleet-connector", origin.connector.clone());
    if !dl.route.is_empty() {
        put("gluefleet-route", dl.route.clone());
    }
    put("gluefleet-attempts", dl.attempts.to_string());
    if let Some(a) = raw.delivery_attempt {
        put("gluefleet-delivery-attempt", a.to_string());
    }
    put("gluefleet-original-message-id", raw.message_id.clone());
    put(
        "gluefleet-original-subscription",
        origin.subscription.clone(),
    );
    put(
        "gluefleet-failed-at",
        humantime::format_rfc3339_millis(failed_at).to_string(),
    );
    attrs
}

/// Cuts `v` to the attribute limit on a character boundary, marking the cut.
fn truncate(mut v: String) -> String {
    if v.len() <= MAX_ATTRIBUTE_BYTES {
        return v;
    }
    let mut end = MAX_ATTRIBUTE_BYTES - 3;
    while !v.is_char_boundary(end) {
        end -= 1;
    }
    v.truncate(end);
    v.push_str("...");
    v
}

impl DeadLetterSink {
    /// Publishes the dead letter; only after `Ok` may the original be acked.
    pub async fn publish(
        &self,
        raw: &RawMessage,
        dl: &DeadLetter,
        origin: &Origin,
    ) -> Result<(), String> {
        let attrs = attributes(raw, dl, origin, SystemTime::now());
        match self {
            DeadLetterSink::Pubsub(p) => {
                let msg = google_cloud_pubsub::model::Message::new()
                    .set_data(raw.data.clone())
                    .set_attributes(attrs);
                p.publish(msg)
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("publishing to the dead-letter topic: {e}"))
            }
            DeadLetterSink::File(f) => {
                let line = local_line(raw, attrs)?;
                let mut f = f.lock().unwrap_or_else(|p| p.into_inner());
                writeln!(f, "{line}").map_err(|e| format!("writing the dead-letter file: {e}"))
            }
            DeadLetterSink::Stderr => {
                let line = local_line(raw, attrs)?;
                writeln!(std::io::stderr(), "{line}")
                    .map_err(|e| format!("writing dead letters to stderr: {e}"))
            }
        }
    }
}

/// Pub/Sub's REST shape, so that a local dead letter can be replayed with
/// `--source file:` as it is.
fn local_line(raw: &RawMessage, attrs: BTreeMap<String, String>) -> Result<String, String> {
    use base64::Engine as _;
    let v = serde_json::json!({
        "messageId": raw.message_id,
        "data": base64::engine::general_purpose::STANDARD.encode(&raw.data),
        "attributes": attrs,
    });
    serde_json::to_string(&v).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_keep_the_original_and_add_ours() {
        let raw = RawMessage {
            data: b"{}".to_vec(),
            attributes: BTreeMap::from([("ce-id".to_owned(), "e1".to_owned())]),
            message_id: "42".into(),
            delivery_attempt: Some(3),
            ..RawMessage::default()
        };
        let dl = DeadLetter {
            class: "permanent".into(),
            error: "é".repeat(600),
            http_status: Some(400),
            route: "order.*".into(),
            attempts: 1,
        };
        let origin = Origin {
            connector: "legacy-rest".into(),
            subscription: "projects/p/subscriptions/s".into(),
        };
        let a = attributes(&raw, &dl, &origin, SystemTime::UNIX_EPOCH);
        assert_eq!(a.get("ce-id").map(String::as_str), Some("e1"));
        assert_eq!(
            a.get("gluefleet-http-status").map(String::as_str),
            Some("400")
        );
        assert_eq!(
            a.get("gluefleet-original-message-id").map(String::as_str),
            Some("42")
        );
        assert_eq!(
            a.get("gluefleet-failed-at").map(String::as_str),
            Some("1970-01-01T00:00:00.000Z")
        );
        let err = a
            .get("gluefleet-error")
            .map(String::as_str)
            .unwrap_or_default();
        assert!(
            err.len() <= MAX_ATTRIBUTE_BYTES && err.ends_with("..."),
            "{}",
            err.len()
        );
        for k in [
            "gluefleet-error-class",
            "gluefleet-connector",
            "gluefleet-route",
            "gluefleet-attempts",
            "gluefleet-original-subscription",
        ] {
            assert!(a.contains_key(k), "{k}");
        }
    }
}
