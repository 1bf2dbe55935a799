//! Calendar `events.insert`, `get`, `patch`, `delete` and
//! `calendarList.list`.
//!
//! `calendarId` `primary` is the subject's calendar, which has the
//! subject's address as its id. A client-chosen event `id` must be
//! base32hex (`[a-v0-9]`) of 5 to 1024 characters, else `400 invalid`
//! "Invalid resource id value."; an id the calendar already has, including a
//! deleted event's (it stays, `cancelled`), answers `409 duplicate` "The
//! requested identifier already exists.". `delete` answers `204`; on a
//! cancelled event `410 deleted` "Resource has been deleted"; on an unknown
//! id `404 notFound` "Not Found".
//!
//! Where Google's contract is silent the double decides:
//!
//! * any `calendarId` names a calendar the subject may write (no ACLs);
//! * `patch` merges objects recursively, replaces arrays, and clears a
//!   field sent as `null`; on a cancelled event it answers `410 deleted`
//!   like `delete`;
//! * `get` returns cancelled events too, with `status: cancelled`, as
//!   Google does for deleted events it still knows;
//! * the `409` reason `duplicate` (the contract marks it unverified).

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::errors::{both, json_reply};
use super::{Call, State, rfc3339_now};
use crate::http_target::Reply;

/// Every calendar's events.
#[derive(Debug, Default)]
pub(crate) struct Calendars {
    /// Calendar id → event id → (creation sequence, event).
    by_calendar: HashMap<String, HashMap<String, (u64, Value)>>,
}

impl Calendars {
    pub(crate) fn events(&self, calendar: &str) -> Vec<Value> {
        let mut events: Vec<&(u64, Value)> = self
            .by_calendar
            .get(&calendar.to_ascii_lowercase())
            .into_iter()
            .flat_map(HashMap::values)
            .filter(|(_, e)| !cancelled(e))
            .collect();
        events.sort_by_key(|(seq, _)| *seq);
        events.into_iter().map(|(_, e)| e.clone()).collect()
    }

    pub(crate) fn event(&self, calendar: &str, id: &str) -> Option<Value> {
        self.by_calendar
            .get(&calendar.to_ascii_lowercase())?
            .get(id)
            .map(|(_, e)| e.clone())
    }
}

fn cancelled(event: &Value) -> bool {
    event.get("status").and_then(Value::as_str) == Some("cancelled")
}

/// Whether `id` is a valid client-chosen event id.
pub fn valid_event_id(id: &str) -> bool {
    (5..=1024).contains(&id.len()) && id.bytes().all(|b| matches!(b, b'a'..=b'v' | b'0'..=b'9'))
}

/// Merges `patch` into `target`: objects recursively, `null` removes.
pub(crate) fn merge(target: &mut Map<String, Value>, patch: Map<String, Value>) {
    for (key, value) in patch {
        match value {
            Value::Null => {
                target.remove(&key);
            }
            Value::Object(inner) => match target.get_mut(&key) {
                Some(Value::Object(existing)) => merge(existing, inner),
                _ => {
                    let mut fresh = Map::new();
                    merge(&mut fresh, inner);
                    target.insert(key, Value::Object(fresh));
                }
            },
            other => {
                target.insert(key, other);
            }
        }
    }
}

fn not_found() -> Reply {
    both(404, "notFound", "Not Found")
}

fn gone() -> Reply {
    both(410, "deleted", "Resource has been deleted")
}

pub(crate) fn handle(state: &mut State, call: &Call<'_>) -> Reply {
    if call.method_id == "calendar.calendarList.list" {
        return json_reply(
            200,
            &json!({
                "kind": "calendar#calendarList",
                "items": [{
                    "kind": "calendar#calendarListEntry",
                    "id": call.subject,
                    "summary": call.subject,
                    "timeZone": "UTC",
                    "accessRole": "owner",
                    "primary": true,
                }],
            }),
        );
    }
    let calendar = match call.param("calendarId") {
        "primary" => call.subject.to_owned(),
        other => other.to_ascii_lowercase(),
    };
    let seq = state.next();
    let events = state
        .calendar
        .by_calendar
        .entry(calendar.clone())
        .or_default();
    let event_id = call.param("eventId");
    match call.method_id {
        "calendar.events.insert" => {
            let mut body = call.body();
            let id = match body.get("id").and_then(Value::as_str) {
                Some(id) => {
                    if !valid_event_id(id) {
                        return both(400, "invalid", "Invalid resource id value.");
                    }
                    id.to_owned()
                }
                None => format!("{seq:026x}"),
            };
            if events.contains_key(&id) {
                return both(409, "duplicate", "The requested identifier already exists.");
            }
            let now = rfc3339_now();
            let mut event = Map::new();
            event.insert("kind".into(), json!("calendar#event"));
            event.insert("etag".into(), json!(format!("\"{seq}\"")));
            event.insert("status".into(), json!("confirmed"));
            event.insert(
                "htmlLink".into(),
                json!(format!("https://www.google.com/calendar/event?eid={id}")),
            );
            event.insert("created".into(), json!(now));
            event.insert("updated".into(), json!(now));
            event.insert("creator".into(), json!({"email": call.subject}));
            event.insert("organizer".into(), json!({"email": calendar, "self": true}));
            event.insert("iCalUID".into(), json!(format!("{id}@google.com")));
            event.insert("sequence".into(), json!(0));
            body.insert("id".into(), json!(id));
            merge(&mut event, body);
            let event = Value::Object(event);
            events.insert(id, (seq, event.clone()));
            json_reply(200, &event)
        }
        "calendar.events.get" => match events.get(event_id) {
            Some((_, event)) => json_reply(200, event),
            None => not_found(),
        },
        "calendar.events.patch" => match events.get_mut(event_id) {
            None => not_found(),
            Some((_, event)) if cancelled(event) => gone(),
            Some((_, event)) => {
                let mut patch = call.body();
                patch.remove("id");
                if let Some(object) = event.as_object_mut() {
                    merge(object, patch);
                    object.insert("updated".into(), json!(rfc3339_now()));
                    let sequence = object.get("sequence").and_then(Value::as_u64).unwrap_or(0);
                    object.insert("sequence".into(), json!(sequence + 1));
                    object.insert("etag".into(), json!(format!("\"{seq}\"")));
                }
                json_reply(200, event)
            }
        },
        "calendar.events.delete" => match events.get_mut(event_id) {
            None => not_found(),
            Some((_, event)) if cancelled(event) => gone(),
            Some((_, event)) => {
                event["status"] = json!("cancelled");
                event["updated"] = json!(rfc3339_now());
                Reply::status(204)
            }
        },
        other => both(
            501,
            "notImplemented",
            &format!("{other} is not served by the Workspace double."),
        ),
    }
}
