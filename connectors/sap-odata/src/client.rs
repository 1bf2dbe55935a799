//! One OData service: its own cookie jar (the Gateway session), the CSRF
//! token, JSON in and out, `sap-client`. Sending, transport errors and
//! `Retry-After` are the core's [`Edge`].
//!
//! Writes carry the token and the session cookies. A 403 with
//! `X-CSRF-Token: Required` (the token or session expired) fetches a new
//! token once and sends again; reads need no token.

use crate::config::{Target, Version};
use gluefleet_core::auth::Credential;
use gluefleet_core::http::{Answer, Edge, Outgoing, builder};
use gluefleet_core::{ConfigError, ConnectorError};
use serde_json::Value;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A request body.
#[derive(Debug)]
pub enum Body {
    /// JSON.
    Json(Value),
    /// Raw text with its content type (multipart `$batch`).
    Raw(String, String),
}

/// The SAP OData client: one service, one Gateway session (cookie jar and
/// CSRF token).
#[derive(Debug)]
pub struct Client {
    edge: Edge,
    root: String,
    /// Protocol version.
    pub version: Version,
    sap_client: Option<String>,
    token: Mutex<Option<String>>,
    fetching: tokio::sync::Mutex<()>,
    generation: AtomicU64,
    csrf_fetches: AtomicU64,
}

impl Client {
    /// A client for the target, whose `service_url` has been checked
    /// ([`Target::validate`]).
    pub fn new(target: &Target) -> Result<Self, ConfigError> {
        let root = target.service_url.trim_end_matches('/').to_owned();
        // The CSRF session lives in cookies: a jar of its own, per service.
        let http = gluefleet_core::http::build(builder().cookie_store(true))?;
        Ok(Self {
            edge: Edge::through(http),
            root,
            version: target.version,
            sap_client: target.sap_client.clone(),
            token: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
            csrf_fetches: AtomicU64::new(0),
        })
    }

    /// Requests sent (reads, writes, batches and CSRF token fetches).
    pub fn requests(&self) -> u64 {
        self.edge.requests()
    }

    /// CSRF token fetches (each also one of [`requests`](Self::requests)).
    pub fn csrf_fetches(&self) -> u64 {
        self.csrf_fetches.load(Ordering::Relaxed)
    }

    /// The URL of `path` below the service root, with `sap-client`.
    pub fn url(&self, path: &str) -> String {
        let mut url = format!("{}/{}", self.root, path.trim_start_matches('/'));
        if let Some(c) = &self.sap_client {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str("sap-client=");
            url.push_str(c);
        }
        url
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.edge
            .request(method, self.url(path))
            .header(http::header::ACCEPT, "application/json")
    }

    /// Sends through the edge; a 403 asking for a CSRF token is an
    /// unauthorized error (the caller fetches one), any other answer is
    /// handed back whatever its status.
    async fn send(
        &self,
        what: String,
        request: reqwest::RequestBuilder,
        credential: Option<&Credential>,
        timeout: Duration,
    ) -> Result<Answer, ConnectorError> {
        let answer = self
            .edge
            .send(Outgoing {
                what,
                request,
                credential,
                timeout,
            })
            .await?;
        let csrf_required = answer
            .header("x-csrf-token")
            .is_some_and(|v| v.eq_ignore_ascii_case("required"));
        if answer.status == 403 && csrf_required {
            return Err(ConnectorError::unauthorized(format!(
                "{}: CSRF token required",
                answer.what
            ))
            .with_http_status(403));
        }
        Ok(answer)
    }

    /// One fetch at a time: callers that queued behind a fetch take its
    /// token instead of opening another session.
    async fn fetch_token(
        &self,
        credential: Option<&Credential>,
        seen: u64,
    ) -> Result<String, ConnectorError> {
        let _one = self.fetching.lock().await;
        if self.generation.load(Ordering::Acquire) != seen
            && let Some(t) = self.token.lock().unwrap_or_else(|p| p.into_inner()).clone()
        {
            return Ok(t);
        }
        self.csrf_fetches.fetch_add(1, Ordering::Relaxed);
        let answer = self
            .edge
            .send(Outgoing {
                what: "fetching the CSRF token".into(),
                request: self
                    .request(reqwest::Method::GET, "")
                    .header("x-csrf-token", "Fetch"),
                credential,
                timeout: Duration::from_secs(30),
            })
            .await?;
        if answer.status >= 400 {
            return Err(answer.error());
        }
        let token = answer
            .header("x-csrf-token")
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| ConnectorError::permanent("the service gave no CSRF token"))?;
        *self.token.lock().unwrap_or_else(|p| p.into_inner()) = Some(token.clone());
        self.generation.fetch_add(1, Ordering::Release);
        Ok(token)
    }

    /// GET `path` (no token needed).
    pub async fn read(
        &self,
        credential: Option<&Credential>,
        path: &str,
        timeout: Duration,
    ) -> Result<Answer, ConnectorError> {
        let request = self.request(reqwest::Method::GET, path);
        self.send(format!("GET {path}"), request, credential, timeout)
            .await
    }

    /// A modifying request with the CSRF token; refetches the token once
    /// when the service says it is required.
    pub async fn write(
        &self,
        credential: Option<&Credential>,
        method: &str,
        path: &str,
        body: Option<&Body>,
        if_match: Option<&str>,
        timeout: Duration,
    ) -> Result<Answer, ConnectorError> {
        let what = format!("{method} {path}");
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|_| ConnectorError::permanent(format!("{method} is not an HTTP method")))?;
        for round in 0..2 {
            let seen = self.generation.load(Ordering::Acquire);
            let cached = self.token.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let token = match cached {
                Some(t) if round == 0 => t,
                _ => self.fetch_token(credential, seen).await?,
            };
            let mut req = self
                .request(method.clone(), path)
                .header("x-csrf-token", token);
            if let Some(m) = if_match {
                req = req.header(http::header::IF_MATCH, m);
            }
            if path == "$batch" {
                // Answer every change set even after one failed, so one bad
                // event does not send its neighbours round again.
                req = req.header("prefer", "odata.continue-on-error");
            }
            req = match body {
                Some(Body::Json(v)) => req.json(v),
                Some(Body::Raw(text, ct)) => req
                    .header(http::header::CONTENT_TYPE, ct)
                    .body(text.clone()),
                None => req,
            };
            match self.send(what.clone(), req, credential, timeout).await {
                Err(e) if e.http_status() == Some(403) && e.is_unauthorized() && round == 0 => {
                    *self.token.lock().unwrap_or_else(|p| p.into_inner()) = None;
                }
                other => return other,
            }
        }
        Err(ConnectorError::permanent(format!(
            "{what}: CSRF token refused twice"
        )))
    }
}
