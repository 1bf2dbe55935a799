//! Gmail `users.messages.send`, `users.messages.list` and
//! `users.getProfile`.
//!
//! `userId` `me` is the token's subject; the subject's own address works
//! too; any other address answers `403 forbidden` "Delegation denied for
//! `<subject>`". `raw` is base64url (padded or not; anything else is the
//! Discovery checker's `400` "Invalid value for ByteString"); the RFC 5322
//! header block is parsed and kept per sender. A message without any `To`,
//! `Cc` or `Bcc` answers `400 invalidArgument` "Recipient address required".
//!
//! Where Google's contract is silent the double decides:
//!
//! * a `Message-ID` the client set is kept (the double adds
//!   `<id@mail.gmail.com>` when there is none), and `messages.list` with
//!   `q=rfc822msgid:<id>` (angle brackets optional) finds it among the
//!   user's sent messages; other `q` terms are ignored, so such a search
//!   lists every message of the user, newest first, up to `maxResults`
//!   (default 100);
//! * the answer to send is `{"id","threadId","labelIds":["SENT"]}`, a new
//!   thread per message unless the body names a `threadId`.
//!
//! `messages.list` and `getProfile` need a read scope such as
//! `gmail.readonly`: `gmail.send` does not authorize them. The media upload
//! paths (`/upload/gmail/v1/…`) are not served (`404`): send `raw` in the
//! JSON body.

use std::collections::{BTreeMap, HashMap};

use base64::Engine as _;
use serde_json::{Value, json};

use super::errors::{both, json_reply};
use super::{Call, State};
use crate::http_target::Reply;

/// A message a user sent through the double.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentMessage {
    /// Gmail's message id.
    pub id: String,
    /// Gmail's thread id.
    pub thread_id: String,
    /// The header block, by lowercase name (`to`, `subject`, `message-id`,
    /// …); folded lines unfolded, repeated headers joined with `, `.
    pub headers: BTreeMap<String, String>,
    /// The decoded `raw` message, bytes as sent.
    pub raw: Vec<u8>,
}

impl SentMessage {
    /// The `Message-ID` without angle brackets.
    pub fn message_id(&self) -> Option<&str> {
        self.headers.get("message-id").map(|m| strip_brackets(m))
    }
}

fn strip_brackets(s: &str) -> &str {
    let s = s.trim();
    s.strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .unwrap_or(s)
}

/// Every user's sent mail.
#[derive(Debug, Default)]
pub(crate) struct Mailboxes {
    by_user: HashMap<String, Vec<SentMessage>>,
}

impl Mailboxes {
    pub(crate) fn sent(&self, user: &str) -> Vec<SentMessage> {
        self.by_user
            .get(&user.to_ascii_lowercase())
            .cloned()
            .unwrap_or_default()
    }

    pub(crate) fn count(&self) -> usize {
        self.by_user.values().map(Vec::len).sum()
    }
}

/// The header block of an RFC 5322 message.
fn headers(raw: &[u8]) -> BTreeMap<String, String> {
    let text = String::from_utf8_lossy(raw);
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    let mut flush = |current: &mut Option<(String, String)>| {
        if let Some((name, value)) = current.take() {
            out.entry(name)
                .and_modify(|v| {
                    v.push_str(", ");
                    v.push_str(&value);
                })
                .or_insert(value);
        }
    };
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = current.as_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        flush(&mut current);
        if let Some((name, value)) = line.split_once(':') {
            current = Some((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    flush(&mut current);
    out
}

pub(crate) fn handle(state: &mut State, call: &Call<'_>) -> Reply {
    let user_id = call.param("userId");
    if user_id != "me" && !user_id.eq_ignore_ascii_case(call.subject) {
        return both(
            403,
            "forbidden",
            &format!("Delegation denied for {}", call.subject),
        );
    }
    match call.method_id {
        "gmail.users.messages.send" => send(state, call),
        "gmail.users.messages.list" => list(state, call),
        "gmail.users.getProfile" => {
            let total = state.gmail.by_user.get(call.subject).map_or(0, Vec::len);
            json_reply(
                200,
                &json!({
                    "emailAddress": call.subject,
                    "messagesTotal": total,
                    "threadsTotal": total,
                    "historyId": (1000 + state.next_id).to_string(),
                }),
            )
        }
        other => both(
            501,
            "notImplemented",
            &format!("{other} is not served by the Workspace double."),
        ),
    }
}

fn send(state: &mut State, call: &Call<'_>) -> Reply {
    let body = call.body();
    let Some(raw) = body.get("raw").and_then(Value::as_str) else {
        return both(
            400,
            "invalidArgument",
            "'raw' RFC822 payload message string or uploading message via /upload/* URL required",
        );
    };
    let trimmed = raw.trim_end_matches('=');
    let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(trimmed)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed));
    let Ok(bytes) = decoded else {
        return both(400, "invalidArgument", "Invalid value for ByteString");
    };
    let mut headers = headers(&bytes);
    let has_recipient = ["to", "cc", "bcc"]
        .iter()
        .any(|h| headers.get(*h).is_some_and(|v| !v.trim().is_empty()));
    if !has_recipient {
        return both(400, "invalidArgument", "Recipient address required");
    }
    let n = state.next();
    let id = format!("{:016x}", 0x18c0_0000_0000_0000_u64 + n);
    let thread_id = body
        .get("threadId")
        .and_then(Value::as_str)
        .map_or_else(|| id.clone(), str::to_owned);
    headers
        .entry("message-id".to_owned())
        .or_insert_with(|| format!("<{id}@mail.gmail.com>"));
    let message = SentMessage {
        id: id.clone(),
        thread_id: thread_id.clone(),
        headers,
        raw: bytes,
    };
    state
        .gmail
        .by_user
        .entry(call.subject.to_owned())
        .or_default()
        .push(message);
    json_reply(
        200,
        &json!({"id": id, "threadId": thread_id, "labelIds": ["SENT"]}),
    )
}

fn list(state: &State, call: &Call<'_>) -> Reply {
    let wanted: Vec<&str> = call
        .query("q")
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|t| t.strip_prefix("rfc822msgid:"))
        .map(strip_brackets)
        .collect();
    let max = call
        .query("maxResults")
        .and_then(|m| m.parse::<usize>().ok())
        .unwrap_or(100)
        .clamp(1, 500);
    let found: Vec<Value> = state
        .gmail
        .by_user
        .get(call.subject)
        .into_iter()
        .flatten()
        .rev()
        .filter(|m| {
            wanted
                .iter()
                .all(|w| m.message_id().is_some_and(|id| id == *w))
        })
        .map(|m| json!({"id": m.id, "threadId": m.thread_id}))
        .collect();
    let total = found.len();
    let page: Vec<Value> = found.into_iter().take(max).collect();
    if page.is_empty() {
        return json_reply(200, &json!({"resultSizeEstimate": 0}));
    }
    json_reply(200, &json!({"messages": page, "resultSizeEstimate": total}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_unfold_and_lowercase() {
        let raw = b"To: a@example.com\r\nSubject: Hello\r\n  there\r\nMessage-ID: <x@y>\r\n\r\nBody: not a header\r\n";
        let h = headers(raw);
        assert_eq!(h["subject"], "Hello there");
        assert_eq!(h["message-id"], "<x@y>");
        assert!(!h.contains_key("body"));
    }
}
