//! One OData service: its own cookie jar (the Gateway session), the CSRF
//! token, JSON in and out, `sap-client`.
//!
//! Writes carry the token and the session cookies. A 403 with
//! `X-CSRF-Token: Required` (the token or session expired) fetches a new
//! token once and sends again; reads need no token.

use crate::config::{Target, Version};
use gluefleet_core::ConnectorError;
use gluefleet_core::auth::Credential;
use gluefleet_core::classify::class_of_reqwest_error;
use gluefleet_core::error::ErrorClass;
use serde_json::Value;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// An answer, whatever its status.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// `ETag` header, if any.
    pub etag: Option<String>,
    /// `Content-Type` header.
    pub content_type: String,
    /// The body as text.
    pub text: String,
    /// The body as JSON (`null` when not JSON).
    pub json: Value,
}

/// A request body.
#[derive(Debug)]
pub enum Body {
    /// JSON.
    Json(Value),
    /// Raw text with its content type (multipart `$batch`).
    Raw(String, String),
}

/// One service.
#[derive(Debug)]
pub struct Session {
    http: reqwest::Client,
    root: String,
    /// Protocol version.
    pub version: Version,
    sap_client: Option<String>,
    token: Mutex<Option<String>>,
    fetching: tokio::sync::Mutex<()>,
    generation: AtomicU64,
    fetches: AtomicU64,
    sent: AtomicU64,
}

impl Session {
    /// A session for the target (validated here).
    pub fn new(target: &Target) -> Result<Self, String> {
        let root = target.service_url.trim_end_matches('/').to_owned();
        let insecure_ok = target.allow_insecure_http;
        if !(root.starts_with("https://") || (insecure_ok && root.starts_with("http://"))) {
            return Err(format!(
                "service_url {root:?} must be https (or set allow_insecure_http = true for a trusted network)"
            ));
        }
        let http = reqwest::Client::builder()
            .user_agent(gluefleet_core::http::USER_AGENT)
            .cookie_store(true)
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"))?;
        Ok(Self {
            http,
            root,
            version: target.version,
            sap_client: target.sap_client.clone(),
            token: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
            fetches: AtomicU64::new(0),
            sent: AtomicU64::new(0),
        })
    }

    /// Requests sent (reads, writes, batches and token fetches).
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// CSRF token fetches.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
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

    fn request(
        &self,
        method: reqwest::Method,
        url: &str,
        credential: Option<&Credential>,
        timeout: Duration,
    ) -> Result<reqwest::RequestBuilder, ConnectorError> {
        let mut req = self
            .http
            .request(method, url)
            .timeout(timeout)
            .header(http::header::ACCEPT, "application/json");
        if let Some(c) = credential {
            req = req.header(c.header_name(), c.header_value()?);
        }
        Ok(req)
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<Answer, ConnectorError> {
        self.sent.fetch_add(1, Ordering::Relaxed);
        let resp = req
            .send()
            .await
            .map_err(|e| match class_of_reqwest_error(&e) {
                ErrorClass::Permanent => {
                    ConnectorError::permanent(format!("{what}: request failed")).with_source(e)
                }
                _ => ConnectorError::transient(format!("{what}: request failed")).with_source(e),
            })?;
        let status = resp.status().as_u16();
        let header = |n: http::HeaderName| {
            resp.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let etag = header(http::header::ETAG);
        let content_type = header(http::header::CONTENT_TYPE).unwrap_or_default();
        let csrf_required = resp
            .headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("required"));
        let text = resp.text().await.unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status == 403 && csrf_required {
            return Err(
                ConnectorError::unauthorized(format!("{what}: CSRF token required"))
                    .with_http_status(403),
            );
        }
        Ok(Answer {
            status,
            etag,
            content_type,
            text,
            json,
        })
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
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let req = self
            .request(
                reqwest::Method::GET,
                &self.url(""),
                credential,
                Duration::from_secs(30),
            )?
            .header("x-csrf-token", "Fetch");
        self.sent.fetch_add(1, Ordering::Relaxed);
        let resp = req
            .send()
            .await
            .map_err(|e| ConnectorError::transient(format!("fetching the CSRF token: {e}")))?;
        let status = resp.status().as_u16();
        if status >= 400 {
            return Err(ConnectorError::from_status(
                status,
                format!("fetching the CSRF token answered {status}"),
                None,
            ));
        }
        let token = resp
            .headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
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
        let req = self.request(reqwest::Method::GET, &self.url(path), credential, timeout)?;
        self.send(req, &format!("GET {path}")).await
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
                .request(method.clone(), &self.url(path), credential, timeout)?
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
            match self.send(req, &what).await {
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
