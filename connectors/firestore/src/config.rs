//! `[target]` and each route's `action` for the Firestore connector.

use gluefleet_core::ConfigError;
use gluefleet_core::batch::BatchConfig;
use gluefleet_core::config::Unknown;
use gluefleet_core::mapping::Mapping;
use gluefleet_core::template::Template;
use serde::Deserialize;
use std::collections::BTreeMap;

/// `[target]`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Target {
    /// Project (default: `GOOGLE_CLOUD_PROJECT`).
    #[serde(default)]
    pub project: Option<String>,
    /// Database (default `(default)`).
    #[serde(default = "default_database")]
    pub database: String,
    /// `max_batch`, `max_bytes`, `linger`, `max_in_flight`, held to
    /// Firestore's limits ([`LIMITS`](crate::client::LIMITS)).
    #[serde(flatten)]
    pub batch: BatchConfig,
    /// Settings no field took: refused when the connector is built, since
    /// the flattened batch settings rule out `deny_unknown_fields`.
    #[serde(flatten)]
    #[schemars(skip)]
    pub unknown: Unknown,
}

fn default_database() -> String {
    "(default)".into()
}

/// What a route does to its document.
#[derive(Clone, Copy, Debug, Deserialize, schemars::JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// Create; the document must not exist (if it does: already done).
    Create,
    /// Write the whole document, or merge the mapped fields (`merge = true`).
    Set,
    /// Change the mapped fields; the document must exist (if not: dead letter).
    Update,
    /// Delete (a missing document is fine).
    Delete,
}

/// A server-side field transform.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Transform {
    /// Set the field to the server's commit time.
    ServerTimestamp,
    /// Add this number to the field.
    Increment(serde_json::Number),
}

/// A route's `action`, as written.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAction {
    /// `create`, `set`, `update` or `delete`.
    pub operation: Operation,
    /// Document path template: `accounts/{data.accountId}`. Values may not
    /// contain `/`, so an event can never address another collection.
    pub document: String,
    /// jq filter giving the document's fields (default: the event's data,
    /// which must then be an object).
    #[serde(default)]
    pub fields: Option<Mapping>,
    /// With `set`: merge the mapped fields instead of replacing the document.
    #[serde(default)]
    pub merge: bool,
    /// Dotted field paths whose string values are RFC 3339 timestamps.
    #[serde(default)]
    pub timestamps: Vec<String>,
    /// Field transforms: `{ updatedAt = "server_timestamp", visits = { increment = 1 } }`.
    #[serde(default)]
    pub transforms: BTreeMap<String, Transform>,
}

/// A checked action.
#[derive(Debug)]
pub struct Action {
    /// The operation.
    pub operation: Operation,
    /// The document path template.
    pub document: Template,
    /// Field mapping, if any.
    pub fields: Option<Mapping>,
    /// Merge on set.
    pub merge: bool,
    /// Timestamp fields.
    pub timestamps: Vec<String>,
    /// Transforms.
    pub transforms: BTreeMap<String, Transform>,
}

impl Action {
    /// False when writing twice does more than writing once: an `update` or
    /// `set` with an `increment` transform adds again. A `create` fails the
    /// second time (the document exists) and a `delete` finds nothing, so
    /// those stay idempotent whatever their transforms; a server timestamp
    /// only moves to the later write's time.
    pub fn idempotent(&self) -> bool {
        matches!(self.operation, Operation::Create | Operation::Delete)
            || !self
                .transforms
                .values()
                .any(|t| matches!(t, Transform::Increment(_)))
    }
}

impl RawAction {
    /// Checks the action.
    pub fn compile(self) -> Result<Action, ConfigError> {
        let document = Template::parse(&self.document)?;
        let segments: Vec<&str> = self.document.split('/').collect();
        if segments.iter().any(|s| s.is_empty()) || !segments.len().is_multiple_of(2) {
            return Err(ConfigError::setting(
                "action.document",
                format!(
                    "document {:?} must be collection/id pairs without a leading slash, like accounts/{{data.id}}",
                    self.document
                ),
            ));
        }
        for lit in document.literals() {
            if lit.split('/').any(|s| {
                s == "." || s == ".." || (s.starts_with("__") && s.ends_with("__") && s.len() >= 4)
            }) {
                return Err(ConfigError::setting(
                    "action.document",
                    format!("document {:?} has a reserved path segment", self.document),
                ));
            }
        }
        if self.operation == Operation::Delete
            && (self.fields.is_some() || !self.transforms.is_empty())
        {
            return Err(ConfigError::setting(
                "action.operation",
                "a delete takes no fields or transforms",
            ));
        }
        if self.merge && self.operation != Operation::Set {
            return Err(ConfigError::setting(
                "action.merge",
                "merge applies to operation = \"set\" only",
            ));
        }
        Ok(Action {
            operation: self.operation,
            document,
            fields: self.fields,
            merge: self.merge,
            timestamps: self.timestamps,
            transforms: self.transforms,
        })
    }
}

/// Firestore's rule for one document id: no `/`, not `.` or `..`, not
/// `__name__`-style, at most 1,500 bytes.
pub fn document_id(value: &str, _field: &str) -> Result<String, String> {
    if value.contains('/') {
        return Err(format!(
            "{value:?} contains '/', which would address another collection"
        ));
    }
    if value.starts_with("__") && value.ends_with("__") && value.len() >= 4 {
        return Err(format!("{value:?} is a reserved Firestore id"));
    }
    if value.len() > 1500 {
        return Err("longer than Firestore's 1,500-byte id limit".into());
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Result<Action, String> {
        toml::from_str::<RawAction>(text)
            .map_err(|e| e.to_string())?
            .compile()
            .map_err(String::from)
    }

    #[test]
    fn actions_are_checked() {
        assert!(raw("operation = \"create\"\ndocument = \"accounts/{data.id}\"").is_ok());
        assert!(
            raw("operation = \"create\"\ndocument = \"accounts\"").is_err(),
            "odd segments"
        );
        assert!(raw("operation = \"create\"\ndocument = \"/accounts/{data.id}\"").is_err());
        assert!(
            raw("operation = \"create\"\ndocument = \"a//b/{data.id}\"").is_err(),
            "empty segment"
        );
        assert!(
            raw("operation = \"create\"\ndocument = \"a/{data.id}/\"").is_err(),
            "trailing slash"
        );
        assert!(raw("operation = \"update\"\nmerge = true\ndocument = \"a/{data.id}\"").is_err());
        assert!(raw("operation = \"delete\"\ndocument = \"a/{data.id}\"\ntransforms = { n = \"server_timestamp\" }").is_err());
        let a = raw(
            "operation = \"set\"\ndocument = \"a/{data.id}\"\ntransforms = { seen = \"server_timestamp\", n = { increment = 2 } }",
        );
        assert_eq!(a.map(|a| a.transforms.len()), Ok(2));
    }

    #[test]
    fn increments_are_marked_not_idempotent_except_on_create() {
        let idempotent = |t: &str| raw(t).map(|a| a.idempotent());
        assert_eq!(
            idempotent(
                "operation = \"update\"\ndocument = \"a/{data.id}\"\ntransforms = { n = { increment = 1 } }"
            ),
            Ok(false)
        );
        assert_eq!(
            idempotent(
                "operation = \"set\"\nmerge = true\ndocument = \"a/{data.id}\"\ntransforms = { n = { increment = 1 } }"
            ),
            Ok(false)
        );
        assert_eq!(
            idempotent(
                "operation = \"create\"\ndocument = \"a/{data.id}\"\ntransforms = { n = { increment = 1 } }"
            ),
            Ok(true)
        );
        assert_eq!(
            idempotent(
                "operation = \"update\"\ndocument = \"a/{data.id}\"\ntransforms = { seen = \"server_timestamp\" }"
            ),
            Ok(true)
        );
        assert_eq!(
            idempotent("operation = \"set\"\ndocument = \"a/{data.id}\""),
            Ok(true)
        );
    }

    fn target(text: &str) -> Target {
        toml::from_str(text).expect("a [target] table")
    }

    #[test]
    fn batch_settings_default_to_firestores_and_are_held_to_its_caps() {
        let s = target("project = \"p\"")
            .batch
            .settings(&crate::client::LIMITS)
            .expect("defaults are valid");
        assert_eq!(
            (s.max_items, s.max_bytes, s.linger, s.max_in_flight),
            (500, 9 << 20, std::time::Duration::from_millis(5), 2)
        );
        let s = target("max_batch = 20\nmax_bytes = 65536\nlinger = \"0s\"\nmax_in_flight = 4")
            .batch
            .settings(&crate::client::LIMITS)
            .expect("valid");
        assert_eq!((s.max_items, s.max_bytes, s.max_in_flight), (20, 65536, 4));
        for (text, setting) in [
            ("max_batch = 501", "target.max_batch"),
            ("max_bytes = 10485760", "target.max_bytes"),
            ("linger = \"11s\"", "target.linger"),
        ] {
            let e = target(text)
                .batch
                .settings(&crate::client::LIMITS)
                .expect_err(text);
            assert_eq!(e.setting_name(), Some(setting), "{text}: {e}");
        }
    }

    #[test]
    fn a_misspelt_target_setting_is_still_refused() {
        let t = target("project = \"p\"\nmax_bach = 5");
        let e = t.unknown.check("target").expect_err("a typo");
        assert_eq!(e.setting_name(), Some("target.max_bach"), "{e}");
        assert!(target("database = \"d\"").unknown.check("target").is_ok());
    }

    #[test]
    fn ids_cannot_escape_their_collection() {
        assert!(document_id("A-1", "data.id").is_ok());
        assert!(document_id("x/y", "data.id").is_err());
        assert!(document_id("__name__", "data.id").is_err());
        assert!(document_id("____", "data.id").is_err());
    }
}
