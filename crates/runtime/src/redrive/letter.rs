//! Reading a dead letter back: the original message and why it failed, from
//! any of the shapes [`crate::dead_letter::letter`] writes, or from a message
//! Pub/Sub's dead-letter policy forwarded itself. The inverse of that module,
//! kept apart from the loop that moves messages so it can be tested alone.

use crate::dead_letter::{ENVELOPE, FOLDED, TRUNCATED};
use base64::Engine as _;
use std::collections::BTreeMap;
use std::time::SystemTime;

/// The class given to messages Pub/Sub's dead-letter policy forwarded
/// itself: they carry no gluefleet reason (docs/DEAD-LETTERS.md).
pub const FORWARDED: &str = "forwarded-by-pubsub";

/// Attributes Pub/Sub adds to a message its policy forwards.
const PUBSUB_PREFIX: &str = "CloudPubSubDeadLetter";

/// A dead letter, read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Letter {
    /// The original data, byte for byte.
    pub data: Vec<u8>,
    /// The original attributes, without any `gluefleet-*` or
    /// `CloudPubSubDeadLetter*` one.
    pub attributes: BTreeMap<String, String>,
    /// Why it failed.
    pub reasons: Reasons,
}

/// What the dead letter says about its failure.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reasons {
    /// `permanent`, `bad-message`, ... or [`FORWARDED`].
    pub class: String,
    /// The route's name, when one matched.
    pub route: Option<String>,
    /// The error, as dead-lettered.
    pub error: String,
    /// When it was dead-lettered.
    pub failed_at: Option<SystemTime>,
    /// The subscription it was pulled from (`projects/P/subscriptions/S`,
    /// a short name, or `file:PATH`).
    pub subscription: Option<String>,
}

impl Letter {
    /// The event id the original carries (`ce-id`, or `id` of a
    /// structured CloudEvent), for the table.
    pub fn event_id(&self) -> Option<String> {
        if let Some(id) = self.attributes.get("ce-id") {
            return Some(id.clone());
        }
        serde_json::from_slice::<serde_json::Value>(&self.data)
            .ok()
            .and_then(|v| v.get("id").and_then(|id| id.as_str().map(str::to_owned)))
    }
}

/// Reads one dead-letter message. An error says why it cannot be redriven
/// as it is: its data was cut to fit, or its envelope is broken.
pub fn read(data: &[u8], attributes: &BTreeMap<String, String>) -> Result<Letter, String> {
    if let Some(cut) = attributes.get(TRUNCATED) {
        return Err(format!(
            "its data was cut when it was dead-lettered ({cut}): the original is not whole, so it is left for you to restore"
        ));
    }
    let reasons = reasons(attributes);
    let (data, original) = if attributes.get(ENVELOPE).map(String::as_str) == Some("pubsub-json") {
        unwrap_envelope(data)?
    } else {
        (data.to_vec(), attributes.clone())
    };
    Ok(Letter {
        data,
        attributes: original
            .into_iter()
            .filter(|(k, _)| !k.starts_with("gluefleet-") && !k.starts_with(PUBSUB_PREFIX))
            .collect(),
        reasons,
    })
}

/// The original of an enveloped dead letter: data and attributes from the
/// Pub/Sub REST JSON line the data holds.
fn unwrap_envelope(data: &[u8]) -> Result<(Vec<u8>, BTreeMap<String, String>), String> {
    #[derive(serde::Deserialize)]
    struct Rest {
        #[serde(default)]
        data: String,
        #[serde(default)]
        attributes: BTreeMap<String, String>,
    }
    let rest: Rest = serde_json::from_slice(data).map_err(|e| {
        format!(
            "its envelope (gluefleet-envelope: pubsub-json) is not the REST JSON of a message: {e}"
        )
    })?;
    let data = base64::engine::general_purpose::STANDARD
        .decode(rest.data.as_bytes())
        .map_err(|e| format!("its envelope's data is not base64: {e}"))?;
    Ok((data, rest.attributes))
}

/// gluefleet's reasons from one attribute each, or from the folded one, or
/// Pub/Sub's own when it forwarded the message.
fn reasons(attributes: &BTreeMap<String, String>) -> Reasons {
    let folded: BTreeMap<String, String> = attributes
        .get(FOLDED)
        .and_then(|f| serde_json::from_str::<BTreeMap<String, serde_json::Value>>(f).ok())
        .map(|m| {
            m.into_iter()
                .map(|(k, v)| {
                    let s = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                    (k, s)
                })
                .collect()
        })
        .unwrap_or_default();
    let get = |name: &str| {
        attributes
            .get(&format!("gluefleet-{name}"))
            .or_else(|| folded.get(name))
            .cloned()
    };
    if let Some(class) = get("error-class") {
        return Reasons {
            class,
            route: get("route"),
            error: get("error").unwrap_or_default(),
            failed_at: get("failed-at").and_then(|t| humantime::parse_rfc3339(&t).ok()),
            subscription: get("original-subscription"),
        };
    }
    let pubsub = |name: &str| attributes.get(&format!("{PUBSUB_PREFIX}{name}"));
    let subscription =
        pubsub("SourceSubscription").map(|s| match pubsub("SourceSubscriptionProject") {
            Some(p) if !s.starts_with("projects/") => format!("projects/{p}/subscriptions/{s}"),
            _ => s.clone(),
        });
    Reasons {
        class: FORWARDED.to_owned(),
        route: None,
        error: match pubsub("SourceDeliveryCount") {
            Some(n) => format!(
                "forwarded by the subscription's dead-letter policy after {n} delivery attempts"
            ),
            None => "no gluefleet reason: forwarded by Pub/Sub, or not a gluefleet dead letter"
                .to_owned(),
        },
        failed_at: None,
        subscription,
    }
}

/// Which dead letters to move.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Error classes; empty: any.
    pub classes: Vec<String>,
    /// Route names; empty: any.
    pub routes: Vec<String>,
    /// Only those dead-lettered at or after this time.
    pub since: Option<SystemTime>,
}

impl Filter {
    /// `None` when `letter` is selected, or why it is not.
    pub fn rejects(&self, letter: &Reasons) -> Option<String> {
        if !self.classes.is_empty() && !self.classes.contains(&letter.class) {
            return Some(format!("class {} not selected", letter.class));
        }
        if !self.routes.is_empty()
            && !letter
                .route
                .as_ref()
                .is_some_and(|r| self.routes.contains(r))
        {
            return Some(format!(
                "route {} not selected",
                letter.route.as_deref().unwrap_or("(none)")
            ));
        }
        if let Some(since) = self.since {
            match letter.failed_at {
                Some(t) if t >= since => {}
                Some(_) => return Some("dead-lettered before --since".to_owned()),
                None => return Some("no gluefleet-failed-at to compare with --since".to_owned()),
            }
        }
        None
    }
}

/// `--since`: an RFC 3339 time, or a duration meaning that long ago.
pub fn parse_since(text: &str, now: SystemTime) -> Result<SystemTime, String> {
    if let Ok(t) = humantime::parse_rfc3339_weak(text) {
        return Ok(t);
    }
    let ago = humantime::parse_duration(text).map_err(|_| {
        format!(
            "--since {text:?}: neither an RFC 3339 time (2026-12-07T09:00:00Z) nor a duration (2h)"
        )
    })?;
    now.checked_sub(ago)
        .ok_or_else(|| format!("--since {text:?}: too long ago"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dead_letter::{Origin, letter};
    use gluefleet_core::RawMessage;
    use gluefleet_core::outcome::DeadLetter;
    use std::time::Duration;

    fn raw(attributes: usize) -> RawMessage {
        let mut attrs: BTreeMap<String, String> = (0..attributes)
            .map(|i| (format!("k{i}"), format!("v{i}")))
            .collect();
        attrs.insert("ce-id".into(), "e-7".into());
        attrs.insert("gluefleet-error".into(), "an older dead letter's".into());
        RawMessage {
            data: br#"{"order":"o-7"}"#.to_vec(),
            attributes: attrs,
            message_id: "m-7".into(),
            ..RawMessage::default()
        }
    }

    fn dl(class: &str) -> DeadLetter {
        DeadLetter {
            class: class.into(),
            error: "HTTP 400: no such customer".into(),
            http_status: Some(400),
            route: "create-order".into(),
            attempts: 1,
        }
    }

    fn origin() -> Origin {
        Origin {
            connector: "legacy-rest".into(),
            subscription: "projects/p/subscriptions/orders".into(),
        }
    }

    #[test]
    fn every_shape_gives_back_the_original() -> Result<(), String> {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        // 1: one attribute per reason; 2: folded (over 90 attributes);
        // 3: enveloped (100 attributes leave no room).
        for n in [3, 95, 100] {
            let original = raw(n);
            let written = letter(&original, &dl("permanent"), &origin(), at);
            let read = read(&written.data, &written.attributes)?;
            assert_eq!(read.data, original.data, "{n} attributes: data");
            let mut want = original.attributes.clone();
            want.remove("gluefleet-error");
            assert_eq!(
                read.attributes, want,
                "{n} attributes: the original's, stripped"
            );
            assert_eq!(read.reasons.class, "permanent", "{n}");
            assert_eq!(read.reasons.route.as_deref(), Some("create-order"), "{n}");
            assert_eq!(read.reasons.failed_at, Some(at), "{n}");
            assert_eq!(
                read.reasons.subscription.as_deref(),
                Some("projects/p/subscriptions/orders"),
                "{n}"
            );
            assert_eq!(read.event_id().as_deref(), Some("e-7"));
        }
        Ok(())
    }

    #[test]
    fn a_cut_letter_is_left_and_pubsubs_own_are_read() {
        let attrs = BTreeMap::from([(
            TRUNCATED.to_owned(),
            "data: first 9 of 12 bytes kept".to_owned(),
        )]);
        let e = read(b"{}", &attrs).expect_err("cut data is not redriven");
        assert!(e.contains("cut"), "{e}");

        let attrs = BTreeMap::from([
            ("ce-id".to_owned(), "e-1".to_owned()),
            (
                "CloudPubSubDeadLetterSourceSubscription".to_owned(),
                "orders".to_owned(),
            ),
            (
                "CloudPubSubDeadLetterSourceSubscriptionProject".to_owned(),
                "p".to_owned(),
            ),
            (
                "CloudPubSubDeadLetterSourceDeliveryCount".to_owned(),
                "10".to_owned(),
            ),
        ]);
        let l = read(b"{}", &attrs).expect("a forwarded message is read");
        assert_eq!(l.reasons.class, FORWARDED);
        assert_eq!(
            l.reasons.subscription.as_deref(),
            Some("projects/p/subscriptions/orders")
        );
        assert_eq!(
            l.attributes.len(),
            1,
            "only ce-id is the original's: {:?}",
            l.attributes
        );
    }

    #[test]
    fn filters_select_by_class_route_and_time() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let reasons = Reasons {
            class: "permanent".into(),
            route: Some("create-order".into()),
            failed_at: Some(now - Duration::from_secs(600)),
            ..Reasons::default()
        };
        assert_eq!(Filter::default().rejects(&reasons), None);
        let f = Filter {
            classes: vec!["poison".into()],
            ..Filter::default()
        };
        assert!(
            f.rejects(&reasons)
                .is_some_and(|w| w.contains("class permanent"))
        );
        let f = Filter {
            routes: vec!["create-order".into()],
            since: Some(parse_since("1h", now).expect("a duration")),
            ..Filter::default()
        };
        assert_eq!(f.rejects(&reasons), None, "within the hour, on the route");
        let f = Filter {
            since: Some(parse_since("5m", now).expect("a duration")),
            ..Filter::default()
        };
        assert!(f.rejects(&reasons).is_some(), "older than five minutes");
        assert!(parse_since("yesterday", now).is_err());
        assert_eq!(
            parse_since("2027-01-15T08:00:00Z", now).ok(),
            humantime::parse_rfc3339("2027-01-15T08:00:00Z").ok()
        );
    }
}
