//! Domain-wide delegation: a [`TokenProvider`] that acts as each event's
//! user of a Workspace domain.
//!
//! For a subject it signs a JWT bearer assertion (RFC 7523) with `iss` =
//! the service account, `sub` = the user, `scope` = the configured scopes,
//! `aud` = the token endpoint and `exp` = `iat` + 1 h at most, and trades it
//! at `https://oauth2.googleapis.com/token` for an access token. The signer
//! is a key file ([`signer::KeyFile`]) or, on Cloud Run with no key
//! anywhere, the IAM Credentials API ([`signer::Keyless`]). Tokens are held
//! per subject ([`cache::SubjectCache`]): bounded, refreshed ahead, one
//! token call per subject at a time, a 401 drops only that user's token.
//!
//! A refused grant (`unauthorized_client`: delegation not granted or a scope
//! not allowlisted; `invalid_grant`: no such user, or a clock off) is
//! permanent and names the subject and what to fix in the Admin console;
//! 5xx, 429 and network failures are transient.

pub mod cache;
pub mod signer;

use async_trait::async_trait;
use cache::SubjectCache;
use gluefleet_core::ConfigError;
use gluefleet_core::auth::{
    AuthError, Credential, TOKEN_TIMEOUT, TokenProvider, is_safe_token_url,
};
use gluefleet_core::bounds::{duration_within, within};
use gluefleet_core::http::{Edge, Outgoing};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use signer::{Claims, KeyFile, Keyless, Signer};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Google's token endpoint, also the assertion's `aud`.
pub const TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
/// The IAM Credentials API.
pub const IAM_URL: &str = "https://iamcredentials.googleapis.com";
/// The scope of the runtime's own token for `signJwt`.
pub const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// The environment variable a fixed own token may come from (tests and
/// development, in place of the metadata server).
pub const OWN_TOKEN_ENV: &str = "GOOGLE_OAUTH_ACCESS_TOKEN";
/// How long an assertion is valid: Google's limit, an hour.
const ASSERTION_LIFETIME: u64 = 3600;
/// Default bound on the subjects held.
pub const DEFAULT_MAX_SUBJECTS: usize = 10_000;
/// Default margin before a token's `expires_in` runs out.
pub const DEFAULT_REFRESH_AHEAD: Duration = Duration::from_secs(300);

/// `[auth]` with `kind = "google_delegated"`.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DelegationConfig {
    /// The service account's email. Required when keyless; taken from the
    /// key otherwise (and, when both are given, they must agree).
    #[serde(default)]
    pub service_account: Option<String>,
    /// Path of a service-account key file (JSON).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// The key file's JSON itself (from an environment variable, say).
    /// Neither this nor `key_file`: keyless, signed by IAM `signJwt`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub key: Option<SecretString>,
    /// OAuth scopes the tokens carry (each allowlisted for the service
    /// account's client id in the Admin console). Required.
    pub scopes: Vec<String>,
    /// The user acted as when a route names none. Without it, every route
    /// must name a `subject`.
    #[serde(default)]
    pub subject: Option<String>,
    /// Token endpoint (default [`TOKEN_URL`]); https, or http to this machine.
    #[serde(default)]
    pub token_url: Option<String>,
    /// IAM Credentials endpoint for keyless signing (default [`IAM_URL`]).
    #[serde(default)]
    pub iam_url: Option<String>,
    /// Keyless, tests and development only: the runtime's own token for
    /// `signJwt`, in place of Application Default Credentials (also read
    /// from `GOOGLE_OAUTH_ACCESS_TOKEN`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub own_token: Option<SecretString>,
    /// Most users whose tokens are held at once (default 10,000; the least
    /// recently used one goes).
    #[serde(default)]
    pub max_subjects: Option<usize>,
    /// How long before a token expires a new one is fetched (default 5 min).
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub refresh_ahead: Option<Duration>,
}

/// The delegation provider.
#[derive(Debug)]
pub struct Delegated {
    signer: Arc<dyn Signer>,
    scope: String,
    token_url: String,
    default_subject: Option<String>,
    edge: Edge,
    cache: SubjectCache<Credential>,
    fetches: AtomicU64,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: SecretString,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    token_type: Option<String>,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

fn checked_url(setting: &str, url: &str) -> Result<String, ConfigError> {
    if is_safe_token_url(url) {
        Ok(url.trim_end_matches('/').to_owned())
    } else {
        Err(ConfigError::setting(
            setting,
            format!("{setting} {url:?} must be https (plain http only to this machine)"),
        ))
    }
}

impl Delegated {
    /// Checks `config` and builds the provider. `env` reads the environment
    /// (for `GOOGLE_OAUTH_ACCESS_TOKEN`; injectable for tests).
    pub fn new(
        config: &DelegationConfig,
        http: reqwest::Client,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        if config.scopes.is_empty() || config.scopes.iter().any(|s| s.trim().is_empty()) {
            return Err(ConfigError::setting(
                "auth.scopes",
                "auth.scopes must list the OAuth scopes the tokens carry (none may be empty)",
            ));
        }
        if let Some(s) = &config.subject
            && s.trim().is_empty()
        {
            return Err(ConfigError::setting(
                "auth.subject",
                "auth.subject is empty: name a user, or leave it out",
            ));
        }
        let token_url = checked_url(
            "auth.token_url",
            config.token_url.as_deref().unwrap_or(TOKEN_URL),
        )?;
        let max_subjects = config.max_subjects.unwrap_or(DEFAULT_MAX_SUBJECTS);
        within("auth.max_subjects", max_subjects, 1..=1_000_000)?;
        let refresh_ahead = config.refresh_ahead.unwrap_or(DEFAULT_REFRESH_AHEAD);
        duration_within(
            "auth.refresh_ahead",
            refresh_ahead,
            Duration::ZERO..=Duration::from_secs(1800),
        )?;
        let key = match (&config.key_file, &config.key) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::setting(
                    "auth.key",
                    "auth.key and auth.key_file are both set: give one",
                ));
            }
            (Some(path), None) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError::setting(
                        "auth.key_file",
                        format!("auth.key_file {}: {e}", path.display()),
                    )
                })?;
                Some(KeyFile::from_json(
                    &SecretString::from(text),
                    "auth.key_file",
                )?)
            }
            (None, Some(json)) => Some(KeyFile::from_json(json, "auth.key")?),
            (None, None) => None,
        };
        let signer: Arc<dyn Signer> = match key {
            Some(key) => {
                if let Some(email) = &config.service_account
                    && email != key.email()
                {
                    return Err(ConfigError::setting(
                        "auth.service_account",
                        format!(
                            "auth.service_account {email:?} is not the key's client_email {:?}",
                            key.email()
                        ),
                    ));
                }
                Arc::new(key)
            }
            None => {
                let email = config
                    .service_account
                    .as_deref()
                    .filter(|e| e.contains('@'))
                    .ok_or_else(|| {
                        ConfigError::setting(
                            "auth.service_account",
                            "auth.service_account (an email) is required without a key: keyless signing signs as that account",
                        )
                    })?;
                let iam_url =
                    checked_url("auth.iam_url", config.iam_url.as_deref().unwrap_or(IAM_URL))?;
                let own_token = config.own_token.clone().or_else(|| {
                    env(OWN_TOKEN_ENV)
                        .filter(|t| !t.is_empty())
                        .map(SecretString::from)
                });
                let own: Arc<dyn TokenProvider> = match own_token {
                    Some(t) => Arc::new(gluefleet_core::auth::Fixed::bearer(&t)),
                    None => Arc::new(crate::adc::Google::new(&[CLOUD_PLATFORM_SCOPE])?),
                };
                Arc::new(Keyless::new(email, &iam_url, http.clone(), own))
            }
        };
        Ok(Self::with_signer(
            signer,
            &config.scopes,
            &token_url,
            config.subject.clone(),
            http,
            max_subjects,
            refresh_ahead,
        ))
    }

    /// A provider over any [`Signer`] (the config's checks are the caller's).
    pub fn with_signer(
        signer: Arc<dyn Signer>,
        scopes: &[String],
        token_url: &str,
        default_subject: Option<String>,
        http: reqwest::Client,
        max_subjects: usize,
        refresh_ahead: Duration,
    ) -> Self {
        Self {
            signer,
            scope: scopes.join(" "),
            token_url: token_url.to_owned(),
            default_subject,
            edge: Edge::new(http),
            cache: SubjectCache::new(max_subjects, refresh_ahead),
            fetches: AtomicU64::new(0),
        }
    }

    /// Token requests made so far (each one a token for one subject).
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// Subjects whose tokens are held now.
    pub fn subjects_held(&self) -> usize {
        self.cache.len()
    }

    fn claims(&self, subject: &str) -> Result<Claims, AuthError> {
        let iat = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| AuthError::permanent(format!("the clock is before 1970: {e}")))?
            .as_secs();
        Ok(Claims {
            iss: self.signer.email().to_owned(),
            sub: subject.to_owned(),
            scope: self.scope.clone(),
            aud: self.token_url.clone(),
            iat,
            exp: iat + ASSERTION_LIFETIME,
        })
    }

    /// One token for `subject`, and how long it lives.
    async fn fetch(
        &self,
        subject: &str,
        generation: u64,
    ) -> Result<(Credential, Duration), AuthError> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let assertion = self.signer.sign(&self.claims(subject)?).await?;
        let request = self
            .edge
            .request(http::Method::POST, &self.token_url)
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", assertion.as_str()),
            ]);
        let answer = self
            .edge
            .send(Outgoing {
                what: format!("token endpoint (as {subject})"),
                request,
                credential: None,
                timeout: TOKEN_TIMEOUT,
            })
            .await
            .map_err(|e| {
                if e.is_permanent() {
                    AuthError::permanent(e.to_string())
                } else {
                    AuthError::transient(e.to_string())
                }
            })?;
        if answer.status >= 500 || answer.status == 429 {
            return Err(AuthError::transient(format!(
                "token endpoint answered {} for {subject}",
                answer.status
            )));
        }
        if !answer.is_success() {
            return Err(AuthError::permanent(self.refusal(
                subject,
                &answer.body,
                answer.status,
            )));
        }
        let token: TokenAnswer = serde_json::from_str(&answer.body).map_err(|e| {
            AuthError::permanent(format!(
                "token endpoint answered something that is not a token for {subject}: {e}"
            ))
        })?;
        if let Some(t) = &token.token_type
            && !t.eq_ignore_ascii_case("bearer")
        {
            return Err(AuthError::permanent(format!(
                "token endpoint gave a {t:?} token for {subject}, not a Bearer token"
            )));
        }
        let lifetime = Duration::from_secs(token.expires_in.unwrap_or(ASSERTION_LIFETIME).max(1));
        let credential = Credential::new(
            http::header::AUTHORIZATION,
            SecretString::from(format!("Bearer {}", token.access_token.expose_secret())),
            generation,
        )
        .with_subject(subject);
        Ok((credential, lifetime))
    }

    /// The message of a refused grant: who, why, and what to fix.
    fn refusal(&self, subject: &str, body: &str, status: u16) -> String {
        let Ok(e) = serde_json::from_str::<ErrorAnswer>(body) else {
            let start: String = body.trim().chars().take(200).collect();
            return format!(
                "token endpoint refused the assertion for {subject} ({status}): {start}"
            );
        };
        let said = e.error_description.unwrap_or_default();
        let fix = match e.error.as_str() {
            "unauthorized_client" => format!(
                "in the Admin console (Security > API controls > Domain-wide delegation), grant the client id of {} these scopes: {}",
                self.signer.email(),
                self.scope.replace(' ', ", ")
            ),
            "invalid_grant" => format!(
                "check that {subject} is an active user of the domain and that this machine's clock is right"
            ),
            _ => "check the service account and [auth] settings".to_owned(),
        };
        format!(
            "token endpoint refused delegation as {subject}: {} ({said}); {fix}",
            e.error
        )
    }
}

#[async_trait]
impl TokenProvider for Delegated {
    async fn credential(&self) -> Result<Credential, AuthError> {
        match &self.default_subject {
            Some(s) => self.credential_for(s).await,
            None => Err(AuthError::permanent(
                "[auth] google_delegated has no default subject: set auth.subject, or name a subject in every route",
            )),
        }
    }

    async fn credential_for(&self, subject: &str) -> Result<Credential, AuthError> {
        let subject = subject.trim();
        if subject.is_empty() {
            return Err(AuthError::permanent(
                "the route's subject rendered empty: delegation needs a user to act as",
            ));
        }
        self.cache
            .get(subject, |generation| self.fetch(subject, generation))
            .await
    }

    fn acts_as_subjects(&self) -> bool {
        true
    }

    fn invalidate(&self, stale: &Credential) {
        if let Some(subject) = stale.subject() {
            self.cache.invalidate(subject, stale.generation());
        }
    }

    fn fetches(&self) -> Option<u64> {
        Some(Delegated::fetches(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml_text: &str) -> DelegationConfig {
        toml::from_str(toml_text).expect("config")
    }

    fn build(toml_text: &str) -> Result<Delegated, ConfigError> {
        Delegated::new(&config(toml_text), reqwest::Client::new(), &|_| None)
    }

    #[test]
    fn bad_config_names_the_setting() {
        let e = build("scopes = []\nservice_account = \"a@b\"").expect_err("no scopes");
        assert_eq!(e.setting_name(), Some("auth.scopes"), "{e}");
        let e = build("scopes = [\"s\"]").expect_err("keyless without an account");
        assert_eq!(e.setting_name(), Some("auth.service_account"), "{e}");
        let e = build(
            "scopes = [\"s\"]\nservice_account = \"a@b\"\ntoken_url = \"http://evil.example/t\"",
        )
        .expect_err("plain http");
        assert_eq!(e.setting_name(), Some("auth.token_url"), "{e}");
        let e = build(
            "scopes = [\"s\"]\nservice_account = \"a@b\"\nown_token = \"t\"\nmax_subjects = 0",
        )
        .expect_err("zero subjects");
        assert_eq!(e.setting_name(), Some("auth.max_subjects"), "{e}");
        let e = build("scopes = [\"s\"]\nkey = \"{}\"").expect_err("empty key");
        assert_eq!(e.setting_name(), Some("auth.key"), "{e}");
        let e = build("scopes = [\"s\"]\nkey_file = \"/nonexistent/key.json\"")
            .expect_err("missing file");
        assert_eq!(e.setting_name(), Some("auth.key_file"), "{e}");
        assert!(
            toml::from_str::<DelegationConfig>("scopes = [\"s\"]\nsubjet = \"x\"").is_err(),
            "a misspelt key is refused"
        );
    }

    #[tokio::test]
    async fn without_a_default_subject_credential_says_routes_must_name_one() {
        let p = build("scopes = [\"s\"]\nservice_account = \"a@b\"\nown_token = \"t\"")
            .expect("provider");
        assert!(p.acts_as_subjects());
        let e = p.credential().await.expect_err("no subject");
        assert!(!e.is_transient());
        assert!(e.to_string().contains("auth.subject"), "{e}");
        assert_eq!(p.fetches(), 0, "nothing was asked of the endpoint");
    }
}
