//! `[auth]` as the runtime reads it: the core's kinds (which know no
//! vendor), and Google's, from gluefleet-google:
//!
//! - `google_adc`: Application Default Credentials with `scopes`;
//! - `google_delegated`: domain-wide delegation, acting as each route's
//!   `subject` (see [`gluefleet_google::delegation`]).
//!
//! `kind` is read first, then the rest of the table as that kind's
//! settings, so an error names the kind it was read as and an unknown kind
//! lists the kinds there are.

use gluefleet_core::ConfigError;
use gluefleet_core::auth::{AuthConfig, TokenProvider};
use gluefleet_google::DelegationConfig;
use serde::{Deserialize, Deserializer};
use std::sync::Arc;

/// The core's kinds, for the message about an unknown one.
const CORE_KINDS: &[&str] = &[
    "oauth2_client_credentials",
    "jwt_bearer",
    "bearer",
    "basic",
    "api_key",
];
/// Google's kinds.
const GOOGLE_KINDS: &[&str] = &["google_adc", "google_delegated"];

/// `[auth]` with `kind = "google_adc"`.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdcConfig {
    /// OAuth scopes of the token (required).
    pub scopes: Vec<String>,
}

/// `[auth]`.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum AuthSettings {
    /// One of the core's kinds.
    Core(AuthConfig),
    /// `google_adc`.
    GoogleAdc(AdcConfig),
    /// `google_delegated`.
    GoogleDelegated(DelegationConfig),
}

fn kinds() -> String {
    CORE_KINDS
        .iter()
        .chain(GOOGLE_KINDS)
        .copied()
        .collect::<Vec<_>>()
        .join(", ")
}

/// In the config's JSON Schema: one of the core's kinds, or one of
/// Google's, each with its `kind`.
impl schemars::JsonSchema for AuthSettings {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "AuthSettings".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        fn with_kind(mut schema: schemars::Schema, kind: &str) -> schemars::Schema {
            if let Some(object) = schema.as_object_mut() {
                if let Some(properties) = object
                    .entry("properties")
                    .or_insert_with(|| serde_json::json!({}))
                    .as_object_mut()
                {
                    properties.insert(
                        "kind".into(),
                        serde_json::json!({"type": "string", "const": kind}),
                    );
                }
                if let Some(required) = object
                    .entry("required")
                    .or_insert_with(|| serde_json::json!([]))
                    .as_array_mut()
                {
                    required.push(serde_json::json!("kind"));
                }
            }
            schema
        }
        let core = generator.subschema_for::<AuthConfig>();
        let adc = with_kind(AdcConfig::json_schema(generator), "google_adc");
        let delegated = with_kind(DelegationConfig::json_schema(generator), "google_delegated");
        schemars::json_schema!({
            "description": "The target's credential, by `kind`.",
            "oneOf": [core, adc, delegated]
        })
    }
}

impl<'de> Deserialize<'de> for AuthSettings {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = toml::Value::deserialize(d)?;
        let toml::Value::Table(mut table) = value else {
            return Err(D::Error::custom("[auth] must be a table"));
        };
        let kind = match table.get("kind") {
            Some(toml::Value::String(k)) => k.clone(),
            Some(_) => return Err(D::Error::custom("auth.kind must be a string")),
            None => {
                return Err(D::Error::custom(format!(
                    "[auth] needs a kind, one of: {}",
                    kinds()
                )));
            }
        };
        let read = |what: &str, e: toml::de::Error| {
            D::Error::custom(format!("[auth] kind = {what:?}: {}", e.message()))
        };
        match kind.as_str() {
            "google_adc" => {
                table.remove("kind");
                toml::Value::Table(table)
                    .try_into()
                    .map(AuthSettings::GoogleAdc)
                    .map_err(|e| read(&kind, e))
            }
            "google_delegated" => {
                table.remove("kind");
                toml::Value::Table(table)
                    .try_into()
                    .map(AuthSettings::GoogleDelegated)
                    .map_err(|e| read(&kind, e))
            }
            k if CORE_KINDS.contains(&k) => toml::Value::Table(table)
                .try_into()
                .map(AuthSettings::Core)
                .map_err(|e| read(&kind, e)),
            other => Err(D::Error::custom(format!(
                "unknown [auth] kind {other:?}: one of {}",
                kinds()
            ))),
        }
    }
}

impl AuthSettings {
    /// Builds the provider. `env` reads the environment (the delegation's
    /// `GOOGLE_OAUTH_ACCESS_TOKEN`).
    pub fn provider(
        &self,
        http: reqwest::Client,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Arc<dyn TokenProvider>, ConfigError> {
        Ok(match self {
            AuthSettings::Core(c) => c.provider(http)?,
            AuthSettings::GoogleAdc(c) => {
                if c.scopes.is_empty() {
                    return Err(ConfigError::setting(
                        "auth.scopes",
                        "auth.scopes must list the OAuth scopes of the token",
                    ));
                }
                let scopes: Vec<&str> = c.scopes.iter().map(String::as_str).collect();
                Arc::new(gluefleet_google::Google::new(&scopes)?)
            }
            AuthSettings::GoogleDelegated(c) => {
                Arc::new(gluefleet_google::Delegated::new(c, http, env)?)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<AuthSettings, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn every_core_kind_still_reads() {
        let a = parse("kind = \"bearer\"\ntoken = \"t\"").expect("bearer");
        assert!(
            matches!(a, AuthSettings::Core(AuthConfig::Bearer { .. })),
            "{a:?}"
        );
        let a = parse(
            "kind = \"jwt_bearer\"\nlogin_url = \"https://l.example\"\nconsumer_key = \"k\"\nusername = \"u\"\nprivate_key = \"p\"",
        )
        .expect("jwt");
        assert!(
            matches!(a, AuthSettings::Core(AuthConfig::JwtBearer(_))),
            "{a:?}"
        );
        let e = parse("kind = \"basic\"\nusername = \"u\"").expect_err("no password");
        assert!(e.contains("basic") && e.contains("password"), "{e}");
    }

    #[test]
    fn google_kinds_read_their_own_settings() {
        let a = parse(
            "kind = \"google_adc\"\nscopes = [\"https://www.googleapis.com/auth/datastore\"]",
        )
        .expect("adc");
        assert!(matches!(a, AuthSettings::GoogleAdc(_)), "{a:?}");
        let a = parse(
            "kind = \"google_delegated\"\nservice_account = \"svc@p.iam.gserviceaccount.com\"\nscopes = [\"s\"]\nsubject = \"ann@example.com\"",
        )
        .expect("delegated");
        let AuthSettings::GoogleDelegated(c) = a else {
            panic!("not delegated: {a:?}");
        };
        assert_eq!(c.subject.as_deref(), Some("ann@example.com"));
        let e = parse("kind = \"google_delegated\"\nscopes = [\"s\"]\nsubjects = \"x\"")
            .expect_err("typo");
        assert!(
            e.contains("google_delegated") && e.contains("subjects"),
            "{e}"
        );
    }

    #[test]
    fn an_unknown_or_missing_kind_lists_the_kinds() {
        let e = parse("kind = \"google\"").expect_err("unknown");
        assert!(
            e.contains("\"google\"") && e.contains("google_delegated") && e.contains("api_key"),
            "{e}"
        );
        let e = parse("token = \"t\"").expect_err("no kind");
        assert!(e.contains("needs a kind") && e.contains("bearer"), "{e}");
    }

    #[tokio::test]
    async fn a_delegated_provider_acts_as_subjects() {
        let a = parse(
            "kind = \"google_delegated\"\nservice_account = \"svc@p.iam.gserviceaccount.com\"\nscopes = [\"s\"]\nown_token = \"t\"",
        )
        .expect("delegated");
        let p = a
            .provider(reqwest::Client::new(), &|_| None)
            .expect("provider");
        assert!(p.acts_as_subjects());
        let e = parse("kind = \"bearer\"\ntoken = \"t\"")
            .expect("bearer")
            .provider(reqwest::Client::new(), &|_| None)
            .expect("provider");
        assert!(!e.acts_as_subjects());
    }
}
