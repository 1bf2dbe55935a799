//! OAuth 2.0 JWT bearer grant (RFC 7523), as Salesforce's server-to-server
//! flow uses it: an RS256 assertion with `iss` = consumer key, `sub` = user,
//! `aud` = login host, `exp` within 3 minutes, exchanged for an access token.
//! The response's `instance_url` becomes the credential's endpoint, if it is
//! https (or plain http to this machine).
//!
//! No refresh token exists in this flow: a new assertion is minted for each
//! token. The response carries no lifetime, so a token is trusted for
//! `assumed_lifetime` (default 30 min, well inside Salesforce's 2 h default
//! session) and replaced at once when the target refuses it.

use super::{AuthError, Credential, TokenProvider};
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// `[auth]` with `kind = "jwt_bearer"`.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JwtBearerConfig {
    /// The authorization server's base URL. The token endpoint is
    /// `{login_url}/services/oauth2/token` unless `token_url` is set, and `aud`
    /// is this URL unless `audience` is set (a connector whose vendor wants
    /// another `aud` fills `audience` in before the provider is built).
    pub login_url: String,
    /// Token endpoint override.
    #[serde(default)]
    pub token_url: Option<String>,
    /// `aud` override.
    #[serde(default)]
    pub audience: Option<String>,
    /// The connected app's consumer key (`iss`).
    pub consumer_key: String,
    /// The integration user's username (`sub`).
    pub username: String,
    /// The PEM private key (PKCS#1 or PKCS#8) whose certificate the connected app holds.
    #[schemars(with = "String")]
    pub private_key: SecretString,
    /// How long a token is trusted (default 30 min).
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub assumed_lifetime: Option<Duration>,
}

#[derive(serde::Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: u64,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    instance_url: Option<String>,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// The JWT bearer provider.
#[derive(Debug)]
pub struct JwtBearer {
    config: JwtBearerConfig,
    key: jsonwebtoken::EncodingKey,
    token_url: String,
    audience: String,
    http: reqwest::Client,
    cache: RwLock<Option<(Credential, Instant)>>,
    refresh: tokio::sync::Mutex<()>,
    generation: AtomicU64,
    fetches: AtomicU64,
}

impl JwtBearer {
    /// Checks the config (the key must parse) and builds the provider.
    pub fn new(
        config: JwtBearerConfig,
        http: reqwest::Client,
    ) -> Result<Self, crate::config::ConfigError> {
        let key =
            jsonwebtoken::EncodingKey::from_rsa_pem(config.private_key.expose_secret().as_bytes())
                .map_err(|e| format!("auth.private_key is not an RSA private key in PEM: {e}"))?;
        let login = config.login_url.trim_end_matches('/').to_owned();
        let token_url = config
            .token_url
            .clone()
            .unwrap_or_else(|| format!("{login}/services/oauth2/token"));
        if !super::is_safe_token_url(&token_url) {
            return Err(format!(
                "auth: token URL {token_url:?} must be https (plain http only to localhost)"
            )
            .into());
        }
        let audience = config.audience.clone().unwrap_or_else(|| login.clone());
        Ok(Self {
            config,
            key,
            token_url,
            audience,
            http,
            cache: RwLock::new(None),
            refresh: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
            fetches: AtomicU64::new(0),
        })
    }

    /// Tokens fetched so far.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    fn cached(&self) -> Option<(Credential, Instant)> {
        self.cache.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn assertion(&self) -> Result<String, AuthError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| AuthError::permanent(e.to_string()))?;
        let claims = Claims {
            iss: &self.config.consumer_key,
            sub: &self.config.username,
            aud: &self.audience,
            // "within 3 minutes": two, to leave room for clock skew.
            exp: now.as_secs() + 120,
        };
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            &claims,
            &self.key,
        )
        .map_err(|e| AuthError::permanent(format!("signing the JWT assertion: {e}")))
    }

    async fn fetch(&self) -> Result<Credential, AuthError> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let assertion = self.assertion()?;
        let resp = self
            .http
            .post(&self.token_url)
            .timeout(super::TOKEN_TIMEOUT)
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", assertion.as_str()),
            ])
            .send()
            .await
            .map_err(|e| {
                AuthError::transient(format!("token request to {}: {e}", self.token_url))
            })?;
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(AuthError::transient(format!(
                "token endpoint answered HTTP {status}"
            )));
        }
        if !status.is_success() {
            let detail = serde_json::from_str::<ErrorAnswer>(&body)
                .map(|e| format!("{}: {}", e.error, e.error_description.unwrap_or_default()))
                .unwrap_or_else(|_| body.chars().take(200).collect());
            return Err(AuthError::permanent(format!(
                "token endpoint refused the assertion ({status}): {detail}"
            )));
        }
        let answer: TokenAnswer = serde_json::from_str(&body).map_err(|e| {
            AuthError::permanent(format!(
                "token endpoint answered something that is not a token: {e}"
            ))
        })?;
        let endpoint = super::checked_endpoint(answer.instance_url)?;
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        Ok(Credential::new(
            http::header::AUTHORIZATION,
            SecretString::from(format!("Bearer {}", answer.access_token)),
            generation,
        )
        .with_endpoint(endpoint))
    }
}

#[async_trait]
impl TokenProvider for JwtBearer {
    async fn credential(&self) -> Result<Credential, AuthError> {
        // One look at the cache decides both whether to refresh and what
        // counts as "someone refreshed meanwhile": reading it twice let a
        // refresh that finished between the reads look like the stale one,
        // and its caller fetched a second token.
        let snapshot = self.cached();
        if let Some((c, until)) = &snapshot
            && Instant::now() < *until
        {
            return Ok(c.clone());
        }
        let seen = snapshot.map(|(c, _)| c.generation());
        let _guard = self.refresh.lock().await;
        if let Some((c, until)) = self.cached()
            && Instant::now() < until
            && Some(c.generation()) != seen
        {
            return Ok(c);
        }
        let fresh = self.fetch().await?;
        let until = Instant::now()
            + self
                .config
                .assumed_lifetime
                .unwrap_or(Duration::from_secs(1800));
        *self.cache.write().unwrap_or_else(|p| p.into_inner()) = Some((fresh.clone(), until));
        Ok(fresh)
    }

    fn invalidate(&self, stale: &Credential) {
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        if cache
            .as_ref()
            .is_some_and(|(c, _)| c.generation() == stale.generation())
        {
            *cache = None;
        }
    }

    fn fetches(&self) -> Option<u64> {
        // One generation per token fetched.
        Some(self.generation.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_audience_is_the_login_url_unless_set() {
        let config = |audience: Option<&str>| JwtBearerConfig {
            login_url: "https://acme.my.salesforce.com/".into(),
            token_url: None,
            audience: audience.map(str::to_owned),
            consumer_key: "k".into(),
            username: "u".into(),
            private_key: SecretString::from(gluefleet_testkit::salesforce::TEST_PRIVATE_KEY_PEM),
            assumed_lifetime: None,
        };
        // No vendor's host rules here: the connector sets `audience` when
        // its vendor wants another one.
        let plain = JwtBearer::new(config(None), reqwest::Client::new()).expect("provider");
        assert_eq!(plain.audience, "https://acme.my.salesforce.com");
        let set = JwtBearer::new(config(Some("https://aud.example")), reqwest::Client::new())
            .expect("provider");
        assert_eq!(set.audience, "https://aud.example");
    }

    #[test]
    fn bad_keys_and_plain_http_are_refused() {
        let config = |key: &str, login: &str| JwtBearerConfig {
            login_url: login.into(),
            token_url: None,
            audience: None,
            consumer_key: "k".into(),
            username: "u".into(),
            private_key: SecretString::from(key.to_owned()),
            assumed_lifetime: None,
        };
        let err = JwtBearer::new(
            config("not a key", "https://login.salesforce.com"),
            reqwest::Client::new(),
        )
        .expect_err("bad key");
        assert!(err.message().contains("private_key"), "{err}");
        let pem = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n";
        assert!(
            JwtBearer::new(
                config(pem, "http://login.example.com"),
                reqwest::Client::new()
            )
            .is_err()
        );
    }
}
