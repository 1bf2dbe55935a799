//! The client of one REST API: base URL, default headers, one request,
//! sent through the core's [`Edge`]. No retries here: the core's pipeline
//! owns them.

use crate::config::{Target, header_map};
use gluefleet_core::auth::Credential;
use gluefleet_core::http::{Answer, Edge, Outgoing, checked_url};
use gluefleet_core::trace::TraceContext;
use gluefleet_core::{ConfigError, ConnectorError};
use std::time::Duration;

/// The body's content type, as `RequestBuilder::json` would set it.
const JSON: http::HeaderValue = http::HeaderValue::from_static("application/json");

/// One legacy REST API: every route's path is appended to its base URL, and
/// nothing may leave that base (a rendered path is checked before sending).
#[derive(Debug, Clone)]
pub struct Client {
    edge: Edge,
    base: url::Url,
    base_text: String,
    headers: http::HeaderMap,
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
    /// JSON body, as JSON text.
    pub body: Option<Vec<u8>>,
    /// Timeout of this attempt.
    pub timeout: Duration,
    /// The message's trace: sent as `traceparent`, so the target's own
    /// tracing joins the publisher's trace with the worker as the parent.
    pub trace: Option<&'a TraceContext>,
}

impl Client {
    /// Checks the target config: the base URL by the core's URL rule
    /// ([`checked_url`]), with no query or fragment (a path is appended to
    /// it), and valid headers.
    pub fn new(target: &Target, http: reqwest::Client) -> Result<Self, ConfigError> {
        let base = checked_url(
            "target.base_url",
            &target.base_url,
            target.allow_insecure_http.into(),
        )?;
        if base.query().is_some() || base.fragment().is_some() {
            return Err(ConfigError::setting(
                "target.base_url",
                format!(
                    "target.base_url {:?} must have no query or fragment",
                    target.base_url
                ),
            ));
        }
        let base_text = target.base_url.trim_end_matches('/').to_owned();
        Ok(Self {
            edge: Edge::new(http),
            base,
            base_text,
            headers: header_map(&target.headers).map_err(|e| e.context("target.headers"))?,
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
        // Joined as a path of the base, so the scheme and host are taken
        // from the parsed base rather than parsed again for every request.
        let full = format!("{}{path}", self.base.path().trim_end_matches('/'));
        let url = self.base.join(&full).map_err(|e| {
            ConnectorError::permanent(format!("path {path:?} makes an invalid URL: {e}"))
        })?;
        // A path that begins `//` would name another host: refused here, as
        // is one whose dot segments climb above the base path.
        if url.scheme() != self.base.scheme()
            || url.host_str() != self.base.host_str()
            || url.port_or_known_default() != self.base.port_or_known_default()
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

    /// Sends one request and reads the answer, whatever its status.
    pub async fn send(&self, call: Call<'_>) -> Result<Answer, ConnectorError> {
        let url = self.url(call.path)?;
        let what = format!("{} {}", call.method, url.path());
        let mut request = self.edge.request(call.method, url);
        // Most targets and routes set no headers of their own: no copies then.
        if !self.headers.is_empty() {
            request = request.headers(self.headers.clone());
        }
        if !call.headers.is_empty() {
            request = request.headers(call.headers.clone());
        }
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
            request = request.header(name, value);
        }
        if let Some(trace) = call.trace {
            request = request.header("traceparent", trace.traceparent());
        }
        if let Some(body) = call.body {
            request = request.header(http::header::CONTENT_TYPE, JSON).body(body);
        }
        self.edge
            .send(Outgoing {
                what,
                request,
                credential: call.credential,
                timeout: call.timeout,
            })
            .await
    }

    /// Requests sent so far.
    pub fn requests(&self) -> u64 {
        self.edge.requests()
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
            trace: None,
        };
        let a = self.send(call).await?;
        match a.status {
            401 | 403 => Err(a.error()),
            s if s >= 500 => Err(a.error()),
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
        let err =
            Client::new(&target("http://erp.local/api", false), http.clone()).expect_err("refused");
        assert!(err.message().contains("allow_insecure_http"), "{err}");
        assert_eq!(err.setting_name(), Some("target.base_url"));
        assert!(Client::new(&target("http://erp.local/api", true), http.clone()).is_ok());
        assert!(
            Client::new(&target("http://127.0.0.1:8080/api", false), http.clone()).is_ok(),
            "plain http to this machine is the core's rule"
        );
        assert!(Client::new(&target("ftp://erp.local", true), http.clone()).is_err());
        let err = Client::new(&target("https://erp.example/api?x=1", false), http)
            .expect_err("a query cannot take a path");
        assert_eq!(err.setting_name(), Some("target.base_url"), "{err}");
    }

    #[test]
    fn urls_stay_under_the_base() -> Result<(), ConnectorError> {
        let c = Client::new(
            &target("https://erp.example/api/", false),
            reqwest::Client::new(),
        )
        .map_err(|e| ConnectorError::permanent(e.to_string()))?;
        assert_eq!(
            c.url("/orders/A%2F1")?.as_str(),
            "https://erp.example/api/orders/A%2F1"
        );
        assert!(c.url("/../admin").is_err(), "dot segments cannot climb out");
        assert!(c.url("@evil.com/x").is_err());
        assert!(
            c.url("//evil.com/x")?.as_str() == "https://erp.example/api//evil.com/x",
            "under a base path, a doubled slash stays a path"
        );
        let root = Client::new(
            &target("https://erp.example", false),
            reqwest::Client::new(),
        )
        .map_err(|e| ConnectorError::permanent(e.to_string()))?;
        assert_eq!(
            root.url("/orders/1")?.as_str(),
            "https://erp.example/orders/1"
        );
        assert!(
            root.url("//evil.com/x").is_err(),
            "at the root, a doubled slash would name another host"
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_key_that_cannot_be_a_header_names_header_and_field_and_sends_nothing() {
        // Nothing listens here: a request that got out would fail as transient.
        let c = Client::new(
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
                trace: None,
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
        assert_eq!(c.requests(), 0, "nothing was sent, nothing counted");
    }
}
