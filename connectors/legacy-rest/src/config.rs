//! `[target]` and each route's `action` for the legacy REST connector.

use gluefleet_core::ConfigError;
use gluefleet_core::mapping::Mapping;
use gluefleet_core::template::Template;
use serde::Deserialize;
use std::collections::BTreeMap;

/// `[target]`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Base URL every route's path is appended to, e.g. `https://erp.example.com/api`.
    pub base_url: String,
    /// Allow an `http://` base URL to another machine (default false:
    /// credentials and data would cross the network in clear).
    #[serde(default)]
    pub allow_insecure_http: bool,
    /// Headers sent on every request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Path `check` sends a GET to (default: the base URL itself).
    #[serde(default)]
    pub check_path: Option<String>,
}

/// A route's `action`, as written.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAction {
    /// HTTP method (default POST).
    #[serde(default = "post")]
    pub method: String,
    /// Path template appended to the base URL: `/orders/{data.orderId}`.
    pub path: String,
    /// Extra headers for this route.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A jq filter over the event giving the body (default: the event's data).
    #[serde(default)]
    pub body: Option<Mapping>,
    /// Send no body at all (for DELETE and GET-style calls).
    #[serde(default)]
    pub no_body: bool,
    /// Statuses that mean success (default: any 2xx).
    #[serde(default)]
    pub success: Vec<u16>,
    /// Statuses that mean the target already has this event (default [409]).
    #[serde(default = "conflict")]
    pub already_done: Vec<u16>,
    /// Header that carries the idempotency key (default `Idempotency-Key`;
    /// empty to send none).
    #[serde(default = "idempotency_header")]
    pub idempotency_header: String,
}

fn post() -> String {
    "POST".into()
}
fn conflict() -> Vec<u16> {
    vec![409]
}
fn idempotency_header() -> String {
    "Idempotency-Key".into()
}

/// A checked action.
#[derive(Debug)]
pub struct Action {
    /// The method.
    pub method: http::Method,
    /// The path template.
    pub path: Template,
    /// Route headers.
    pub headers: http::HeaderMap,
    /// Body mapping, if any.
    pub body: Option<Mapping>,
    /// No body at all.
    pub no_body: bool,
    /// Success statuses (empty: any 2xx).
    pub success: Vec<u16>,
    /// Already-done statuses.
    pub already_done: Vec<u16>,
    /// Idempotency header, if any.
    pub idempotency_header: Option<http::HeaderName>,
}

/// Parses header pairs; errors name the header.
pub fn header_map(headers: &BTreeMap<String, String>) -> Result<http::HeaderMap, ConfigError> {
    let mut map = http::HeaderMap::new();
    for (k, v) in headers {
        let name = http::HeaderName::try_from(k.as_str())
            .map_err(|_| ConfigError::new(format!("header name {k:?} is not valid")))?;
        let value = http::HeaderValue::try_from(v.as_str())
            .map_err(|_| ConfigError::new(format!("header {k}: value is not valid")))?;
        map.insert(name, value);
    }
    Ok(map)
}

impl RawAction {
    /// Checks the action.
    pub fn compile(self) -> Result<Action, ConfigError> {
        let method = http::Method::from_bytes(self.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| {
                ConfigError::setting(
                    "action.method",
                    format!("method {:?} is not an HTTP method", self.method),
                )
            })?;
        if !self.path.starts_with('/') {
            return Err(ConfigError::setting(
                "action.path",
                format!("path {:?} must start with /", self.path),
            ));
        }
        let path = Template::parse(&self.path)?;
        if self.no_body && self.body.is_some() {
            return Err(ConfigError::setting(
                "action.no_body",
                "no_body and body cannot both be set",
            ));
        }
        if let Some(s) = self
            .success
            .iter()
            .chain(&self.already_done)
            .find(|s| !(100..=599).contains(*s))
        {
            return Err(ConfigError::new(format!(
                "status {s} is not an HTTP status"
            )));
        }
        let idempotency_header = if self.idempotency_header.is_empty() {
            None
        } else {
            Some(
                http::HeaderName::try_from(self.idempotency_header.as_str()).map_err(|_| {
                    ConfigError::setting(
                        "action.idempotency_header",
                        format!(
                            "idempotency_header {:?} is not a header name",
                            self.idempotency_header
                        ),
                    )
                })?,
            )
        };
        Ok(Action {
            method,
            path,
            headers: header_map(&self.headers)?,
            body: self.body,
            no_body: self.no_body,
            success: self.success,
            already_done: self.already_done,
            idempotency_header,
        })
    }
}
