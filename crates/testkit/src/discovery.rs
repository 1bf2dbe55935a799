//! A JSON value checked against the schemas of Google Discovery documents.
//!
//! One walk for two users: the Workspace double checks request bodies with
//! it (`workspace::discovery`), and the fleet tests check the Cloud Run
//! manifests under `deploy/` against the Cloud Run Admin API's document. It
//! follows `$ref`, `items` and `additionalProperties`, and reports the first
//! property that is not in its schema, a JSON type that is not the schema's,
//! an enum value the schema does not list, `format: byte` text that is not
//! base64, and a property whose `annotations.required` names the method
//! being checked. What it finds is a [`Mismatch`]: each user words it its
//! own way (the double as Google's API would answer; the manifest check with
//! the schema a misspelt field is not part of).
//!
//! Some formats spell a property differently from the document (the Cloud
//! Run v1 YAML writes `valueFrom` where v2 has `valueSource`): a
//! [`Spelling`] table maps those names, per schema, so the walk checks the
//! file as written and reports paths in its own spelling.

use std::fmt;

use base64::Engine as _;
use serde_json::Value;

/// One name that a format writes differently from the Discovery document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spelling {
    /// The schema's `id`, e.g. `GoogleCloudRunV2EnvVar`.
    pub schema: &'static str,
    /// The key as the checked value writes it, e.g. `valueFrom`.
    pub written: &'static str,
    /// The document's property name, e.g. `valueSource`.
    pub property: &'static str,
}

/// Why a value does not fit its schema. Paths are dotted, with `[i]` for
/// array items (`spec.containers[0].env[2].name`); the empty path is the
/// value itself.
#[derive(Clone, Debug, PartialEq)]
pub enum Mismatch {
    /// `key` under `parent` is not a property of `schema`.
    UnknownField {
        parent: String,
        key: String,
        schema: String,
    },
    /// The JSON type at `path` is not `expected` (`object`, `array`,
    /// `string`, `integer`, `number` or `boolean`).
    WrongType {
        path: String,
        expected: &'static str,
        got: Value,
    },
    /// A `format: byte` string that is not base64.
    NotBase64 { path: String, text: String },
    /// A string the schema's `enum` does not list.
    NotInEnum { path: String, text: String },
    /// A property that `annotations.required` makes mandatory is missing.
    MissingRequired { path: String },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownField {
                parent,
                key,
                schema,
            } => write!(f, "{} is not a field of {schema}", join(parent, key)),
            Self::WrongType {
                path,
                expected,
                got,
            } => {
                let shown: String = got.to_string().chars().take(80).collect();
                write!(
                    f,
                    "{}: expected {expected}, got {} {shown}",
                    shown_path(path),
                    json_type(got)
                )
            }
            Self::NotBase64 { path, .. } => {
                write!(f, "{}: not base64 (format byte)", shown_path(path))
            }
            Self::NotInEnum { path, text } => {
                write!(
                    f,
                    "{}: \"{text}\" is not one of its values",
                    shown_path(path)
                )
            }
            Self::MissingRequired { path } => write!(f, "{path} is required"),
        }
    }
}

fn shown_path(path: &str) -> &str {
    if path.is_empty() { "the value" } else { path }
}

/// A walk over the `schemas` of one or more documents: a `$ref` resolves in
/// the first document that has it, so a small local document can describe
/// an envelope whose leaves are the published schemas.
#[derive(Clone, Debug)]
pub struct Walk<'a> {
    docs: Vec<&'a Value>,
    required_for: Option<&'a str>,
    spellings: &'a [Spelling],
}

impl<'a> Walk<'a> {
    /// A walk resolving `$ref` in `docs`, in order.
    pub fn new(docs: impl IntoIterator<Item = &'a Value>) -> Self {
        Self {
            docs: docs.into_iter().collect(),
            required_for: None,
            spellings: &[],
        }
    }

    /// Checks `annotations.required` for this method id.
    #[must_use]
    pub fn required_for(mut self, method_id: &'a str) -> Self {
        self.required_for = Some(method_id);
        self
    }

    /// Property names the checked value spells differently.
    #[must_use]
    pub fn spellings(mut self, spellings: &'a [Spelling]) -> Self {
        self.spellings = spellings;
        self
    }

    /// The schema named `name`, from the first document that has it.
    pub fn schema(&self, name: &str) -> Option<&'a Value> {
        self.docs
            .iter()
            .find_map(|d| d.get("schemas").and_then(|s| s.get(name)))
    }

    fn resolve(&self, schema: &'a Value) -> &'a Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(name) => self.schema(name).unwrap_or(&Value::Null),
            None => schema,
        }
    }

    fn property(&self, schema: &'a Value, key: &str) -> Option<&'a Value> {
        let properties = schema.get("properties")?;
        let Some(id) = schema.get("id").and_then(Value::as_str) else {
            return properties.get(key);
        };
        let mut ours = self.spellings.iter().filter(|s| s.schema == id);
        if let Some(s) = ours.clone().find(|s| s.written == key) {
            return properties.get(s.property);
        }
        // The document's own name is not the format's: it is unknown there.
        if ours.any(|s| s.property == key) {
            return None;
        }
        properties.get(key)
    }

    /// Checks `v` against `schema` (a schema object or a `{"$ref": ...}`);
    /// `path` is where `v` sits, for the report.
    pub fn check(&self, schema: &'a Value, v: &Value, path: &str) -> Result<(), Mismatch> {
        let s = self.resolve(schema);
        if v.is_null() {
            // proto3 JSON: null is the default value, and Directory's update
            // clears a field with it.
            return Ok(());
        }
        let format = s.get("format").and_then(Value::as_str);
        let wrong = |expected: &'static str| Mismatch::WrongType {
            path: path.to_owned(),
            expected,
            got: v.clone(),
        };
        match s.get("type").and_then(Value::as_str).unwrap_or("any") {
            "object" => {
                let Some(object) = v.as_object() else {
                    return Err(wrong("object"));
                };
                let properties = s.get("properties").and_then(Value::as_object);
                let additional = s.get("additionalProperties");
                for (key, child) in object {
                    let child_path = join(path, key);
                    if let Some(p) = self.property(s, key) {
                        self.check(p, child, &child_path)?;
                    } else if let Some(a) = additional {
                        self.check(a, child, &child_path)?;
                    } else if properties.is_some() {
                        return Err(Mismatch::UnknownField {
                            parent: path.to_owned(),
                            key: key.clone(),
                            schema: s
                                .get("id")
                                .and_then(Value::as_str)
                                .unwrap_or("its schema")
                                .to_owned(),
                        });
                    }
                    // Neither: a free-form object (a Struct), anything goes.
                }
                if let Some(method_id) = self.required_for {
                    for (key, p) in properties.into_iter().flatten() {
                        if required_for(p, method_id) && object.get(key).is_none_or(Value::is_null)
                        {
                            return Err(Mismatch::MissingRequired {
                                path: join(path, key),
                            });
                        }
                    }
                }
                Ok(())
            }
            "array" => {
                let Some(items) = v.as_array() else {
                    return Err(wrong("array"));
                };
                if let Some(item_schema) = s.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        self.check(item_schema, item, &format!("{path}[{i}]"))?;
                    }
                }
                Ok(())
            }
            "string" => {
                let Some(text) = v.as_str() else {
                    return Err(wrong("string"));
                };
                if format == Some("byte") && !is_base64(text) {
                    return Err(Mismatch::NotBase64 {
                        path: path.to_owned(),
                        text: text.to_owned(),
                    });
                }
                if let Some(allowed) = s.get("enum").and_then(Value::as_array)
                    && !allowed.iter().any(|a| a.as_str() == Some(text))
                {
                    return Err(Mismatch::NotInEnum {
                        path: path.to_owned(),
                        text: text.to_owned(),
                    });
                }
                Ok(())
            }
            "integer" => {
                let ok = match v {
                    Value::Number(n) => n.is_i64() || n.is_u64(),
                    // proto3 JSON writes 64-bit integers as strings.
                    Value::String(text) => {
                        matches!(format, Some("int64" | "uint64")) && text.parse::<i128>().is_ok()
                    }
                    _ => false,
                };
                if ok { Ok(()) } else { Err(wrong("integer")) }
            }
            "number" if !v.is_number() => Err(wrong("number")),
            "boolean" if !v.is_boolean() => Err(wrong("boolean")),
            _ => Ok(()),
        }
    }
}

/// `path.key`, or `key` at the top.
pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// The JSON type's name, as the schemas spell it.
pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn required_for(property: &Value, method_id: &str) -> bool {
    property
        .get("annotations")
        .and_then(|a| a.get("required"))
        .and_then(Value::as_array)
        .is_some_and(|ids| ids.iter().any(|id| id.as_str() == Some(method_id)))
}

fn is_base64(s: &str) -> bool {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let trimmed = s.trim_end_matches('=');
    URL_SAFE_NO_PAD.decode(trimmed).is_ok() || STANDARD_NO_PAD.decode(trimmed).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Value {
        json!({"schemas": {
            "Outer": {"id": "Outer", "type": "object", "properties": {
                "inner": {"$ref": "Inner"},
                "list": {"type": "array", "items": {"$ref": "Inner"}},
                "tags": {"type": "object", "additionalProperties": {"type": "string"}}
            }},
            "Inner": {"id": "Inner", "type": "object", "properties": {
                "port": {"type": "integer", "format": "int32"},
                "valueSource": {"type": "string"}
            }}
        }})
    }

    #[test]
    fn paths_and_schemas_are_named() {
        let d = doc();
        let walk = Walk::new([&d]);
        let outer = walk.schema("Outer").expect("Outer");
        assert_eq!(
            walk.check(outer, &json!({"list": [{}, {"prot": 1}]}), "")
                .expect_err("unknown")
                .to_string(),
            "list[1].prot is not a field of Inner"
        );
        assert_eq!(
            walk.check(outer, &json!({"inner": {"port": "80"}}), "")
                .expect_err("type")
                .to_string(),
            "inner.port: expected integer, got string \"80\""
        );
        assert!(
            walk.check(outer, &json!({"tags": {"a": 1}}), "")
                .expect_err("type")
                .to_string()
                .starts_with("tags.a: expected string")
        );
        assert!(
            walk.check(
                outer,
                &json!({"inner": {"port": 80}, "tags": {"a": "b"}}),
                ""
            )
            .is_ok()
        );
    }

    #[test]
    fn spellings_map_written_names_to_properties() {
        const SPELLINGS: &[Spelling] = &[Spelling {
            schema: "Inner",
            written: "valueFrom",
            property: "valueSource",
        }];
        let d = doc();
        let outer = &d["schemas"]["Outer"];
        let v = json!({"inner": {"valueFrom": "x"}});
        assert!(Walk::new([&d]).check(outer, &v, "").is_err());
        assert!(
            Walk::new([&d])
                .spellings(SPELLINGS)
                .check(outer, &v, "")
                .is_ok()
        );
        // The document's name is not the format's.
        let v = json!({"inner": {"valueSource": "x"}});
        assert_eq!(
            Walk::new([&d])
                .spellings(SPELLINGS)
                .check(outer, &v, "")
                .expect_err("unknown")
                .to_string(),
            "inner.valueSource is not a field of Inner"
        );
        // The spelling is per schema: Outer has no such key.
        let v = json!({"valueFrom": "x"});
        assert!(
            Walk::new([&d])
                .spellings(SPELLINGS)
                .check(outer, &v, "")
                .is_err()
        );
    }
}
