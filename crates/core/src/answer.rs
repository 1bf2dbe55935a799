//! What a target answered: the facts a result event carries on.
//!
//! A connector records, during [`Connector::call`](crate::Connector::call),
//! what the target said that someone downstream needs: the record id it
//! created, the key, the document path, the HTTP status and `Location`. The
//! pipeline keeps it with the idempotency key once the effect is done, so
//! that a redelivery (after a result publish that failed) can publish the
//! same result again without calling the target a second time.
//!
//! An answer is small by construction: a few named values, each text cut at
//! [`MAX_VALUE_BYTES`], so keeping one beside every done key stays cheap.

use serde_json::{Map, Value};
use std::sync::Mutex;

/// The longest text value recorded; longer ones are cut (and marked with
/// `...`). Record ids, keys and URLs fit many times over.
pub const MAX_VALUE_BYTES: usize = 2048;

/// The most values one answer holds; later ones are ignored.
pub const MAX_VALUES: usize = 16;

/// Filled in by the connector while its call runs; read by the pipeline once
/// the call succeeded. A failed attempt's answer is thrown away.
#[derive(Debug, Default)]
pub struct Answer {
    values: Mutex<Map<String, Value>>,
}

impl Answer {
    /// An empty answer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `name = value` (the last write of a name wins). Text longer
    /// than [`MAX_VALUE_BYTES`] is cut at a character boundary; past
    /// [`MAX_VALUES`] names, new ones are ignored.
    pub fn record(&self, name: &str, value: impl Into<Value>) {
        let value = match value.into() {
            Value::String(s) => Value::String(cut(s)),
            other => other,
        };
        let mut values = self.values.lock().unwrap_or_else(|p| p.into_inner());
        if values.len() < MAX_VALUES || values.contains_key(name) {
            values.insert(name.to_owned(), value);
        }
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.values
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    /// What was recorded, taken out.
    pub fn take(&self) -> Map<String, Value> {
        std::mem::take(&mut *self.values.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

fn cut(mut s: String) -> String {
    if s.len() <= MAX_VALUE_BYTES {
        return s;
    }
    let mut end = MAX_VALUE_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.push_str("...");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_kept_small_and_few() {
        let a = Answer::new();
        a.record("id", "001xx");
        a.record("long", "é".repeat(MAX_VALUE_BYTES));
        for i in 0..2 * MAX_VALUES {
            a.record(&format!("n{i}"), i);
        }
        a.record("id", "002xx");
        let got = a.take();
        assert_eq!(got.len(), MAX_VALUES);
        assert_eq!(
            got["id"], "002xx",
            "a known name is overwritten even when full"
        );
        let long = got["long"].as_str().expect("text");
        assert!(
            long.len() <= MAX_VALUE_BYTES + 3 && long.ends_with("..."),
            "{}",
            long.len()
        );
        assert!(a.is_empty(), "take empties it");
    }
}
