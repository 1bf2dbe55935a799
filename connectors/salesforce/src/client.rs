//! Calls to one org's REST API: the instance from the token, the version,
//! and the daily-limit gate and bookkeeping on every call.

use crate::error::from_call;
use crate::limits::{Gate, Limits};
use gluefleet_core::ConnectorError;
use gluefleet_core::auth::Credential;
use gluefleet_core::classify::class_of_reqwest_error;
use gluefleet_core::error::ErrorClass;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// An answer that is not a failure of the call itself.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The JSON body (`null` when empty).
    pub body: Value,
}

/// One org.
#[derive(Debug)]
pub struct SfClient {
    http: reqwest::Client,
    version: String,
    fallback_instance: Option<String>,
    instance_domains: Vec<String>,
    /// The org's API usage.
    pub limits: Arc<Limits>,
    sent: AtomicU64,
}

impl SfClient {
    /// A client for `version`, calling `fallback_instance` when a token has
    /// no `instance_url`.
    pub fn new(
        http: reqwest::Client,
        version: String,
        fallback_instance: Option<String>,
        limits: Limits,
    ) -> Self {
        Self {
            http,
            version,
            fallback_instance,
            instance_domains: crate::config::INSTANCE_DOMAINS
                .iter()
                .map(|d| (*d).to_owned())
                .collect(),
            limits: Arc::new(limits),
            sent: AtomicU64::new(0),
        }
    }

    /// Trust these domains (instead of Salesforce's) for a token's `instance_url`.
    pub fn trusting(mut self, instance_domains: Vec<String>) -> Self {
        self.instance_domains = instance_domains;
        self
    }

    /// Metered requests sent.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Where calls go: the token's `instance_url`, once its host is trusted,
    /// else the configured `target.instance_url`.
    fn base(&self, credential: Option<&Credential>) -> Result<String, ConnectorError> {
        let from_token = credential.and_then(Credential::endpoint);
        if let Some(url) = from_token {
            crate::config::check_instance(url, &self.instance_domains)
                .map_err(ConnectorError::permanent)?;
        }
        from_token
            .or(self.fallback_instance.as_deref())
            .map(|b| b.trim_end_matches('/').to_owned())
            .ok_or_else(|| {
                ConnectorError::permanent(
                    "no instance URL: the token gave none and target.instance_url is not set",
                )
            })
    }

    /// Sends `method path` (below `/services/data/vXX.X`) through the limit gate.
    pub async fn send(
        &self,
        credential: Option<&Credential>,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<Answer, ConnectorError> {
        // A probe lives as long as this call: dropped on every way out,
        // including this future being dropped mid-call.
        let probe = match self.limits.gate() {
            Gate::Open => None,
            Gate::Probe(probe) => Some(probe),
            Gate::Slow(pause) => {
                gluefleet_core::rate_limit::pace(pause).await;
                None
            }
            Gate::Closed(wait) => {
                return Err(ConnectorError::rate_limited(
                    format!(
                        "{}; no call for {}s",
                        self.limits.standing(),
                        wait.as_secs()
                    ),
                    Some(wait),
                ));
            }
        };
        let credential = credential.ok_or_else(|| {
            ConnectorError::permanent(
                "no credential: configure [auth] (jwt_bearer or oauth2_client_credentials)",
            )
        })?;
        let url = format!(
            "{}/services/data/{}{path}",
            self.base(Some(credential))?,
            self.version
        );
        let what = format!("{method} {path}");
        let mut req = self
            .http
            .request(method, &url)
            .timeout(timeout)
            .header(credential.header_name(), credential.header_value()?)
            .header(http::header::ACCEPT, "application/json");
        if let Some(b) = body {
            req = req.json(b);
        }
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
        let retry_after = resp
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                gluefleet_core::classify::parse_retry_after(v, std::time::SystemTime::now())
            });
        let limit_info = resp
            .headers()
            .get("sforce-limit-info")
            .and_then(|v| v.to_str().ok());
        let recorded = self.limits.observe(limit_info);
        if !recorded
            && resp.status().is_success()
            && let Some(probe) = probe
        {
            probe.accepted();
        }
        let text = resp.text().await.unwrap_or_default();
        let body: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if status >= 400 || status == 300 {
            if status == 300 {
                return Err(ConnectorError::permanent(format!(
                    "{what}: the external id matches more than one record"
                ))
                .with_http_status(300));
            }
            let mut err = from_call(status, &body, &what);
            if status == 429 {
                err = ConnectorError::rate_limited(err.message().to_owned(), retry_after)
                    .with_http_status(429);
            }
            if err.is_rate_limited() && status == 403 {
                self.limits.exceeded();
            }
            return Err(err);
        }
        Ok(Answer { status, body })
    }

    /// `GET /services/data`: reachable, and the configured version is offered.
    pub async fn probe(&self, credential: Option<&Credential>) -> Result<String, ConnectorError> {
        let base = self.base(credential)?;
        let resp = self
            .http
            .get(format!("{base}/services/data"))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| ConnectorError::transient(format!("GET /services/data: {e}")))?;
        let versions: Value = resp.json().await.unwrap_or(Value::Null);
        let wanted = self.version.trim_start_matches('v');
        let offered = versions
            .as_array()
            .is_some_and(|v| v.iter().any(|x| x["version"].as_str() == Some(wanted)));
        if offered {
            Ok(format!("{base} offers API {}", self.version))
        } else {
            Err(ConnectorError::permanent(format!(
                "{base} does not offer API {}",
                self.version
            )))
        }
    }
}
