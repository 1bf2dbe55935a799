//! `[target]` and each route's `action` for the SAP OData connector.

use gluefleet_core::ConfigError;
use gluefleet_core::batch::{BatchConfig, VendorLimits};
use gluefleet_core::config::Unknown;
use gluefleet_core::http::checked_url;
use gluefleet_core::mapping::Mapping;
use gluefleet_core::template::Template;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// OData protocol version of the service.
#[derive(Clone, Copy, Debug, Deserialize, schemars::JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Version {
    /// OData V2 (SAP Gateway): MERGE for updates, multipart `$batch`.
    V2,
    /// OData V4: PATCH for updates, JSON `$batch`.
    V4,
}

/// `$batch`: gluefleet's own caps (SAP sets none that hold on every
/// system); 100 creates and a 20 ms linger suit Gateway's per-request cost.
pub const LIMITS: VendorLimits = VendorLimits {
    max_items: 1000,
    max_bytes: 8 * 1024 * 1024,
    default_items: 100,
    default_linger: Duration::from_millis(20),
    default_in_flight: 2,
};

/// `[target]`. Unknown keys are refused by [`Target::validate`] (the
/// batching settings are flattened in, which rules out
/// `deny_unknown_fields`).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Target {
    /// The service root: `https://host/sap/opu/odata/sap/API_BUSINESS_PARTNER`.
    pub service_url: String,
    /// `v2` or `v4`.
    pub version: Version,
    /// SAP client (`sap-client` query parameter), if the system needs one.
    #[serde(default)]
    pub sap_client: Option<String>,
    /// Allow an `http://` service URL on another machine (default false;
    /// plain http to this machine is always allowed).
    #[serde(default)]
    pub allow_insecure_http: bool,
    /// Send creates waiting at the same moment as one `$batch` (default true).
    #[serde(default = "yes")]
    pub batch: bool,
    /// `max_batch`, `max_bytes`, `linger`, `max_in_flight` of `$batch`,
    /// within [`LIMITS`] (the defaults are there too); checked even with
    /// `batch = false`.
    #[serde(flatten)]
    pub batching: BatchConfig,
    /// Any other key: refused.
    #[serde(flatten)]
    #[schemars(skip)]
    pub unknown: Unknown,
}

fn yes() -> bool {
    true
}

impl Target {
    /// Checks the settings; an error names the one at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.unknown.check("target")?;
        // The credentials and the session cookies travel there.
        checked_url(
            "target.service_url",
            &self.service_url,
            self.allow_insecure_http.into(),
        )?;
        self.batching.settings(&LIMITS)?;
        Ok(())
    }
}

/// What a route does.
#[derive(Clone, Copy, Debug, Deserialize, schemars::JsonSchema, PartialEq, Eq)]
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
#[derive(Debug, Deserialize, schemars::JsonSchema)]
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

fn odata_name(what: &str, name: &str) -> Result<(), ConfigError> {
    let ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ConfigError::setting(
            format!("action.{}", what.replace(' ', "_")),
            format!("{what} {name:?} is not an OData identifier"),
        ))
    }
}

impl RawAction {
    /// Checks the action.
    pub fn compile(self) -> Result<Action, ConfigError> {
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

    fn target(text: &str) -> Target {
        toml::from_str(&format!("version = \"v4\"\n{text}")).expect("parses")
    }

    #[test]
    fn batching_defaults_are_todays_and_max_bytes_is_held_to_its_cap() {
        let t = target("service_url = \"https://erp.example/odata\"");
        t.validate().expect("valid");
        let s = t.batching.settings(&LIMITS).expect("defaults");
        assert_eq!(
            (s.max_items, s.max_bytes, s.linger, s.max_in_flight),
            (100, 8 << 20, Duration::from_millis(20), 2)
        );
        for (text, setting) in [
            ("max_batch = 1001", "target.max_batch"),
            ("max_bytes = 9000000", "target.max_bytes"),
            ("max_in_flight = 65", "target.max_in_flight"),
            ("batch = false\nmax_batch = 0", "target.max_batch"),
            ("max_bach = 10", "target.max_bach"),
        ] {
            let e = target(&format!("service_url = \"https://erp.example\"\n{text}"))
                .validate()
                .expect_err(text);
            assert_eq!(e.setting_name(), Some(setting), "{text}: {e}");
        }
    }

    #[test]
    fn the_service_url_is_held_to_the_one_https_rule() {
        let url = |u: &str, insecure: bool| {
            target(&format!(
                "service_url = \"{u}\"\nallow_insecure_http = {insecure}"
            ))
            .validate()
        };
        assert!(url("https://erp.example", false).is_ok());
        assert!(url("http://127.0.0.1:4004/odata", false).is_ok());
        assert!(url("http://erp.example", true).is_ok());
        for (u, insecure) in [
            ("http://erp.example", false),
            ("ftp://erp.example", true),
            ("https://user:pw@erp.example", false),
        ] {
            let e = url(u, insecure).expect_err(u);
            assert_eq!(e.setting_name(), Some("target.service_url"), "{u}: {e}");
        }
    }
}
