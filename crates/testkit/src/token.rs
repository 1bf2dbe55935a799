//! A small OAuth 2.0 token endpoint (client credentials grant, RFC 6749
//! §4.4) whose tokens really expire.
//!
//! Credential handling is only tested when tokens run out during a run: the
//! worker must fetch a new one before the old one is refused, once per
//! expiry and not once per task. [`TokenServer`] issues short-lived tokens,
//! counts every token request, and hands out a [`TokenVerifier`] that a
//! target (an [`HttpTarget`](crate::http_target::HttpTarget) rule, say) uses
//! to refuse a missing, unknown or expired token, judged by this server's
//! clock as a real authorization server would.
//!
//! The contract, where RFC 6749 leaves a choice:
//!
//! * `POST /oauth2/token`, form-encoded, `grant_type=client_credentials`;
//!   the client authenticates with HTTP Basic (id and secret
//!   form-urlencoded, §2.3.1) or with `client_id` and `client_secret` in the
//!   body.
//! * Success: `200 {"access_token", "token_type": "Bearer", "expires_in"}`
//!   with `Cache-Control: no-store`. Tokens are `tok-N`, numbered from 1.
//! * Errors: `400 unsupported_grant_type` or `invalid_request`,
//!   `401 invalid_client`, each as `{"error", "error_description"}`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::response::Response;

use crate::TestkitError;
use crate::http_target::{LoggedRequest, Reply, answer_logged, lock};
use crate::server::LocalServer;

/// The path of the token endpoint.
const TOKEN_PATH: &str = "/oauth2/token";

/// A token the server handed out.
#[derive(Clone, Debug)]
pub struct IssuedToken {
    /// The access token, without `Bearer `.
    pub token: String,
    /// When the token request arrived (the token's life starts here).
    pub at: Instant,
}

/// What a [`TokenVerifier`] thinks of an `Authorization` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenCheck {
    /// A token this server issued, still within its lifetime.
    Valid,
    /// A token this server issued whose lifetime is over.
    Expired,
    /// A bearer token this server never issued.
    Unknown,
    /// No `Authorization: Bearer …` header.
    Missing,
}

struct Shared {
    client_id: String,
    client_secret: String,
    lifetime: Duration,
    issued: Mutex<Vec<IssuedToken>>,
    /// Token → when it was issued, for the verifier.
    by_token: Mutex<HashMap<String, Instant>>,
    requests: Mutex<Vec<LoggedRequest>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("client_id", &self.client_id)
            .field("lifetime", &self.lifetime)
            .field("issued", &lock(&self.issued).len())
            .field("requests", &lock(&self.requests).len())
            .finish_non_exhaustive()
    }
}

/// Judges bearer tokens by what a [`TokenServer`] issued; cheap to clone
/// into a target's rule.
#[derive(Clone, Debug)]
pub struct TokenVerifier {
    shared: Arc<Shared>,
}

impl TokenVerifier {
    /// Checks an `Authorization` header value.
    pub fn check(&self, authorization: Option<&str>) -> TokenCheck {
        let Some(token) = authorization.and_then(|h| {
            let (scheme, token) = h.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        }) else {
            return TokenCheck::Missing;
        };
        match lock(&self.shared.by_token).get(token) {
            None => TokenCheck::Unknown,
            Some(at) if at.elapsed() < self.shared.lifetime => TokenCheck::Valid,
            Some(_) => TokenCheck::Expired,
        }
    }

    /// Checks the `Authorization` header of a request a target logged.
    pub fn check_request(&self, request: &LoggedRequest) -> TokenCheck {
        self.check(request.headers.get("authorization").map(String::as_str))
    }
}

/// A local OAuth 2.0 token endpoint. Stops on drop.
#[derive(Debug)]
pub struct TokenServer {
    shared: Arc<Shared>,
    server: LocalServer,
}

impl TokenServer {
    /// Starts on a free port of 127.0.0.1, accepting `client_id` with
    /// `client_secret` and issuing tokens that live `lifetime` (sent as
    /// `expires_in`, in whole seconds, at least 1).
    pub async fn start(
        client_id: &str,
        client_secret: &str,
        lifetime: Duration,
    ) -> Result<Self, TestkitError> {
        // expires_in is whole seconds: the server's own expiry must match it.
        let lifetime = Duration::from_secs(lifetime.as_secs().max(1));
        let shared = Arc::new(Shared {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            lifetime,
            issued: Mutex::default(),
            by_token: Mutex::default(),
            requests: Mutex::default(),
        });
        let state = shared.clone();
        let server = LocalServer::start("the token endpoint", move |_| {
            Router::new().fallback(handle).with_state(state)
        })
        .await?;
        Ok(Self { shared, server })
    }

    /// The token endpoint's URL, for `[auth] token_url`.
    pub fn token_url(&self) -> String {
        format!("http://{}{TOKEN_PATH}", self.server.addr())
    }

    /// The lifetime of each token.
    pub fn lifetime(&self) -> Duration {
        self.shared.lifetime
    }

    /// Every token issued so far, in order.
    pub fn issued(&self) -> Vec<IssuedToken> {
        lock(&self.shared.issued).clone()
    }

    /// Every request to the server so far (granted or refused), in order.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// A verifier for the tokens of this server.
    pub fn verifier(&self) -> TokenVerifier {
        TokenVerifier {
            shared: self.shared.clone(),
        }
    }
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    answer_logged(request, &shared.requests, |logged| token(&shared, logged)).await
}

fn token(shared: &Shared, request: &LoggedRequest) -> Reply {
    let path = request.path.split('?').next().unwrap_or_default();
    if path != TOKEN_PATH {
        return Reply::status(404).body(r#"{"error":"not_found"}"#);
    }
    if request.method != "POST" {
        return oauth_error(400, "invalid_request", "use POST");
    }
    let params: HashMap<String, String> = url::form_urlencoded::parse(request.body.as_bytes())
        .into_owned()
        .collect();
    if params.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return oauth_error(
            400,
            "unsupported_grant_type",
            "only client_credentials is supported",
        );
    }
    let (id, secret) = request.basic_credentials().unwrap_or_else(|| {
        (
            params.get("client_id").cloned().unwrap_or_default(),
            params.get("client_secret").cloned().unwrap_or_default(),
        )
    });
    if id != shared.client_id || secret != shared.client_secret {
        return oauth_error(401, "invalid_client", "unknown client or wrong secret");
    }
    let mut issued = lock(&shared.issued);
    let token = format!("tok-{}", issued.len() + 1);
    let at = Instant::now();
    lock(&shared.by_token).insert(token.clone(), at);
    issued.push(IssuedToken {
        token: token.clone(),
        at,
    });
    let body = serde_json::json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": shared.lifetime.as_secs(),
    });
    Reply::status(200)
        .header("cache-control", "no-store")
        .body(body.to_string())
}

fn oauth_error(status: u16, error: &str, description: &str) -> Reply {
    let body = serde_json::json!({ "error": error, "error_description": description });
    Reply::status(status).body(body.to_string())
}
