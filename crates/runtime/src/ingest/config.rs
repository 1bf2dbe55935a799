//! `gluefleet-ingest`'s config: the topics it publishes to and the
//! credentials allowed to, read once from TOML. Keys and passwords are
//! stored as SHA-256 digests, so the config file (a Secret Manager secret
//! on Cloud Run) never holds a usable credential.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The whole file.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Limits and windows.
    #[serde(default)]
    pub ingest: Limits,
    /// Route name (the `{topic}` of `POST /v1/events/{topic}`) to topic.
    pub topics: BTreeMap<String, TopicRoute>,
    /// Who may publish.
    pub credentials: Vec<Credential>,
}

/// `[ingest]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest body taken, in bytes (default 1 MiB; Pub/Sub's own limit is
    /// 10 MB). Larger bodies are answered 413.
    pub max_body_bytes: usize,
    /// How long Pub/Sub may take to confirm a publish before the caller is
    /// answered 503 (default 10 s).
    #[serde(with = "humantime_serde")]
    pub publish_timeout: Duration,
    /// How long a published event id is remembered: a repeat within it is
    /// answered with the first message id and not published again
    /// (default 10 min). Per instance: instances do not share it.
    #[serde(with = "humantime_serde")]
    pub idempotency_window: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            publish_timeout: Duration::from_secs(10),
            idempotency_window: Duration::from_secs(600),
        }
    }
}

/// `[topics.<route>]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TopicRoute {
    /// `projects/P/topics/T`.
    pub topic: String,
    /// The CloudEvents type given to plain JSON bodies (a `?type=` query
    /// overrides it). Without either a plain body is refused.
    #[serde(default)]
    pub event_type: Option<String>,
    /// The CloudEvents source given to plain JSON bodies (default
    /// `//gluefleet/ingest/<credential name>`).
    #[serde(default)]
    pub source: Option<String>,
    /// A JSON Schema file the data of every event on this topic must match
    /// (a relative path is read from the config file's directory).
    #[serde(default)]
    pub schema: Option<PathBuf>,
    /// JSON Schema files by event type; an event whose type is listed is
    /// checked against its own schema instead of `schema`.
    #[serde(default)]
    pub schemas: BTreeMap<String, PathBuf>,
}

/// How a caller proves who it is.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Check {
    /// `Authorization: Bearer <key>` or `X-Api-Key: <key>`.
    ApiKey {
        /// Lowercase hex SHA-256 of the key.
        key_sha256: String,
    },
    /// `Authorization: Bearer <Google-signed ID token>`, for callers inside
    /// Google Cloud (a Cloud Run service, a Workflow, Cloud Scheduler):
    /// signature, issuer, audience and expiry checked as push mode checks
    /// Pub/Sub's tokens, and the token's verified email must be this
    /// account's.
    GoogleOidc {
        /// The token's `aud` (the caller sets it when it mints the token).
        audience: String,
        /// The caller's service account email.
        service_account: String,
        /// Where Google's signing keys are read (default Google's JWKS).
        /// Tests only.
        #[serde(default)]
        jwks_url: Option<String>,
    },
    /// `Authorization: Basic ...`.
    Basic {
        /// The user name.
        username: String,
        /// Lowercase hex SHA-256 of the password.
        password_sha256: String,
    },
}

/// `[[credentials]]`. (Unknown fields are refused by [`Check`], which
/// sees the fields this struct does not take.)
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Credential {
    /// For logs and the default source.
    pub name: String,
    /// Route names this credential may publish to.
    pub topics: Vec<String>,
    /// The check.
    #[serde(flatten)]
    pub check: Check,
}

impl IngestConfig {
    /// Parses and checks `text`; the error names the field.
    pub fn parse(text: &str) -> Result<Self, String> {
        let c: Self = toml::from_str(text).map_err(|e| format!("ingest config: {e}"))?;
        c.validate()?;
        Ok(c)
    }

    /// Reads `path` and parses it; relative schema paths are resolved
    /// against the file's directory, so the config and its schemas travel
    /// together (one mounted secret or one directory).
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut c = Self::parse(&text)?;
        let dir = path.parent().unwrap_or_else(|| Path::new("."));
        for t in c.topics.values_mut() {
            for file in t.schema.iter_mut().chain(t.schemas.values_mut()) {
                if file.is_relative() {
                    *file = dir.join(&*file);
                }
            }
        }
        Ok(c)
    }

    fn validate(&self) -> Result<(), String> {
        if self.topics.is_empty() {
            return Err("ingest config: [topics] is empty: nothing could be published".into());
        }
        for (route, t) in &self.topics {
            let parts: Vec<&str> = t.topic.split('/').collect();
            if !matches!(parts.as_slice(), ["projects", p, "topics", n] if !p.is_empty() && !n.is_empty())
            {
                return Err(format!(
                    "ingest config: topics.{route}.topic {:?} is not projects/P/topics/T",
                    t.topic
                ));
            }
        }
        if self.credentials.is_empty() {
            return Err("ingest config: no [[credentials]]: nobody could publish".into());
        }
        for c in &self.credentials {
            for route in &c.topics {
                if !self.topics.contains_key(route) {
                    return Err(format!(
                        "ingest config: credential {:?} names topic {route:?}, which [topics] does not define",
                        c.name
                    ));
                }
            }
            let digest = match &c.check {
                Check::ApiKey { key_sha256 } => key_sha256,
                Check::Basic {
                    password_sha256, ..
                } => password_sha256,
                Check::GoogleOidc { .. } => continue,
            };
            if digest.len() != 64
                || !digest
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return Err(format!(
                    "ingest config: credential {:?}: the digest must be 64 lowercase hex characters (sha256sum's output), not the key itself",
                    c.name
                ));
            }
        }
        if self.ingest.max_body_bytes == 0 || self.ingest.max_body_bytes > 10_000_000 {
            return Err("ingest config: ingest.max_body_bytes must be 1..=10000000 (Pub/Sub's message limit)".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "0000000000000000000000000000000000000000000000000000000000000000";

    fn config(credential: &str) -> String {
        format!(
            "[topics.orders]\ntopic = \"projects/p/topics/orders\"\n\n[[credentials]]\nname = \"sap\"\ntopics = [\"orders\"]\n{credential}\n"
        )
    }

    #[test]
    fn a_valid_config_has_defaults() {
        let c = IngestConfig::parse(&config(&format!(
            "kind = \"api_key\"\nkey_sha256 = \"{DIGEST}\""
        )))
        .expect("valid");
        assert_eq!(c.ingest, Limits::default());
        assert_eq!(
            c.credentials[0].check,
            Check::ApiKey {
                key_sha256: DIGEST.into()
            }
        );
    }

    #[test]
    fn mistakes_are_named() {
        let err = |text: &str| IngestConfig::parse(text).expect_err("refused");
        assert!(
            err(&config("kind = \"api_key\"\nkey_sha256 = \"sap-key\""))
                .contains("64 lowercase hex characters")
        );
        assert!(
            err(&config(&format!(
                "kind = \"api_key\"\nkey_sha265 = \"{DIGEST}\""
            )))
            .contains("key_sha265")
        );
        assert!(
            err(&config(&format!(
                "kind = \"token\"\nkey_sha256 = \"{DIGEST}\""
            )))
            .contains("token")
        );
        let bad_route = config(&format!("kind = \"api_key\"\nkey_sha256 = \"{DIGEST}\""))
            .replace("topics = [\"orders\"]", "topics = [\"invoices\"]");
        assert!(
            err(&bad_route).contains("names topic \"invoices\", which [topics] does not define")
        );
        let bad_topic = config(&format!("kind = \"api_key\"\nkey_sha256 = \"{DIGEST}\""))
            .replace("projects/p/topics/orders", "orders");
        assert!(
            err(&bad_topic).contains("topics.orders.topic \"orders\" is not projects/P/topics/T")
        );
    }
}
