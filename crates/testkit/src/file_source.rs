//! The files of a worker's `--source file:` mode: events in, dead letters
//! out. Each line is one message in Pub/Sub's REST shape
//! (`{"messageId", "data" (base64), "attributes"}`), so attributes
//! (CloudEvents binary mode) and message ids survive the trip, as they do
//! through Pub/Sub.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;

use crate::TestkitError;
use crate::pubsub::OutgoingMessage;

/// A message read back from a dead-letter file: the original body, its
/// attributes plus the worker's `gluefleet-*` ones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileMessage {
    /// The `messageId` of the line, if it had one.
    pub message_id: Option<String>,
    /// The payload bytes.
    pub data: Vec<u8>,
    /// Message attributes.
    pub attributes: BTreeMap<String, String>,
}

/// `messages` as the lines of a file source, message ids `local-1`,
/// `local-2`, …: the text and the ids, in order.
pub fn events_jsonl(messages: &[OutgoingMessage]) -> (String, Vec<String>) {
    let ids: Vec<String> = (1..=messages.len()).map(|n| format!("local-{n}")).collect();
    let mut jsonl = String::new();
    for (message, id) in messages.iter().zip(&ids) {
        let line = serde_json::json!({
            "messageId": id,
            "data": B64.encode(&message.data),
            "attributes": message.attributes,
        });
        jsonl.push_str(&line.to_string());
        jsonl.push('\n');
    }
    (jsonl, ids)
}

/// The dead letters a worker wrote to `path` (`--dead-letters`); none when
/// it wrote no file.
pub fn read_dead_letters(path: &Path) -> Result<Vec<FileMessage>, TestkitError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(TestkitError::Io {
                what: format!("reading {}", path.display()),
                source,
            });
        }
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(parse_line)
        .collect()
}

/// One line: `{"messageId","data"(base64),"attributes"}`.
fn parse_line(line: &str) -> Result<FileMessage, TestkitError> {
    let bad = |why: &str| TestkitError::Decode {
        what: format!("dead-letter line {line:?}"),
        detail: why.to_owned(),
    };
    let v: Value = serde_json::from_str(line).map_err(|e| bad(&e.to_string()))?;
    let data = v
        .get("data")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("no data string"))?;
    let data = B64.decode(data).map_err(|e| bad(&e.to_string()))?;
    let attributes = v
        .get("attributes")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("no attributes object"))?
        .iter()
        .map(|(k, v)| {
            let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            (k.clone(), v)
        })
        .collect();
    Ok(FileMessage {
        message_id: v
            .get("messageId")
            .and_then(Value::as_str)
            .map(str::to_owned),
        data,
        attributes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_letter_line_keeps_body_attributes_and_id() {
        let message = OutgoingMessage::json(&serde_json::json!({"a": 1})).with_attr("ce-id", "e1");
        let (jsonl, ids) = events_jsonl(std::slice::from_ref(&message));
        assert_eq!(ids, ["local-1"]);
        let read = parse_line(jsonl.trim_end()).expect("parses");
        assert_eq!(read.message_id.as_deref(), Some("local-1"));
        assert_eq!(read.data, message.data);
        assert_eq!(read.attributes, message.attributes);
    }

    #[test]
    fn a_line_without_data_is_refused_by_name() {
        let err = parse_line(r#"{"attributes":{}}"#).expect_err("no data");
        assert!(err.to_string().contains("no data string"), "{err}");
    }
}
