//! OAuth 2.0 client credentials (RFC 6749 §4.4) through the `oauth2` crate,
//! with a cache that refreshes ahead of expiry and one refresh at a time.
//!
//! - Fast path: a cached token that is not near expiry is returned without
//!   locking anything async.
//! - Refresh ahead: within `refresh_ahead` of expiry (default 60 s, at most
//!   a tenth of the token's life) the first caller refreshes; others keep
//!   using the still-valid token instead of queueing behind it. A tenth, so
//!   a short-lived token costs one fetch per lifetime, not two.
//! - Single flight: when no valid token is cached, callers queue on one lock
//!   and the first one fetches; the rest find the fresh token when they get in.

use super::{AuthError, Credential, TokenProvider};
use async_trait::async_trait;
use oauth2::basic::{
    BasicErrorResponse, BasicErrorResponseType, BasicRevocationErrorResponse,
    BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthType, ClientId, ClientSecret, EndpointNotSet, ExtraTokenFields, RequestTokenError, Scope,
    StandardRevocableToken, StandardTokenResponse, TokenResponse, TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::time::Instant;

/// `[auth]` with `kind = "oauth2_client_credentials"`.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientCredentialsConfig {
    /// The token endpoint.
    pub token_url: String,
    /// Client id.
    pub client_id: String,
    /// Client secret.
    #[schemars(with = "String")]
    pub client_secret: SecretString,
    /// Scopes to ask for (default none).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Send the client credentials in the body instead of Basic auth
    /// (default false: Basic, as RFC 6749 prefers).
    #[serde(default)]
    pub credentials_in_body: bool,
    /// Refresh this long before expiry (default 60 s).
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub refresh_ahead: Option<Duration>,
    /// Lifetime assumed when the server gives no `expires_in` (default 5 min).
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub default_lifetime: Option<Duration>,
}

/// Fields some servers add to the token response: Salesforce's
/// `instance_url`, where API calls must go.
#[derive(Clone, Debug, Default, serde::Deserialize, serde::Serialize)]
struct Extra {
    #[serde(default)]
    instance_url: Option<String>,
}

impl ExtraTokenFields for Extra {}

type Client = oauth2::Client<
    BasicErrorResponse,
    StandardTokenResponse<Extra, BasicTokenType>,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
>;

#[derive(Clone, Debug)]
struct Cached {
    credential: Credential,
    refresh_at: Instant,
    expires_at: Instant,
}

/// The client credentials provider.
#[derive(Debug)]
pub struct ClientCredentials {
    config: ClientCredentialsConfig,
    token_url: TokenUrl,
    http: reqwest::Client,
    cache: RwLock<Option<Cached>>,
    refresh: tokio::sync::Mutex<()>,
    generation: std::sync::atomic::AtomicU64,
    fetches: Arc<std::sync::atomic::AtomicU64>,
}

impl ClientCredentials {
    /// A provider for `config`, fetching tokens with `http`.
    pub fn new(
        config: ClientCredentialsConfig,
        http: reqwest::Client,
    ) -> Result<Self, crate::config::ConfigError> {
        let token_url = TokenUrl::new(config.token_url.clone())
            .map_err(|e| format!("auth.token_url {:?}: {e}", config.token_url))?;
        // The client secret goes to this URL: plain http only to this machine.
        if !super::is_safe_token_url(&config.token_url) {
            return Err(format!(
                "auth.token_url {:?} must be https (plain http is allowed only to localhost)",
                config.token_url
            )
            .into());
        }
        Ok(Self {
            config,
            token_url,
            http,
            cache: RwLock::new(None),
            refresh: tokio::sync::Mutex::new(()),
            generation: std::sync::atomic::AtomicU64::new(0),
            fetches: Arc::default(),
        })
    }

    /// How many times a token was fetched (for tests and metrics).
    pub fn fetches(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn cached(&self) -> Option<Cached> {
        self.cache.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    async fn fetch(&self) -> Result<Cached, AuthError> {
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut client = Client::new(ClientId::new(self.config.client_id.clone()))
            .set_client_secret(ClientSecret::new(
                self.config.client_secret.expose_secret().to_owned(),
            ))
            .set_token_uri(self.token_url.clone());
        if self.config.credentials_in_body {
            client = client.set_auth_type(AuthType::RequestBody);
        }
        let http = self.http.clone();
        let send = move |req: oauth2::HttpRequest| {
            let http = http.clone();
            async move { send(&http, req).await }
        };
        let started = Instant::now();
        let token = client
            .exchange_client_credentials()
            .add_scopes(self.config.scopes.iter().cloned().map(Scope::new))
            .request_async(&send)
            .await
            .map_err(classify)?;
        let lifetime = token.expires_in().unwrap_or(
            self.config
                .default_lifetime
                .unwrap_or(Duration::from_secs(300)),
        );
        let ahead = self
            .config
            .refresh_ahead
            .unwrap_or(Duration::from_secs(60))
            .min(lifetime / 10);
        let generation = self
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        let value = SecretString::from(format!("Bearer {}", token.access_token().secret()));
        let endpoint = super::checked_endpoint(token.extra_fields().instance_url.clone())?;
        Ok(Cached {
            credential: Credential::new(http::header::AUTHORIZATION, value, generation)
                .with_endpoint(endpoint),
            refresh_at: started + lifetime - ahead,
            expires_at: started + lifetime,
        })
    }
}

/// Sends the token request with the shared reqwest client, within
/// [`TOKEN_TIMEOUT`](super::TOKEN_TIMEOUT). A 5xx or 429 from the token
/// endpoint, or no answer in time, is returned as an error so it classifies
/// as transient.
async fn send(
    http: &reqwest::Client,
    req: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, TokenHttpError> {
    let mut req = reqwest::Request::try_from(req).map_err(|e| TokenHttpError(e.to_string()))?;
    *req.timeout_mut() = Some(super::TOKEN_TIMEOUT);
    let resp = http
        .execute(req)
        .await
        .map_err(|e| TokenHttpError(e.to_string()))?;
    let status = resp.status();
    if status.is_server_error() || status.as_u16() == 429 {
        return Err(TokenHttpError(format!(
            "token endpoint answered HTTP {status}"
        )));
    }
    let mut builder = http::Response::builder().status(status);
    for (k, v) in resp.headers() {
        builder = builder.header(k, v);
    }
    let body = resp
        .bytes()
        .await
        .map_err(|e| TokenHttpError(e.to_string()))?;
    builder
        .body(body.to_vec())
        .map_err(|e| TokenHttpError(e.to_string()))
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct TokenHttpError(String);

fn classify<RE: std::error::Error + 'static>(
    e: RequestTokenError<RE, oauth2::StandardErrorResponse<BasicErrorResponseType>>,
) -> AuthError {
    match e {
        RequestTokenError::ServerResponse(r) => {
            let detail = r
                .error_description()
                .map(|d| format!(": {d}"))
                .unwrap_or_default();
            AuthError::permanent(format!(
                "token endpoint refused the client: {}{detail}",
                r.error()
            ))
        }
        RequestTokenError::Request(e) => AuthError::transient(format!("token request failed: {e}")),
        RequestTokenError::Parse(e, _) => AuthError::permanent(format!(
            "token endpoint answered something that is not a token response: {e}"
        )),
        RequestTokenError::Other(e) => AuthError::transient(format!("token request failed: {e}")),
    }
}

#[async_trait]
impl TokenProvider for ClientCredentials {
    async fn credential(&self) -> Result<Credential, AuthError> {
        let now = Instant::now();
        let cached = self.cached();
        if let Some(c) = &cached {
            if now < c.refresh_at {
                return Ok(c.credential.clone());
            }
            if now < c.expires_at {
                // Near expiry: one caller refreshes, the others use what we have.
                let Ok(_guard) = self.refresh.try_lock() else {
                    return Ok(c.credential.clone());
                };
                return match self.fetch().await {
                    Ok(fresh) => Ok(self.store(fresh)),
                    // Refresh ahead failed: the old token is still good.
                    Err(_) => Ok(c.credential.clone()),
                };
            }
        }
        let _guard = self.refresh.lock().await;
        // Someone may have refreshed while we queued.
        if let Some(c) = self.cached()
            && Instant::now() < c.expires_at
            && cached
                .as_ref()
                .is_none_or(|old| old.credential.generation() != c.credential.generation())
        {
            return Ok(c.credential);
        }
        let fresh = self.fetch().await?;
        Ok(self.store(fresh))
    }

    fn invalidate(&self, stale: &Credential) {
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        if cache
            .as_ref()
            .is_some_and(|c| c.credential.generation() == stale.generation())
        {
            *cache = None;
        }
    }

    fn fetches(&self) -> Option<u64> {
        // One generation per token fetched.
        Some(self.generation.load(std::sync::atomic::Ordering::Relaxed))
    }
}

impl ClientCredentials {
    fn store(&self, fresh: Cached) -> Credential {
        let credential = fresh.credential.clone();
        *self.cache.write().unwrap_or_else(|p| p.into_inner()) = Some(fresh);
        credential
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::post;
    use std::sync::atomic::{AtomicU64, Ordering};

    async fn token_server(expires_in: u64, status: u16) -> (String, Arc<AtomicU64>) {
        let hits = Arc::new(AtomicU64::new(0));
        let h = hits.clone();
        let app = Router::new().route(
            "/token",
            post(move |body: String| {
                let h = h.clone();
                async move {
                    let n = h.fetch_add(1, Ordering::SeqCst) + 1;
                    // Slow enough that concurrent callers overlap.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    assert!(body.contains("grant_type=client_credentials"), "{body}");
                    let code = axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::OK);
                    let body = if status == 200 {
                        format!(r#"{{"access_token":"tok-{n}","token_type":"Bearer","expires_in":{expires_in}}}"#)
                    } else {
                        r#"{"error":"invalid_client","error_description":"bad secret"}"#.to_owned()
                    };
                    (code, [("content-type", "application/json")], body)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}/token"), hits)
    }

    fn provider(url: String) -> ClientCredentials {
        let cfg = ClientCredentialsConfig {
            token_url: url,
            client_id: "gluefleet".into(),
            client_secret: SecretString::from("s3cret"),
            scopes: vec!["orders.write".into()],
            credentials_in_body: false,
            refresh_ahead: None,
            default_lifetime: None,
        };
        ClientCredentials::new(cfg, reqwest::Client::new()).expect("valid config")
    }

    #[tokio::test]
    async fn one_fetch_for_many_concurrent_callers() -> Result<(), AuthError> {
        let (url, hits) = token_server(3600, 200).await;
        let p = Arc::new(provider(url));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let p = p.clone();
            tasks.push(tokio::spawn(async move { p.credential().await }));
        }
        let mut generations = std::collections::BTreeSet::new();
        for t in tasks {
            let c = t.await.map_err(|e| AuthError::permanent(e.to_string()))??;
            generations.insert(c.generation());
        }
        assert_eq!(hits.load(Ordering::SeqCst), 1, "single flight");
        assert_eq!(generations.len(), 1);
        Ok(())
    }

    #[tokio::test]
    async fn invalidate_refreshes_once_for_many_refusals() -> Result<(), AuthError> {
        let (url, hits) = token_server(3600, 200).await;
        let p = provider(url);
        let first = p.credential().await?;
        p.invalidate(&first);
        p.invalidate(&first);
        let second = p.credential().await?;
        assert_ne!(first.generation(), second.generation());
        p.invalidate(&first); // stale: must not drop the new token
        let third = p.credential().await?;
        assert_eq!(second.generation(), third.generation());
        assert_eq!(hits.load(Ordering::SeqCst), 2);
        assert_eq!(
            TokenProvider::fetches(&p),
            Some(2),
            "the metric counts what the endpoint saw"
        );
        let header = third
            .header_value()
            .map_err(|e| AuthError::permanent(e.to_string()))?;
        assert_eq!(header.to_str().ok(), Some("Bearer tok-2"));
        Ok(())
    }

    #[tokio::test]
    async fn refused_client_is_permanent_and_5xx_is_transient() {
        let (url, _) = token_server(3600, 401).await;
        let err = provider(url).credential().await.expect_err("refused");
        assert!(!err.is_transient());
        assert!(err.to_string().contains("invalid_client"), "{err}");
        let (url, _) = token_server(3600, 503).await;
        let err = provider(url).credential().await.expect_err("down");
        assert!(err.is_transient(), "{err}");
    }

    #[tokio::test]
    async fn short_lived_tokens_are_refreshed_ahead() -> Result<(), AuthError> {
        // expires_in = 2 s → refresh after 1.8 s (a tenth of the life ahead).
        let (url, hits) = token_server(2, 200).await;
        let p = provider(url);
        let a = p.credential().await?;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let same = p.credential().await?;
        assert_eq!(a.generation(), same.generation(), "not refreshed at 1.1 s");
        tokio::time::sleep(Duration::from_millis(800)).await;
        let b = p.credential().await?;
        assert_ne!(a.generation(), b.generation());
        assert_eq!(hits.load(Ordering::SeqCst), 2);
        Ok(())
    }

    /// A token endpoint whose answers name `instance_url`.
    async fn token_server_naming(instance_url: &str) -> String {
        let body = format!(
            r#"{{"access_token":"tok","token_type":"Bearer","expires_in":3600,"instance_url":"{instance_url}"}}"#
        );
        let app = Router::new().route(
            "/token",
            post(move || {
                let body = body.clone();
                async move { ([("content-type", "application/json")], body) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/token")
    }

    #[tokio::test]
    async fn an_instance_url_in_plain_http_to_another_machine_is_refused() {
        for bad in [
            "http://na1.salesforce.com",
            "http://10.0.0.1:8080",
            "ftp://x",
            "not a url",
        ] {
            let err = provider(token_server_naming(bad).await)
                .credential()
                .await
                .expect_err(bad);
            assert!(!err.is_transient(), "{err}");
            assert!(
                err.to_string().contains("instance_url") && err.to_string().contains(bad),
                "{err}"
            );
        }
        for good in ["https://acme.my.salesforce.com", "http://127.0.0.1:9"] {
            let c = provider(token_server_naming(good).await)
                .credential()
                .await
                .expect(good);
            assert_eq!(c.endpoint(), Some(good));
        }
    }
}
