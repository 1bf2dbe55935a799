//! Who signs the delegation assertion: a service-account key ([`KeyFile`])
//! or, with no key anywhere, the IAM Credentials API ([`Keyless`]).
//!
//! Both are by hand rather than through `google-cloud-auth` (1.19): its
//! service-account credentials always set `sub` to the account's own email,
//! with no way to name another user, and its IAM signer calls `signBlob`
//! (not `signJwt`) at an endpoint derived from the universe domain, whose
//! override is crate-private, so it can neither sign a delegation JWT nor
//! be pointed at a test server.

use async_trait::async_trait;
use gluefleet_core::ConfigError;
use gluefleet_core::auth::{AuthError, TOKEN_TIMEOUT, TokenProvider};
use gluefleet_core::http::{Edge, Outgoing};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// The claims of a delegation assertion (RFC 7523, as Google reads them).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// The service account's email.
    pub iss: String,
    /// The user acted as.
    pub sub: String,
    /// Scopes, space-separated.
    pub scope: String,
    /// The token endpoint.
    pub aud: String,
    /// Issued at (Unix seconds).
    pub iat: u64,
    /// Expires at (Unix seconds), at most an hour after `iat`.
    pub exp: u64,
}

/// Signs assertions as one service account.
#[async_trait]
pub trait Signer: Send + Sync + fmt::Debug {
    /// The service account's email (`iss`).
    fn email(&self) -> &str;
    /// The signed JWT of `claims`.
    async fn sign(&self, claims: &Claims) -> Result<String, AuthError>;
}

/// A service-account key file, the JSON Google hands out (`client_email`,
/// `private_key`, `private_key_id`).
pub struct KeyFile {
    email: String,
    key_id: Option<String>,
    key: jsonwebtoken::EncodingKey,
}

impl fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyFile")
            .field("email", &self.email)
            .field("key_id", &self.key_id)
            .field("key", &"[REDACTED]")
            .finish()
    }
}

#[derive(Deserialize)]
struct KeyJson {
    #[serde(default)]
    client_email: Option<String>,
    #[serde(default)]
    private_key: Option<SecretString>,
    #[serde(default)]
    private_key_id: Option<String>,
}

impl KeyFile {
    /// Reads a key file's JSON; `setting` names where it came from in errors.
    pub fn from_json(json: &SecretString, setting: &str) -> Result<Self, ConfigError> {
        let parsed: KeyJson = serde_json::from_str(json.expose_secret()).map_err(|e| {
            // serde_json's message names a line and column, never the content.
            ConfigError::setting(
                setting,
                format!("{setting} is not a service-account key file (JSON): {e}"),
            )
        })?;
        let email = parsed
            .client_email
            .filter(|e| !e.is_empty())
            .ok_or_else(|| {
                ConfigError::setting(setting, format!("{setting} has no client_email"))
            })?;
        let pem = parsed.private_key.ok_or_else(|| {
            ConfigError::setting(setting, format!("{setting} has no private_key"))
        })?;
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(pem.expose_secret().as_bytes()).map_err(
            |e| {
                ConfigError::setting(
                    setting,
                    format!("{setting}: private_key is not an RSA key in PEM: {e}"),
                )
            },
        )?;
        Ok(Self {
            email,
            key_id: parsed.private_key_id.filter(|k| !k.is_empty()),
            key,
        })
    }
}

#[async_trait]
impl Signer for KeyFile {
    fn email(&self) -> &str {
        &self.email
    }

    async fn sign(&self, claims: &Claims) -> Result<String, AuthError> {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = self.key_id.clone();
        jsonwebtoken::encode(&header, claims, &self.key)
            .map_err(|e| AuthError::permanent(format!("signing the delegation assertion: {e}")))
    }
}

/// The IAM Credentials API's `signJwt`, called with the runtime's own
/// credential (Cloud Run's service account, which needs
/// `roles/iam.serviceAccountTokenCreator` on the account it signs as).
#[derive(Debug)]
pub struct Keyless {
    email: String,
    url: String,
    edge: Edge,
    own: Arc<dyn TokenProvider>,
}

#[derive(Deserialize)]
struct SignAnswer {
    #[serde(rename = "signedJwt")]
    signed_jwt: String,
}

impl Keyless {
    /// Signs as `email` through `{iam_url}/v1/projects/-/serviceAccounts/{email}:signJwt`,
    /// authorised by `own`.
    pub fn new(
        email: &str,
        iam_url: &str,
        http: reqwest::Client,
        own: Arc<dyn TokenProvider>,
    ) -> Self {
        Self {
            email: email.to_owned(),
            url: format!(
                "{}/v1/projects/-/serviceAccounts/{email}:signJwt",
                iam_url.trim_end_matches('/')
            ),
            edge: Edge::new(http),
            own,
        }
    }

    /// The `signJwt` URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `signJwt` requests sent so far.
    pub fn requests(&self) -> u64 {
        self.edge.requests()
    }

    async fn sign_once(&self, payload: &str) -> Result<Result<String, AuthError>, AuthError> {
        let own = self.own.credential().await?;
        let request = self
            .edge
            .request(http::Method::POST, &self.url)
            .json(&serde_json::json!({ "payload": payload }));
        let answer = self
            .edge
            .send(Outgoing {
                what: format!("IAM signJwt as {}", self.email),
                request,
                credential: Some(&own),
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
        if answer.status == 401 {
            // The runtime's own token was refused: one refresh, one retry.
            self.own.invalidate(&own);
            return Ok(Err(AuthError::permanent(format!(
                "IAM signJwt refused the runtime's own credential (401): {}",
                crate::error::GoogleError::of(&answer)
            ))));
        }
        if !answer.is_success() {
            let e = crate::error::classify(&answer);
            let hint = if answer.status == 403 {
                format!(
                    "; the runtime's service account needs roles/iam.serviceAccountTokenCreator on {}",
                    self.email
                )
            } else {
                String::new()
            };
            return Err(if e.is_permanent() {
                AuthError::permanent(format!("{e}{hint}"))
            } else {
                AuthError::transient(e.to_string())
            });
        }
        let signed: SignAnswer = serde_json::from_str(&answer.body).map_err(|e| {
            AuthError::transient(format!(
                "IAM signJwt answered something that is not a signed JWT: {e}"
            ))
        })?;
        Ok(Ok(signed.signed_jwt))
    }
}

#[async_trait]
impl Signer for Keyless {
    fn email(&self) -> &str {
        &self.email
    }

    async fn sign(&self, claims: &Claims) -> Result<String, AuthError> {
        let payload = serde_json::to_string(claims)
            .map_err(|e| AuthError::permanent(format!("encoding the claims: {e}")))?;
        // The wait for the runtime's own token is bounded as well.
        let attempt = || async {
            tokio::time::timeout(TOKEN_TIMEOUT * 2, self.sign_once(&payload))
                .await
                .unwrap_or_else(|_| {
                    Err(AuthError::transient(format!(
                        "IAM signJwt: no answer within {:?}",
                        TOKEN_TIMEOUT * 2
                    )))
                })
        };
        match attempt().await? {
            Ok(jwt) => Ok(jwt),
            Err(_refused) => attempt().await?,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gluefleet_testkit::salesforce::{TEST_PRIVATE_KEY_PEM, TEST_PUBLIC_KEY_PEM};

    pub(crate) fn key_json(email: &str, kid: &str) -> SecretString {
        SecretString::from(
            serde_json::json!({
                "type": "service_account",
                "client_email": email,
                "private_key_id": kid,
                "private_key": TEST_PRIVATE_KEY_PEM,
            })
            .to_string(),
        )
    }

    #[tokio::test]
    async fn a_key_file_signs_rs256_with_its_key_id() {
        let signer = KeyFile::from_json(
            &key_json("svc@p.iam.gserviceaccount.com", "kid-1"),
            "auth.key",
        )
        .expect("key");
        assert_eq!(signer.email(), "svc@p.iam.gserviceaccount.com");
        let claims = Claims {
            iss: signer.email().to_owned(),
            sub: "ann@example.com".into(),
            scope: "https://www.googleapis.com/auth/spreadsheets https://www.googleapis.com/auth/gmail.send".into(),
            aud: "https://oauth2.googleapis.com/token".into(),
            iat: 1_700_000_000,
            exp: 1_700_003_600,
        };
        let jwt = signer.sign(&claims).await.expect("signed");
        let header = jsonwebtoken::decode_header(&jwt).expect("header");
        assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
        assert_eq!(header.kid.as_deref(), Some("kid-1"));
        let key = jsonwebtoken::DecodingKey::from_rsa_pem(TEST_PUBLIC_KEY_PEM.as_bytes())
            .expect("public key");
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.validate_exp = false;
        validation.set_audience(&["https://oauth2.googleapis.com/token"]);
        let decoded = jsonwebtoken::decode::<Claims>(&jwt, &key, &validation).expect("verified");
        assert_eq!(decoded.claims, claims);
    }

    #[test]
    fn bad_key_files_name_the_setting_and_keep_the_secret() {
        let bad = |json: &str| {
            KeyFile::from_json(&SecretString::from(json.to_owned()), "auth.key")
                .expect_err("refused")
        };
        let e = bad("not json, hunter2");
        assert_eq!(e.setting_name(), Some("auth.key"), "{e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let e = bad(r#"{"private_key": "x"}"#);
        assert!(e.to_string().contains("client_email"), "{e}");
        let e = bad(r#"{"client_email": "a@b", "private_key": "hunter2"}"#);
        assert!(e.to_string().contains("PEM"), "{e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let shown = format!(
            "{:?}",
            KeyFile::from_json(&key_json("a@b", "k"), "auth.key").expect("key")
        );
        assert!(!shown.contains("PRIVATE"), "{shown}");
    }
}
