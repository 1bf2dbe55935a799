//! `[target]` and each route's `action` for the SAP OData connector.

use gluefleet_core::mapping::Mapping;
use gluefleet_core::template::Template;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// OData protocol version of the service.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Version {
    /// OData V2 (SAP Gateway): MERGE for updates, multipart `$batch`.
    V2,
    /// OData V4: PATCH for updates, JSON `$batch`.
    V4,
}

/// `[target]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// The service root: `https://host/sap/opu/odata/sap/API_BUSINESS_PARTNER`.
    pub service_url: String,
    /// `v2` or `v4`.
    pub version: Version,
    /// SAP client (`sap-client` query parameter), if the system needs one.
    #[serde(default)]
    pub sap_client: Option<String>,
    /// Allow an `http://` service URL (default false).
    #[serde(default)]
    pub allow_insecure_http: bool,
    /// Send creates waiting at the same moment as one `$batch` (default true).
    #[serde(default = "yes")]
    pub batch: bool,
    /// Events per `$batch` (default 100).
    #[serde(default = "max_batch")]
    pub max_batch: usize,
    /// How long the first event of a batch waits for company (default 20 ms).
    #[serde(default = "linger", with = "humantime_serde")]
    pub linger: Duration,
}

fn yes() -> bool {
    true
}
fn max_batch() -> usize {
    100
}
fn linger() -> Duration {
    Duration::from_millis(20)
}

/// What a route does.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// POST to the entity set; a duplicate key (409) is already done.
    Create,
    /// Change an existing entity (V2 MERGE, V4 PATCH) with `If-Match`.
    Update,
    /// Read by key, then create or update.
    Upsert,
    /// Delete with `If-Match`; a missing entity is already done.
    Delete,
}

/// A route's `action`, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAction {
    /// `create`, `update`, `upsert` or `delete`.
    pub operation: Operation,
    /// The entity set: `BusinessPartners`, `A_BusinessPartner`.
    pub entity_set: String,
    /// Key properties and their value templates: `{ ID = "{data.id}" }`.
    /// Values are sent as OData string literals, quoted and escaped.
    pub key: BTreeMap<String, String>,
    /// jq filter giving the entity's properties (default: the event's data).
    #[serde(default)]
    pub fields: Option<Mapping>,
    /// Template of the ETag the event was based on (`{data.etag}`); without
    /// it the connector reads the entity's current ETag first.
    #[serde(default)]
    pub etag: Option<String>,
    /// On 412 (someone changed the entity since): re-read and apply again
    /// once (true), or dead-letter the conflict (false, the default).
    #[serde(default)]
    pub last_writer_wins: bool,
}

/// A checked action.
#[derive(Debug)]
pub struct Action {
    /// The operation.
    pub operation: Operation,
    /// The entity set.
    pub entity_set: String,
    /// Key properties and templates.
    pub key: Vec<(String, Template)>,
    /// Field mapping.
    pub fields: Option<Mapping>,
    /// ETag template.
    pub etag: Option<Template>,
    /// Re-apply on 412.
    pub last_writer_wins: bool,
}

fn odata_name(what: &str, name: &str) -> Result<(), String> {
    let ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!("{what} {name:?} is not an OData identifier"))
    }
}

impl RawAction {
    /// Checks the action.
    pub fn compile(self) -> Result<Action, String> {
        odata_name("entity_set", &self.entity_set)?;
        if self.key.is_empty() {
            return Err("key needs at least one property".into());
        }
        let mut key = Vec::new();
        for (name, t) in self.key {
            odata_name("key property", &name)?;
            key.push((name, Template::parse(&t)?));
        }
        if self.operation == Operation::Delete && self.fields.is_some() {
            return Err("a delete takes no fields".into());
        }
        if matches!(self.operation, Operation::Create | Operation::Delete)
            && (self.etag.is_some() || self.last_writer_wins)
        {
            return Err("etag and last_writer_wins belong to update and upsert".into());
        }
        Ok(Action {
            operation: self.operation,
            entity_set: self.entity_set,
            key,
            fields: self.fields,
            etag: self.etag.as_deref().map(Template::parse).transpose()?,
            last_writer_wins: self.last_writer_wins,
        })
    }
}

/// An OData string literal: quoted, inner quotes doubled.
pub fn string_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_actions() {
        assert_eq!(string_literal("O'Brien"), "'O''Brien'");
        let a: RawAction = toml::from_str("operation = \"update\"\nentity_set = \"BusinessPartners\"\nkey = { ID = \"{data.id}\" }").expect("parses");
        assert!(a.compile().is_ok());
        let bad: RawAction = toml::from_str(
            "operation = \"create\"\nentity_set = \"Bad Set\"\nkey = { ID = \"{data.id}\" }",
        )
        .expect("parses");
        assert!(bad.compile().is_err());
        let nokey: RawAction =
            toml::from_str("operation = \"create\"\nentity_set = \"S\"\nkey = {}").expect("parses");
        assert!(nokey.compile().is_err());
    }
}
