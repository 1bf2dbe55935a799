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

/// Pub/Sub's documented limits on one message. The emulator enforces none
/// of them, so they are kept here: a dead letter over any of them would be
/// refused by the real topic on every redelivery, and the message would go
/// round the subscription forever, calling the target each time.
pub mod limits {
    /// Attributes per message.
    pub const ATTRIBUTES: usize = 100;
    /// Bytes of one attribute key.
    pub const KEY_BYTES: usize = 256;
    /// Bytes of one attribute value.
    pub const VALUE_BYTES: usize = 1024;
    /// Bytes of a message (and of its publish request): data plus every
    /// attribute key and value.
    pub const MESSAGE_BYTES: usize = 10_000_000;
    /// Kept free for the publish request's own bytes: the topic name and the
    /// protobuf framing of each field.
    pub const FRAMING_BYTES: usize = 4096;
}

const MAX_ATTRIBUTE_BYTES: usize = limits::VALUE_BYTES;

/// The one attribute that carries every reason when the original's own
/// attributes leave no room for ours.
pub const FOLDED: &str = "gluefleet-dead-letter";
/// Set (to `pubsub-json`) when the data is the original message in Pub/Sub's
/// REST shape, because the original could not travel as it is.
pub const ENVELOPE: &str = "gluefleet-envelope";
/// Set when even the envelope was over the size limit and the data was cut.
pub const TRUNCATED: &str = "gluefleet-truncated";

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

/// What goes to the dead-letter topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Letter {
    /// The original data, byte for byte, except in the two last-resort shapes.
    pub data: Vec<u8>,
    /// The original attributes plus gluefleet's.
    pub attributes: BTreeMap<String, String>,
}

impl Letter {
    /// Bytes Pub/Sub counts against the message limit.
    pub fn size(&self) -> usize {
        self.data.len()
            + self
                .attributes
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
    }

    /// Within every limit Pub/Sub documents.
    pub fn fits(&self) -> bool {
        self.attributes.len() <= limits::ATTRIBUTES
            && self
                .attributes
                .iter()
                .all(|(k, v)| k.len() <= limits::KEY_BYTES && v.len() <= limits::VALUE_BYTES)
            && self.size() <= limits::MESSAGE_BYTES - limits::FRAMING_BYTES
    }
}

/// gluefleet's reasons, without the `gluefleet-` prefix, in the documented order.
fn reasons(
    raw: &RawMessage,
    dl: &DeadLetter,
    origin: &Origin,
    failed_at: SystemTime,
) -> Vec<(&'static str, String)> {
    let mut out = vec![
        ("error-class", dl.class.clone()),
        ("error", dl.error.clone()),
    ];
    if let Some(s) = dl.http_status {
        out.push(("http-status", s.to_string()));
    }
    out.push(("connector", origin.connector.clone()));
    if !dl.route.is_empty() {
        out.push(("route", dl.route.clone()));
    }
    out.push(("attempts", dl.attempts.to_string()));
    if let Some(a) = raw.delivery_attempt {
        out.push(("delivery-attempt", a.to_string()));
    }
    out.push(("original-message-id", raw.message_id.clone()));
    out.push(("original-subscription", origin.subscription.clone()));
    out.push((
        "failed-at",
        humantime::format_rfc3339_millis(failed_at).to_string(),
    ));
    out
}

/// The reasons as one JSON object within an attribute value: the error is cut
/// (marked `...`) until it fits, then any other value too long for it.
fn folded(reasons: &[(&'static str, String)]) -> String {
    let render = |error_bytes: usize, other_bytes: usize| {
        let map: serde_json::Map<String, serde_json::Value> = reasons
            .iter()
            .map(|(k, v)| {
                let cap = if *k == "error" {
                    error_bytes
                } else {
                    other_bytes
                };
                ((*k).to_owned(), cut(v.clone(), cap).into())
            })
            .collect();
        serde_json::Value::Object(map).to_string()
    };
    let mut error = MAX_ATTRIBUTE_BYTES;
    loop {
        let text = render(error, MAX_ATTRIBUTE_BYTES);
        if text.len() <= MAX_ATTRIBUTE_BYTES {
            return text;
        }
        if error <= 16 {
            // Only other values this long can be left: a subscription name
            // and a message id are short, but they come from outside.
            return render(16, 64);
        }
        error = error.saturating_sub((text.len() - MAX_ATTRIBUTE_BYTES).max(16));
    }
}

/// The dead letter for `raw`, in the first of these shapes that Pub/Sub
/// accepts (docs/DEAD-LETTERS.md):
///
/// 1. the original data and attributes plus one `gluefleet-*` attribute per
///    reason (up to ten);
/// 2. the original data and attributes plus every reason folded into one
///    JSON attribute, [`FOLDED`], when the original has more than 90;
/// 3. the original, data and attributes, as a Pub/Sub REST JSON line in the
///    data, with [`ENVELOPE`] and the `gluefleet-*` reasons as the only
///    attributes: when the original has 100 attributes, or ones over the
///    key and value limits (only a file source can bring those);
/// 4. shape 3 with the data cut to the size limit, marked [`TRUNCATED`]: an
///    original near 10 MB has no room left for any reason.
///
/// Attributes of the original named `gluefleet-*` (a replayed dead letter's)
/// are replaced by this dead letter's.
pub fn letter(raw: &RawMessage, dl: &DeadLetter, origin: &Origin, failed_at: SystemTime) -> Letter {
    let reasons = reasons(raw, dl, origin, failed_at);
    let original: BTreeMap<String, String> = raw
        .attributes
        .iter()
        .filter(|(k, _)| !k.starts_with("gluefleet-"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let ours: BTreeMap<String, String> = reasons
        .iter()
        .map(|(k, v)| (format!("gluefleet-{k}"), truncate(v.clone())))
        .collect();

    let mut attributes = original.clone();
    attributes.extend(ours.clone());
    let full = Letter {
        data: raw.data.clone(),
        attributes,
    };
    if full.fits() {
        return full;
    }
    let mut attributes = original.clone();
    attributes.insert(FOLDED.to_owned(), folded(&reasons));
    let one = Letter {
        data: raw.data.clone(),
        attributes,
    };
    if one.fits() {
        return one;
    }
    let mut attributes = ours;
    attributes.insert(ENVELOPE.to_owned(), "pubsub-json".to_owned());
    let envelope = |data: &[u8]| rest_json(&raw.message_id, data, &original).into_bytes();
    let enveloped = Letter {
        data: envelope(&raw.data),
        attributes: attributes.clone(),
    };
    if enveloped.fits() {
        return enveloped;
    }
    // Last resort: keep as much of the data as fits. Base64 takes 4 bytes
    // for 3; the attributes of the original stay in the envelope.
    let room = (limits::MESSAGE_BYTES - limits::FRAMING_BYTES)
        .saturating_sub(enveloped.size() - enveloped.data.len() + 256)
        .saturating_sub(envelope(&[]).len());
    let kept = (room / 4 * 3).min(raw.data.len());
    attributes.insert(
        TRUNCATED.to_owned(),
        format!("data: first {kept} of {} bytes kept", raw.data.len()),
    );
    Letter {
        data: envelope(&raw.data[..kept]),
        attributes,
    }
}

/// The attributes of a dead-letter message: the original ones plus ours (the
/// attributes of [`letter`]).
pub fn attributes(
    raw: &RawMessage,
    dl: &DeadLetter,
    origin: &Origin,
    failed_at: SystemTime,
) -> BTreeMap<String, String> {
    letter(raw, dl, origin, failed_at).attributes
}

/// Cuts `v` to the attribute limit on a character boundary, marking the cut.
pub(crate) fn truncate(v: String) -> String {
    cut(v, MAX_ATTRIBUTE_BYTES)
}

/// Cuts `v` to `max` bytes (at least 3) on a character boundary, ending in `...`.
fn cut(mut v: String, max: usize) -> String {
    if v.len() <= max {
        return v;
    }
    let mut end = max.max(3) - 3;
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
        let letter = letter(raw, dl, origin, SystemTime::now());
        if letter.attributes.contains_key(TRUNCATED) {
            tracing::warn!(message_id = %raw.message_id, size = raw.data.len(), "The message is too large to dead-letter whole; its data is cut.");
        }
        match self {
            DeadLetterSink::Pubsub(p) => {
                let msg = google_cloud_pubsub::model::Message::new()
                    .set_data(letter.data)
                    .set_attributes(letter.attributes);
                p.publish(msg)
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("publishing to the dead-letter topic: {e}"))
            }
            DeadLetterSink::File(f) => {
                let line = rest_json(&raw.message_id, &letter.data, &letter.attributes);
                let mut f = f.lock().unwrap_or_else(|p| p.into_inner());
                writeln!(f, "{line}").map_err(|e| format!("writing the dead-letter file: {e}"))
            }
            DeadLetterSink::Stderr => {
                let line = rest_json(&raw.message_id, &letter.data, &letter.attributes);
                writeln!(std::io::stderr(), "{line}")
                    .map_err(|e| format!("writing dead letters to stderr: {e}"))
            }
        }
    }
}

/// Pub/Sub's REST shape, so that a local dead letter (or an enveloped
/// original) can be replayed with `--source file:` as it is.
pub(crate) fn rest_json(
    message_id: &str,
    data: &[u8],
    attributes: &BTreeMap<String, String>,
) -> String {
    use base64::Engine as _;
    serde_json::json!({
        "messageId": message_id,
        "data": base64::engine::general_purpose::STANDARD.encode(data),
        "attributes": attributes,
    })
    .to_string()
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

    fn dead(error: &str) -> DeadLetter {
        DeadLetter {
            class: "permanent".into(),
            error: error.into(),
            http_status: Some(400),
            route: "order.*".into(),
            attempts: 1,
        }
    }

    fn origin() -> Origin {
        Origin {
            connector: "legacy-rest".into(),
            subscription: "projects/p/subscriptions/s".into(),
        }
    }

    /// A message with `n` attributes of `value_len` bytes each.
    fn with_attributes(n: usize, value_len: usize, data: Vec<u8>) -> RawMessage {
        RawMessage {
            data,
            attributes: (0..n)
                .map(|i| (format!("attr-{i:03}"), "v".repeat(value_len)))
                .collect(),
            message_id: "42".into(),
            delivery_attempt: Some(10),
            ..RawMessage::default()
        }
    }

    fn letter_for(raw: &RawMessage) -> Letter {
        letter(
            raw,
            &dead(&"e".repeat(2000)),
            &origin(),
            SystemTime::UNIX_EPOCH,
        )
    }

    fn unwrap_envelope(l: &Letter) -> serde_json::Value {
        serde_json::from_slice(&l.data).expect("the envelope is JSON")
    }

    #[test]
    fn ninety_original_attributes_keep_one_attribute_per_reason() {
        let raw = with_attributes(90, 1024, b"{}".to_vec());
        let l = letter_for(&raw);
        assert!(l.fits());
        assert_eq!(l.attributes.len(), limits::ATTRIBUTES, "90 + 10 of ours");
        assert_eq!(l.data, raw.data);
        assert!(l.attributes.contains_key("gluefleet-error-class"));
        assert!(!l.attributes.contains_key(FOLDED));
    }

    #[test]
    fn more_than_ninety_fold_every_reason_into_one_attribute() {
        for n in [91, 99] {
            let raw = with_attributes(n, 1024, b"{}".to_vec());
            let l = letter_for(&raw);
            assert!(l.fits(), "{n}: {} attributes", l.attributes.len());
            assert_eq!(l.attributes.len(), n + 1);
            assert_eq!(l.data, raw.data, "the data byte for byte");
            for (k, v) in &raw.attributes {
                assert_eq!(l.attributes.get(k), Some(v), "{k} kept");
            }
            let folded = l.attributes.get(FOLDED).expect("folded reasons");
            assert!(folded.len() <= limits::VALUE_BYTES, "{}", folded.len());
            let reasons: serde_json::Value = serde_json::from_str(folded).expect("JSON");
            assert_eq!(reasons["error-class"], "permanent");
            assert_eq!(reasons["http-status"], "400");
            assert_eq!(reasons["delivery-attempt"], "10");
            assert_eq!(reasons["original-message-id"], "42");
            assert_eq!(reasons["failed-at"], "1970-01-01T00:00:00.000Z");
            let error = reasons["error"].as_str().unwrap_or_default();
            assert!(
                error.starts_with("eee") && error.ends_with("..."),
                "{error}"
            );
        }
    }

    #[test]
    fn a_hundred_original_attributes_travel_in_an_envelope() {
        let data = vec![0_u8, 159, 146, 150];
        let raw = with_attributes(100, 1024, data.clone());
        let l = letter_for(&raw);
        assert!(
            l.fits(),
            "{} attributes, {} bytes",
            l.attributes.len(),
            l.size()
        );
        assert_eq!(
            l.attributes.get(ENVELOPE).map(String::as_str),
            Some("pubsub-json")
        );
        assert!(l.attributes.contains_key("gluefleet-error-class"));
        assert!(l.attributes.keys().all(|k| k.starts_with("gluefleet-")));
        // Unwrapped, it is the original as a `--source file:` line reads it.
        let line = unwrap_envelope(&l);
        let replayed = crate::source::parse_jsonl(&line.to_string());
        let replayed = replayed.first().expect("a source line");
        assert_eq!(replayed.data, data);
        assert_eq!(replayed.attributes, raw.attributes);
        assert_eq!(replayed.message_id, "42");
    }

    #[test]
    fn attributes_over_the_key_or_value_limits_travel_in_an_envelope() {
        for (k, v) in [
            ("k".repeat(257), "v".to_owned()),
            ("k".into(), "v".repeat(1025)),
        ] {
            let mut raw = with_attributes(3, 10, b"{}".to_vec());
            raw.attributes.insert(k.clone(), v.clone());
            let l = letter_for(&raw);
            assert!(l.fits());
            assert!(l.attributes.contains_key(ENVELOPE));
            assert_eq!(unwrap_envelope(&l)["attributes"][&k], v.as_str());
        }
    }

    #[test]
    fn data_at_the_size_limit_is_cut_and_marked_never_refused() {
        let budget = limits::MESSAGE_BYTES - limits::FRAMING_BYTES;
        // Just fits with every reason.
        let plain = with_attributes(2, 10, Vec::new());
        let reasons_bytes = letter_for(&plain).size();
        let raw = with_attributes(2, 10, vec![b'x'; budget - reasons_bytes]);
        let l = letter_for(&raw);
        assert!(l.fits() && l.size() == budget && l.data == raw.data);
        assert!(!l.attributes.contains_key(FOLDED));
        // The largest message Pub/Sub takes: no room for any reason.
        let raw = with_attributes(2, 10, vec![b'x'; limits::MESSAGE_BYTES - 40]);
        let l = letter_for(&raw);
        assert!(l.fits(), "{} bytes", l.size());
        let mark = l.attributes.get(TRUNCATED).expect("marked");
        assert!(
            mark.ends_with(&format!("of {} bytes kept", raw.data.len())),
            "{mark}"
        );
        let line = unwrap_envelope(&l);
        assert_eq!(line["attributes"]["attr-000"], "v".repeat(10));
        assert!(line["data"].as_str().is_some_and(|d| d.len() > 9_000_000));
    }

    #[test]
    fn a_replayed_dead_letter_gets_only_this_dead_letters_reasons() {
        let mut raw = with_attributes(1, 10, b"{}".to_vec());
        raw.attributes
            .insert("gluefleet-http-status".into(), "503".into());
        let mut dl = dead("no route");
        dl.http_status = None;
        let l = letter(&raw, &dl, &origin(), SystemTime::UNIX_EPOCH);
        assert!(!l.attributes.contains_key("gluefleet-http-status"));
        assert!(l.attributes.contains_key("attr-000"));
    }
}
