//! Credentials for the target: one [`TokenProvider`] trait, several kinds.
//!
//! The pipeline asks the provider for a [`Credential`] before each call and,
//! when the target answers 401, calls [`TokenProvider::invalidate`] with the
//! credential that was refused, then asks again: one refresh, one retry.
//!
//! A route may act as a different user per event (a `subject` template, for
//! vendors with delegated access such as a Workspace domain): the pipeline
//! renders it and asks [`TokenProvider::credential_for`] that subject. The
//! credential carries its subject, so a refusal invalidates that user's
//! token only.
//!
//! Every secret is a [`SecretString`]: `Debug` prints `[REDACTED]`, and the
//! value leaves its box only where a header is written.

pub mod client_credentials;
pub mod fixed;
pub mod jwt_bearer;

pub use client_credentials::{ClientCredentials, ClientCredentialsConfig};
pub use fixed::Fixed;
pub use jwt_bearer::{JwtBearer, JwtBearerConfig};

use crate::error::{ConnectorError, ErrorClass};
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// How long one token request may take, answer included. A token endpoint
/// that accepts the connection and never answers must not hold a delivery
/// (the pipeline also bounds the fetch by the attempt's timeout), nor
/// `/readyz` and `check`, which have no attempt around them.
pub const TOKEN_TIMEOUT: Duration = Duration::from_secs(10);

/// A header to put on a request: name and secret value.
#[derive(Clone)]
pub struct Credential {
    header: http::HeaderName,
    value: SecretString,
    generation: u64,
    endpoint: Option<String>,
    subject: Option<Arc<str>>,
}

impl Credential {
    /// A credential for `header`. `generation` tells refreshed credentials apart.
    pub fn new(header: http::HeaderName, value: SecretString, generation: u64) -> Self {
        Self {
            header,
            value,
            generation,
            endpoint: None,
            subject: None,
        }
    }

    /// The user this credential acts as (see [`TokenProvider::credential_for`]).
    pub fn with_subject(mut self, subject: impl Into<Arc<str>>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// The user this credential acts as, when it was asked for one.
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    /// Where the API lives, when the token response says so (Salesforce's
    /// `instance_url`): calls must go there, not to the login host.
    pub fn with_endpoint(mut self, endpoint: Option<String>) -> Self {
        self.endpoint = endpoint;
        self
    }

    /// The API endpoint that came with the token, if any.
    pub fn endpoint(&self) -> Option<&str> {
        self.endpoint.as_deref()
    }

    /// The header name (`authorization`, or an API-key header).
    pub fn header_name(&self) -> &http::HeaderName {
        &self.header
    }

    /// The header value, marked sensitive so that HTTP logs leave it out.
    pub fn header_value(&self) -> Result<http::HeaderValue, ConnectorError> {
        let mut v = http::HeaderValue::from_str(self.value.expose_secret()).map_err(|_| {
            ConnectorError::permanent(
                "credential contains characters not allowed in an HTTP header",
            )
        })?;
        v.set_sensitive(true);
        Ok(v)
    }

    /// Which refresh produced this credential.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The newest of the credentials that a batch's items were attempted
    /// with. They come from one provider, so the newest is the one to send:
    /// a retry after a refresh never goes out with the stale token of a
    /// first attempt sharing its batch.
    pub fn newest<'a>(
        credentials: impl IntoIterator<Item = &'a Credential>,
    ) -> Option<&'a Credential> {
        credentials.into_iter().max_by_key(|c| c.generation())
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("header", &self.header)
            .field("value", &"[REDACTED]")
            .field("generation", &self.generation)
            .field("endpoint", &self.endpoint)
            .field("subject", &self.subject)
            .finish()
    }
}

/// Getting a credential failed.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct AuthError {
    transient: bool,
    message: String,
}

impl AuthError {
    /// A failure that may pass (token endpoint down, network, 5xx, 429).
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            transient: true,
            message: message.into(),
        }
    }

    /// A failure that needs a human (wrong client id or secret, revoked grant).
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            transient: false,
            message: message.into(),
        }
    }

    /// True when trying again later may work.
    pub fn is_transient(&self) -> bool {
        self.transient
    }
}

impl From<AuthError> for ConnectorError {
    fn from(e: AuthError) -> Self {
        let class = if e.transient {
            ErrorClass::Transient
        } else {
            ErrorClass::Permanent
        };
        let msg = format!("getting a credential: {}", e.message);
        match class {
            ErrorClass::Transient => ConnectorError::transient(msg),
            _ => ConnectorError::permanent(msg),
        }
    }
}

/// Gives credentials, caching and refreshing them as needed.
#[async_trait]
pub trait TokenProvider: Send + Sync + fmt::Debug {
    /// A credential valid now.
    async fn credential(&self) -> Result<Credential, AuthError>;

    /// A credential acting as `subject`, a user of the target's domain
    /// (the rendered `subject` of a route). Providers that cannot act as
    /// another user refuse, and a route naming a subject with such a
    /// provider is refused at load ([`acts_as_subjects`](Self::acts_as_subjects)),
    /// so this default is never reached from the pipeline.
    async fn credential_for(&self, subject: &str) -> Result<Credential, AuthError> {
        Err(AuthError::permanent(format!(
            "this kind of [auth] cannot act as another user (asked for {subject:?})"
        )))
    }

    /// True when [`credential_for`](Self::credential_for) gives a credential
    /// per subject. Default false.
    fn acts_as_subjects(&self) -> bool {
        false
    }
    /// The target refused `stale`; the next [`credential`](Self::credential)
    /// must not return it. A newer credential is left alone, so N callers
    /// refused at once cause one refresh, not N.
    fn invalidate(&self, stale: &Credential);

    /// Credentials fetched from the token endpoint so far, for the
    /// `gluefleet_token_fetches_total` metric: a steady rise means tokens
    /// expire sooner than expected, a burst that the target refused them.
    /// `None` (the default) when the provider cannot tell: a fixed key
    /// fetches nothing, and Google's ADC keeps its cache to itself.
    fn fetches(&self) -> Option<u64> {
        None
    }
}

/// True for `https://` URLs, and for plain `http://` only when the host is
/// this machine (tests, local token servers): a secret never crosses a
/// network in clear.
pub fn is_safe_token_url(url: &str) -> bool {
    crate::http::checked_url("token_url", url, crate::http::Insecure::LoopbackOnly).is_ok()
}

/// The API endpoint a token response names (Salesforce's `instance_url`),
/// held to the rule of token URLs: every call carries the token there, so a
/// response naming plain http to another machine (a misconfigured or
/// tampered token endpoint) is refused rather than followed.
pub(crate) fn checked_endpoint(endpoint: Option<String>) -> Result<Option<String>, AuthError> {
    match endpoint {
        Some(url) if !is_safe_token_url(&url) => Err(AuthError::permanent(format!(
            "the token response names instance_url {url:?}, which is not https (plain http only to this machine): the token would travel there"
        ))),
        other => Ok(other),
    }
}

/// `[auth]` in a connector's config.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum AuthConfig {
    /// OAuth 2.0 client credentials grant.
    Oauth2ClientCredentials(ClientCredentialsConfig),
    /// OAuth 2.0 JWT bearer grant (Salesforce server-to-server).
    JwtBearer(JwtBearerConfig),
    /// A fixed bearer token.
    Bearer {
        /// The token.
        #[schemars(with = "String")]
        token: SecretString,
    },
    /// HTTP Basic.
    Basic {
        /// User name.
        username: String,
        /// Password.
        #[schemars(with = "String")]
        password: SecretString,
    },
    /// An API key in a header.
    ApiKey {
        /// Header name (default `x-api-key`).
        #[serde(default = "default_api_key_header")]
        header: String,
        /// The key.
        #[schemars(with = "String")]
        key: SecretString,
    },
}

impl AuthConfig {
    /// Token lifetimes feed `Instant + lifetime`: bounded so that no typo can
    /// overflow the clock on the first fetch.
    fn check_ranges(&self) -> Result<(), crate::config::ConfigError> {
        use crate::bounds::duration_within;
        use std::time::Duration;
        let day = Duration::from_secs(24 * 3600);
        match self {
            AuthConfig::Oauth2ClientCredentials(c) => {
                if let Some(d) = c.refresh_ahead {
                    duration_within(
                        "auth.refresh_ahead",
                        d,
                        Duration::ZERO..=Duration::from_secs(3600),
                    )?;
                }
                if let Some(d) = c.default_lifetime {
                    duration_within("auth.default_lifetime", d, Duration::from_secs(1)..=day)?;
                }
            }
            AuthConfig::JwtBearer(c) => {
                if let Some(d) = c.assumed_lifetime {
                    duration_within("auth.assumed_lifetime", d, Duration::from_secs(60)..=day)?;
                }
            }
            AuthConfig::Bearer { .. } | AuthConfig::Basic { .. } | AuthConfig::ApiKey { .. } => {}
        }
        Ok(())
    }
}

fn default_api_key_header() -> String {
    "x-api-key".into()
}

impl AuthConfig {
    /// Builds the provider this config describes.
    pub fn provider(
        &self,
        http: reqwest::Client,
    ) -> Result<Arc<dyn TokenProvider>, crate::config::ConfigError> {
        self.check_ranges()?;
        Ok(match self {
            AuthConfig::Oauth2ClientCredentials(c) => {
                Arc::new(ClientCredentials::new(c.clone(), http)?)
            }
            AuthConfig::JwtBearer(c) => Arc::new(JwtBearer::new(c.clone(), http)?),
            AuthConfig::Bearer { token } => Arc::new(Fixed::bearer(token)),
            AuthConfig::Basic { username, password } => Arc::new(Fixed::basic(username, password)),
            AuthConfig::ApiKey { header, key } => Arc::new(Fixed::api_key(header, key.clone())?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_urls_are_https_or_this_machine() {
        for ok in [
            "https://login.example.com/token",
            "http://127.0.0.1:8080/t",
            "http://localhost/t",
            "http://[::1]:9/t",
        ] {
            assert!(is_safe_token_url(ok), "{ok}");
        }
        for bad in [
            "http://localhost.evil.example/t",
            "http://127.0.0.1.nip.io/t",
            "http://localhost@evil.example/t",
            "ftp://x",
            "nonsense",
        ] {
            assert!(!is_safe_token_url(bad), "{bad}");
        }
    }

    #[test]
    fn secrets_never_show_in_debug_or_display() {
        let raw = r#"
            kind = "basic"
            username = "svc"
            password = "hunter2-very-secret"
        "#;
        let cfg: AuthConfig = toml::from_str(raw).expect("valid auth config");
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        let cred = Credential::new(
            http::header::AUTHORIZATION,
            SecretString::from("Bearer tok-123"),
            1,
        );
        let shown = format!("{cred:?}");
        assert!(
            !shown.contains("tok-123") && shown.contains("REDACTED"),
            "{shown}"
        );
        let value = cred.header_value().expect("valid header");
        assert!(value.is_sensitive());
        assert!(!format!("{value:?}").contains("tok-123"));
    }
}
