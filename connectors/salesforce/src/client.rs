//! Calls to one org's REST API: the instance from the token, the version,
//! and the daily-limit gate and bookkeeping on every call. Sending,
//! transport errors and `Retry-After` are the core's [`Edge`].

use crate::error::from_call;
use crate::limits::{Gate, Limits};
use gluefleet_core::ConnectorError;
use gluefleet_core::auth::Credential;
use gluefleet_core::http::{Answer, Edge, Outgoing};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// The Salesforce client: one org, reached at the token's `instance_url`,
/// every call through the org's daily-limit gate.
#[derive(Debug)]
pub struct Client {
    edge: Edge,
    version: String,
    fallback_instance: Option<String>,
    instance_domains: Vec<String>,
    /// The org's API usage.
    pub limits: Arc<Limits>,
}

impl Client {
    /// A client for `version`, calling `fallback_instance` when a token has
    /// no `instance_url`.
    pub fn new(
        http: reqwest::Client,
        version: String,
        fallback_instance: Option<String>,
        limits: Limits,
    ) -> Self {
        Self {
            edge: Edge::new(http),
            version,
            fallback_instance,
            instance_domains: crate::config::INSTANCE_DOMAINS
                .iter()
                .map(|d| (*d).to_owned())
                .collect(),
            limits: Arc::new(limits),
        }
    }

    /// Trust these domains (instead of Salesforce's) for a token's `instance_url`.
    pub fn trusting(mut self, instance_domains: Vec<String>) -> Self {
        self.instance_domains = instance_domains;
        self
    }

    /// Requests sent to the org (the version probe of `check` included).
    pub fn requests(&self) -> u64 {
        self.edge.requests()
    }

    /// Where calls go: the token's `instance_url`, once its host is trusted,
    /// else the configured `target.instance_url`.
    fn base(&self, credential: Option<&Credential>) -> Result<String, ConnectorError> {
        let from_token = credential.and_then(Credential::endpoint);
        if let Some(url) = from_token {
            crate::config::check_instance(url, &self.instance_domains)?;
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

    /// Sends `method path` (below `/services/data/vXX.X`) through the limit
    /// gate. A 2xx answer is returned; any other is the error it means.
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
        let mut request = self
            .edge
            .request(method.clone(), &url)
            .header(http::header::ACCEPT, "application/json");
        if let Some(b) = body {
            request = request.json(b);
        }
        let answer = self
            .edge
            .send(Outgoing {
                what: format!("{method} {path}"),
                request,
                credential: Some(credential),
                timeout,
            })
            .await?;
        let recorded = self.limits.observe(answer.header("sforce-limit-info"));
        if !recorded
            && answer.is_success()
            && let Some(probe) = probe
        {
            probe.accepted();
        }
        if answer.status >= 400 || answer.status == 300 {
            if answer.status == 300 {
                return Err(ConnectorError::permanent(format!(
                    "{}: the external id matches more than one record",
                    answer.what
                ))
                .with_http_status(300));
            }
            let err = from_call(&answer);
            if err.is_rate_limited() && answer.status == 403 {
                self.limits.exceeded();
            }
            return Err(err);
        }
        Ok(answer)
    }

    /// `GET /services/data`: reachable, and the configured version is offered.
    /// It needs no credential, and sends none.
    pub async fn probe(&self, credential: Option<&Credential>) -> Result<String, ConnectorError> {
        let base = self.base(credential)?;
        let answer = self
            .edge
            .send(Outgoing {
                what: "GET /services/data".into(),
                request: self
                    .edge
                    .request(http::Method::GET, format!("{base}/services/data")),
                credential: None,
                timeout: Duration::from_secs(10),
            })
            .await?;
        let wanted = self.version.trim_start_matches('v');
        let offered = answer
            .json()
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
