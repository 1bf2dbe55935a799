//! Records from a file or stdin: a JSON array of records, one JSON value,
//! or JSON Lines (one value per line, blank lines skipped). Everything is
//! read and checked before anything is published, so bad input publishes
//! nothing and a corrected re-run does not double the good part.

use serde_json::Value;

/// At most this many bad lines are named in one error; the rest are counted.
const NAMED: usize = 10;

/// Why the input was refused.
#[derive(Debug, PartialEq, Eq)]
pub struct InputError(pub String);

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One record and where it came from, for error messages.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// 1-based: the line for JSON Lines, the element for an array.
    pub position: usize,
    /// The record.
    pub value: Value,
}

/// How records are counted in messages: lines or array elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// One JSON value per line.
    Lines,
    /// Elements of one JSON array.
    Array,
    /// A single JSON value.
    Single,
}

impl Layout {
    /// "line 3", "element 3", "the record".
    pub fn name(self, position: usize) -> String {
        match self {
            Layout::Lines => format!("line {position}"),
            Layout::Array => format!("element {position}"),
            Layout::Single => "the record".to_owned(),
        }
    }
}

/// The records of `text`, or every bad line (the first [`NAMED`] by number).
pub fn records(text: &str) -> Result<(Layout, Vec<Record>), InputError> {
    if text.trim().is_empty() {
        return Err(InputError("the input holds no records".to_owned()));
    }
    // A whole array or one (possibly pretty-printed) value first.
    if let Ok(whole) = serde_json::from_str::<Value>(text) {
        return Ok(match whole {
            Value::Array(items) => (
                Layout::Array,
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, value)| Record {
                        position: i + 1,
                        value,
                    })
                    .collect(),
            ),
            value => (Layout::Single, vec![Record { position: 1, value }]),
        });
    }
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(value) => out.push(Record {
                position: i + 1,
                value,
            }),
            Err(e) => bad.push(format!("line {}: {e}", i + 1)),
        }
    }
    if bad.is_empty() {
        return Ok((Layout::Lines, out));
    }
    let more = bad.len().saturating_sub(NAMED);
    let mut message = format!(
        "{} of {} lines are not JSON, so nothing was published:\n  {}",
        bad.len(),
        bad.len() + out.len(),
        bad[..bad.len().min(NAMED)].join("\n  ")
    );
    if more > 0 {
        message.push_str(&format!("\n  … and {more} more"));
    }
    Err(InputError(message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arrays_single_values_and_lines_are_read() {
        let (layout, r) = records("[{\"a\":1},{\"a\":2}]").expect("array");
        assert_eq!(layout, Layout::Array);
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].value, json!({"a": 2}));
        let (layout, r) = records("{\n  \"a\": 1\n}\n").expect("one pretty value");
        assert_eq!((layout, r.len()), (Layout::Single, 1));
        let (layout, r) = records("{\"a\":1}\n\n{\"a\":2}\n{\"a\":3}\n").expect("lines");
        assert_eq!(layout, Layout::Lines);
        assert_eq!(
            r.iter().map(|r| r.position).collect::<Vec<_>>(),
            [1, 3, 4],
            "positions are the file's line numbers"
        );
    }

    #[test]
    fn bad_lines_are_named_and_nothing_is_returned() {
        let err = records("{\"a\":1}\nnot json\n{\"a\":2}\n{\"a\":\n").expect_err("refused");
        assert!(
            err.0
                .starts_with("2 of 4 lines are not JSON, so nothing was published:"),
            "{err}"
        );
        assert!(err.0.contains("\n  line 2: "), "{err}");
        assert!(err.0.contains("\n  line 4: "), "{err}");
        let many: String = (0..15).map(|_| "x\n").collect();
        let err = records(&many).expect_err("refused");
        assert!(err.0.ends_with("… and 5 more"), "{err}");
        assert_eq!(
            records(" \n").expect_err("empty").0,
            "the input holds no records"
        );
    }
}
