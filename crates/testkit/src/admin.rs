//! The test side's HTTP calls to a child server (the emulators' REST
//! surfaces, the SAP CAP server's admin and read endpoints): one client
//! setup, one way to send, one way to read an answer, so each server's
//! module only says which URL means what.

use std::time::Duration;

use serde_json::Value;

use crate::{TestkitError, decode};

/// How long one test-side request may take; the emulators answer in
/// milliseconds, so this only bounds a hung server.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A client for servers on 127.0.0.1: no proxy (a proxy from the
/// environment would not reach them), a bounded wait. `name` names the
/// server in the error.
pub(crate) fn client(name: &str) -> Result<reqwest::Client, TestkitError> {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|source| TestkitError::Http {
            what: format!("building the {name} HTTP client"),
            source,
        })
}

/// Sends `request`; returns the status and body, so callers decide what a
/// 404 means. `what` names the request in errors.
pub(crate) async fn send(
    request: reqwest::RequestBuilder,
    what: &str,
) -> Result<(reqwest::StatusCode, String), TestkitError> {
    let http = |source| TestkitError::Http {
        what: what.to_owned(),
        source,
    };
    let response = request.send().await.map_err(http)?;
    let status = response.status();
    let text = response.text().await.map_err(http)?;
    Ok((status, text))
}

/// A non-2xx answer as [`TestkitError::Api`], else the body as JSON (`null`
/// when empty).
pub(crate) fn parse(
    what: &str,
    status: reqwest::StatusCode,
    text: &str,
) -> Result<Value, TestkitError> {
    if !status.is_success() {
        return Err(TestkitError::Api {
            what: what.to_owned(),
            status: status.as_u16(),
            body: text.to_owned(),
        });
    }
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(text).map_err(|e| decode(what, e))
}
