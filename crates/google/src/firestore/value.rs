//! JSON → Firestore values, and field paths.
//!
//! | JSON                          | Firestore                                   |
//! |-------------------------------|---------------------------------------------|
//! | `null`                        | `nullValue`                                 |
//! | `true` / `false`              | `booleanValue`                              |
//! | a number without fraction that fits i64 | `integerValue`                    |
//! | any other number              | `doubleValue`                               |
//! | a string                      | `stringValue`, or `timestampValue` for a field the route lists under `timestamps` (RFC 3339, checked) |
//! | an array                      | `arrayValue` (an array directly inside an array is refused: Firestore has none) |
//! | an object                     | `mapValue`                                  |

use serde_json::{Map, Value, json};

/// Converts an object into a Firestore `fields` map. `timestamps` lists the
/// dotted paths (from the object's root) whose strings are timestamps.
pub fn fields(
    object: &Map<String, Value>,
    timestamps: &[String],
) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    for (k, v) in object {
        out.insert(k.clone(), value(v, k, timestamps, false)?);
    }
    Ok(out)
}

fn value(v: &Value, path: &str, timestamps: &[String], in_array: bool) -> Result<Value, String> {
    Ok(match v {
        Value::Null => json!({ "nullValue": null }),
        Value::Bool(b) => json!({ "booleanValue": b }),
        Value::Number(n) => match n.as_i64() {
            Some(i) => json!({ "integerValue": i.to_string() }),
            None => match n.as_f64() {
                Some(f) if n.is_f64() => json!({ "doubleValue": f }),
                _ => {
                    return Err(format!(
                        "field {path}: integer {n} does not fit Firestore's 64-bit integers"
                    ));
                }
            },
        },
        Value::String(s) if timestamps.iter().any(|t| t == path) => {
            if !is_rfc3339(s) {
                return Err(format!("field {path}: {s:?} is not an RFC 3339 timestamp"));
            }
            json!({ "timestampValue": s })
        }
        Value::String(s) => json!({ "stringValue": s }),
        Value::Array(items) => {
            if in_array {
                return Err(format!(
                    "field {path}: Firestore has no arrays directly inside arrays"
                ));
            }
            let values = items
                .iter()
                .map(|i| value(i, path, timestamps, true))
                .collect::<Result<Vec<_>, _>>()?;
            json!({ "arrayValue": { "values": values } })
        }
        Value::Object(m) => {
            let mut f = Map::new();
            for (k, v) in m {
                f.insert(
                    k.clone(),
                    value(v, &format!("{path}.{k}"), timestamps, false)?,
                );
            }
            json!({ "mapValue": { "fields": f } })
        }
    })
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`.
fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    if b.len() < 20
        || !digits(0..4)
        || b[4] != b'-'
        || !digits(5..7)
        || b[7] != b'-'
        || !digits(8..10)
        || !matches!(b[10], b'T' | b't')
        || !digits(11..13)
        || b[13] != b':'
        || !digits(14..16)
        || b[16] != b':'
        || !digits(17..19)
    {
        return false;
    }
    let mut i = 19;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    match &b[i..] {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => [h1, h2, m1, m2].iter().all(|d| d.is_ascii_digit()),
        _ => false,
    }
}

/// A field path for `updateMask` and transforms: simple names as they are,
/// others in backticks with `` ` `` and `\` escaped.
pub fn field_path(dotted: &str) -> String {
    dotted.split('.').map(segment).collect::<Vec<_>>().join(".")
}

fn segment(s: &str) -> String {
    let simple = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if simple {
        s.to_owned()
    } else {
        format!("`{}`", s.replace('\\', "\\\\").replace('`', "\\`"))
    }
}

/// The dotted paths of an object's leaves, for a merge's `updateMask`:
/// nested objects are walked, so a merge touches only the fields sent.
pub fn leaf_paths(object: &Map<String, Value>) -> Vec<String> {
    fn walk(prefix: &str, m: &Map<String, Value>, out: &mut Vec<String>) {
        for (k, v) in m {
            let p = if prefix.is_empty() {
                segment(k)
            } else {
                format!("{prefix}.{}", segment(k))
            };
            match v {
                Value::Object(inner) if !inner.is_empty() => walk(&p, inner, out),
                _ => out.push(p),
            }
        }
    }
    let mut out = Vec::new();
    walk("", object, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_rules() -> Result<(), String> {
        let input = json!({"n": 3, "big": -9_007_199_254_740_993_i64, "f": 1.5, "whole_f": 2.0, "s": "x", "t": "2026-11-28T10:00:00.5+01:00",
                           "nil": null, "ok": true, "list": [1, "a"], "map": {"inner": {"deep": 1}}});
        let obj = input.as_object().ok_or("object")?;
        let f = fields(obj, &["t".to_owned()])?;
        assert_eq!(f["n"], json!({"integerValue": "3"}));
        assert_eq!(f["big"], json!({"integerValue": "-9007199254740993"}));
        assert_eq!(f["f"], json!({"doubleValue": 1.5}));
        assert_eq!(
            f["whole_f"],
            json!({"doubleValue": 2.0}),
            "2.0 stays a double"
        );
        assert_eq!(f["s"], json!({"stringValue": "x"}));
        assert_eq!(
            f["t"],
            json!({"timestampValue": "2026-11-28T10:00:00.5+01:00"})
        );
        assert_eq!(f["nil"], json!({"nullValue": null}));
        assert_eq!(
            f["list"],
            json!({"arrayValue": {"values": [{"integerValue": "1"}, {"stringValue": "a"}]}})
        );
        assert_eq!(
            f["map"]["mapValue"]["fields"]["inner"]["mapValue"]["fields"]["deep"],
            json!({"integerValue": "1"})
        );
        Ok(())
    }

    #[test]
    fn refusals_name_the_field() {
        let bad_ts = json!({"at": "yesterday"});
        let err = fields(bad_ts.as_object().expect("object"), &["at".into()])
            .expect_err("not a timestamp");
        assert!(err.contains("field at"), "{err}");
        let nested = json!({"m": [[1]]});
        assert!(
            fields(nested.as_object().expect("object"), &[])
                .expect_err("nested")
                .contains("field m")
        );
        let huge = json!({"u": u64::MAX});
        assert!(fields(huge.as_object().expect("object"), &[]).is_err());
    }

    #[test]
    fn paths_quote_what_is_not_simple() {
        assert_eq!(field_path("a.b_1"), "a.b_1");
        assert_eq!(field_path("a.1x.we`ird"), "a.`1x`.`we\\`ird`");
        let obj = json!({"name": "x", "addr": {"city": "y", "zip code": "z"}, "empty": {}});
        let mut paths = leaf_paths(obj.as_object().expect("object"));
        paths.sort();
        assert_eq!(paths, ["addr.`zip code`", "addr.city", "empty", "name"]);
        assert!(
            is_rfc3339("2026-01-02T03:04:05Z")
                && !is_rfc3339("2026-01-02 03:04:05Z")
                && !is_rfc3339("2026-01-02T03:04:05")
        );
    }
}
