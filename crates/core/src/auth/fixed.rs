//! Credentials that never change: a bearer token, Basic, an API key.
//!
//! "Refreshing" one cannot help, so after a 401 the retry fails the same way
//! and the message is dead-lettered with the target's answer.

use super::{AuthError, Credential, TokenProvider};
use async_trait::async_trait;
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};

/// A provider that always gives the same header.
#[derive(Debug)]
pub struct Fixed {
    credential: Credential,
}

impl Fixed {
    /// `Authorization: Bearer <token>`.
    pub fn bearer(token: &SecretString) -> Self {
        let value = SecretString::from(format!("Bearer {}", token.expose_secret()));
        Self {
            credential: Credential::new(http::header::AUTHORIZATION, value, 0),
        }
    }

    /// `Authorization: Basic base64(user:password)`.
    pub fn basic(username: &str, password: &SecretString) -> Self {
        let pair = format!("{username}:{}", password.expose_secret());
        let value = SecretString::from(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        ));
        Self {
            credential: Credential::new(http::header::AUTHORIZATION, value, 0),
        }
    }

    /// `<header>: <key>`.
    pub fn api_key(header: &str, key: SecretString) -> Result<Self, crate::config::ConfigError> {
        let header = http::HeaderName::try_from(header)
            .map_err(|_| format!("auth.header {header:?} is not a valid HTTP header name"))?;
        Ok(Self {
            credential: Credential::new(header, key, 0),
        })
    }
}

#[async_trait]
impl TokenProvider for Fixed {
    async fn credential(&self) -> Result<Credential, AuthError> {
        Ok(self.credential.clone())
    }

    fn invalidate(&self, _stale: &Credential) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn basic_and_api_key_headers() -> Result<(), AuthError> {
        let b = Fixed::basic("svc", &SecretString::from("pw"));
        let c = b.credential().await?;
        assert_eq!(c.header_name(), http::header::AUTHORIZATION);
        assert_eq!(
            c.header_value().ok(),
            http::HeaderValue::from_str("Basic c3ZjOnB3").ok()
        );
        let k =
            Fixed::api_key("X-Api-Key", SecretString::from("k1")).map_err(AuthError::permanent)?;
        assert_eq!(k.credential().await?.header_name().as_str(), "x-api-key");
        assert!(Fixed::api_key("bad header", SecretString::from("k")).is_err());
        Ok(())
    }
}
