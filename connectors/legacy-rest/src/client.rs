//! The HTTP client of one REST API: base URL, default headers, one request.
//! No retries here: the core's pipeline owns them.

use crate::config::{Target, header_map};
use crate::error::{from_response, from_transport};
use gluefleet_core::ConnectorError;
use gluefleet_core::auth::Credential;
use std::time::Duration;

/// An answer from the API.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// `Retry-After`, if sent.
    pub retry_after: Option<String>,
    /// The body (for error messages).
    pub body: String,
    /// `METHOD /full/path`, as the target saw it (for error messages).
    pub what: String,
}

/// One REST API.
#[derive(Debug, Clone)]
pub struct RestClient {
    http: reqwest::Client,
    base: url::Url,
    base_text: String,
    headers: http::HeaderMap,
    sent: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// One request to make.
#[derive(Debug)]
pub struct Call<'a> {
    /// Method.
    pub method: http::Method,
    /// Rendered, encoded path (starts with `/`).
    pub path: &'a str,
    /// Route headers.
    pub headers: &'a http::HeaderMap,
    /// Idempotency header and key.
    pub idempotency: Option<(&'a http::HeaderName, &'a str)>,
    /// Where the key came from (the route's `idempotency_key` field, or the
    /// event's id), named when the key cannot be sent as a header.
    pub key_source: &'a str,
    /// Credential header.
    pub credential: Option<&'a Credential>,
    /// JSON body.
    pub body: Option<serde_json::Value>,
    /// Timeout of this attempt.
    pub timeout: Duration,
}

impl RestClient {
    /// Checks the target config: a valid http(s) base URL, `http://` only
    /// when allowed, valid headers.
    pub fn new(target: &Target, http: reqwest::Client) -> Result<Self, String> {
        let base = url::Url::parse(&target.base_url)
            .map_err(|e| format!("base_url {:?}: {e}", target.base_url))?;
        match base.scheme() {
            "https" => {}
            "http" if target.allow_insecure_http => {}
            "http" => {
                return Err(format!(
                    "base_url {:?} is plain http; use https, or set allow_insecure_http = true for a trusted network",
                    target.base_url
                ));
            }
            other => {
                return Err(format!(
                    "base_url {:?}: scheme {other} is not http(s)",
                    target.base_url
                ));
            }
        }
        if base.host_str().is_none() || base.query().is_some() || base.fragment().is_some() {
            return Err(format!(
                "base_url {:?} must have a host and no query or fragment",
                target.base_url
            ));
        }
        let base_text = target.base_url.trim_end_matches('/').to_owned();
        Ok(Self {
            http,
            base,
            base_text,
            headers: header_map(&target.headers)?,
            sent: Default::default(),
        })
    }

    /// The full URL for an encoded path; refuses anything that leaves the
    /// base URL's origin (defence in depth: templates already encode values).
    pub fn url(&self, path: &str) -> Result<url::Url, ConnectorError> {
        if !path.starts_with('/') {
            return Err(ConnectorError::permanent(format!(
                "path {path:?} must start with /"
            )));
        }
        let url = url::Url::parse(&format!("{}{path}", self.base_text)).map_err(|e| {
            ConnectorError::permanent(format!("path {path:?} makes an invalid URL: {e}"))
        })?;
        if url.origin() != self.base.origin()
            || !url
                .path()
                .starts_with(self.base.path().trim_end_matches('/'))
        {
            return Err(ConnectorError::permanent(format!(
                "path {path:?} leaves the target's base URL"
            )));
        }
        Ok(url)
    }

    /// Sends one request and reads the answer.
    pub async fn send(&self, call: Call<'_>) -> Result<Answer, ConnectorError> {
        let url = self.url(call.path)?;
        let what = format!("{} {}", call.method, url.path());
        let mut req = self
            .http
            .request(call.method, url)
            .timeout(call.timeout)
            .headers(self.headers.clone());
        req = req.headers(call.headers.clone());
        if let Some((name, key)) = call.idempotency {
            // Event data can hold what no header may (CR, LF, other controls):
            // refuse it here, naming the header and the field, before anything
            // is counted or sent.
            let value = http::HeaderValue::from_str(key).map_err(|_| {
                ConnectorError::permanent(format!(
                    "{what}: header {name} cannot carry the idempotency key taken from {}: \
                     it holds a control character (CR, LF or another)",
                    call.key_source
                ))
            })?;
            req = req.header(name, value);
        }
        if let Some(c) = call.credential {
            req = req.header(c.header_name(), c.header_value()?);
        }
        if let Some(body) = &call.body {
            req = req.json(body);
        }
        // Build first: a request that cannot be built was never sent, so it
        // is not counted as one.
        let request = req.build().map_err(|e| {
            ConnectorError::permanent(format!("{what}: the request cannot be built: {e}"))
        })?;
        self.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let resp = self
            .http
            .execute(request)
            .await
            .map_err(|e| from_transport(e, &what))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = resp.text().await.unwrap_or_default();
        Ok(Answer {
            status,
            retry_after,
            body,
            what,
        })
    }

    /// Requests sent so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A GET to `path` for `check`: any answer below 500 proves the API is
    /// there (401/403 are reported, so a wrong credential shows).
    pub async fn probe(
        &self,
        path: &str,
        credential: Option<&Credential>,
    ) -> Result<String, ConnectorError> {
        let headers = http::HeaderMap::new();
        let call = Call {
            method: http::Method::GET,
            path,
            headers: &headers,
            idempotency: None,
            key_source: "",
            credential,
            body: None,
            timeout: Duration::from_secs(10),
        };
        let a = self.send(call).await?;
        match a.status {
            401 | 403 => Err(from_response(
                a.status,
                None,
                &a.body,
                &format!("GET {path}"),
            )),
            s if s >= 500 => Err(from_response(s, None, &a.body, &format!("GET {path}"))),
            s => Ok(format!("{}{path} answered {s}", self.base_text)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str, insecure: bool) -> Target {
        Target {
            base_url: url.into(),
            allow_insecure_http: insecure,
            headers: Default::default(),
            check_path: None,
        }
    }

    #[test]
    fn refuses_plain_http_unless_allowed() {
        let http = reqwest::Client::new();
        let err = RestClient::new(&target("http://erp.local/api", false), http.clone())
            .expect_err("refused");
        assert!(err.contains("allow_insecure_http"), "{err}");
        assert!(RestClient::new(&target("http://erp.local/api", true), http.clone()).is_ok());
        assert!(RestClient::new(&target("ftp://erp.local", true), http).is_err());
    }

    #[test]
    fn urls_stay_under_the_base() -> Result<(), ConnectorError> {
        let c = RestClient::new(
            &target("https://erp.example/api/", false),
            reqwest::Client::new(),
        )
        .map_err(ConnectorError::permanent)?;
        assert_eq!(
            c.url("/orders/A%2F1")?.as_str(),
            "https://erp.example/api/orders/A%2F1"
        );
        assert!(c.url("/../admin").is_err(), "dot segments cannot climb out");
        assert!(c.url("@evil.com/x").is_err());
        Ok(())
    }

    #[tokio::test]
    async fn a_key_that_cannot_be_a_header_names_header_and_field_and_sends_nothing() {
        // Nothing listens here: a request that got out would fail as transient.
        let c = RestClient::new(
            &target("http://127.0.0.1:9/api", true),
            reqwest::Client::new(),
        )
        .expect("valid target");
        let name = http::HeaderName::from_static("idempotency-key");
        let headers = http::HeaderMap::new();
        let err = c
            .send(Call {
                method: http::Method::POST,
                path: "/orders",
                headers: &headers,
                idempotency: Some((&name, "key:A1\r\nX-Evil: 1")),
                key_source: "data.orderId",
                credential: None,
                body: None,
                timeout: Duration::from_secs(1),
            })
            .await
            .expect_err("refused");
        assert!(err.is_permanent(), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("idempotency-key") && text.contains("data.orderId"),
            "{text}"
        );
        assert!(!text.contains("builder error"), "{text}");
        assert_eq!(c.sent(), 0, "nothing was sent, nothing counted");
    }
}
