//! Google credentials (Application Default Credentials) as a
//! [`TokenProvider`]: the metadata server on Cloud Run, a key file or
//! `gcloud auth application-default login` elsewhere. `google-cloud-auth`
//! caches and refreshes the token itself.

use async_trait::async_trait;
use gluefleet_core::auth::{AuthError, Credential, TOKEN_TIMEOUT, TokenProvider};
use google_cloud_auth::credentials::{Builder, CacheableResource, Credentials};
use secrecy::SecretString;
use std::sync::Mutex;

/// ADC with the given scopes.
#[derive(Debug)]
pub struct Google {
    credentials: Credentials,
    last: Mutex<Option<(String, u64)>>,
}

impl Google {
    /// ADC for `scopes` (e.g. `https://www.googleapis.com/auth/datastore`).
    pub fn new(scopes: &[&str]) -> Result<Self, gluefleet_core::ConfigError> {
        let credentials = Builder::default()
            .with_scopes(scopes.iter().map(|s| (*s).to_owned()))
            .build()
            .map_err(|e| format!("Google Application Default Credentials: {e}"))?;
        Ok(Self {
            credentials,
            last: Mutex::new(None),
        })
    }
}

#[async_trait]
impl TokenProvider for Google {
    async fn credential(&self) -> Result<Credential, AuthError> {
        // The metadata server or token endpoint may hang: bound the wait.
        let fetched = tokio::time::timeout(
            TOKEN_TIMEOUT,
            self.credentials.headers(http::Extensions::new()),
        )
        .await
        .map_err(|_| {
            AuthError::transient(format!(
                "Google credentials: no answer within {:?}",
                TOKEN_TIMEOUT
            ))
        })?;
        let headers = match fetched {
            Ok(CacheableResource::New { data, .. }) => data,
            Ok(CacheableResource::NotModified) => {
                return Err(AuthError::transient(
                    "Google credentials answered 'not modified' without a cached token",
                ));
            }
            Err(e) if e.is_transient() => {
                return Err(AuthError::transient(format!("Google credentials: {e}")));
            }
            Err(e) => return Err(AuthError::permanent(format!("Google credentials: {e}"))),
        };
        let value = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| AuthError::permanent("Google credentials gave no Authorization header"))?
            .to_owned();
        // Number the tokens so invalidation can tell them apart.
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let generation = match last.as_ref() {
            Some((v, g)) if *v == value => *g,
            Some((_, g)) => g + 1,
            None => 1,
        };
        *last = Some((value.clone(), generation));
        Ok(Credential::new(
            http::header::AUTHORIZATION,
            SecretString::from(value),
            generation,
        ))
    }

    /// `google-cloud-auth` refreshes ahead of expiry on its own; a refused
    /// token is retried once with whatever it gives next.
    fn invalidate(&self, _stale: &Credential) {}
}
