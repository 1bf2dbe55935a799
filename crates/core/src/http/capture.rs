//! Requests answered in the process instead of sent: how
//! `gluefleet-<connector> test` runs a connector's real mapping and request
//! building with no network, and shows what it would have sent.
//!
//! The switch is process-wide, set once, because a connector builds its own
//! [`Edge`](super::Edge)s (some with a client of their own, SAP's with a
//! cookie store): one switch reaches all of them with no change to any
//! connector. Nothing sets it but the `test` command.

use std::sync::{Arc, OnceLock};

/// A request that was captured: what the connector would have sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Captured {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The whole URL, query included.
    pub url: String,
    /// Every header, names lowercase, in the order they were set.
    pub headers: Vec<(String, String)>,
    /// The body as text (empty without one; lossy for non-UTF-8 bytes).
    pub body: String,
}

/// The answer given to a captured request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: http::HeaderMap,
    /// Response body.
    pub body: String,
}

/// Answers requests in place of the network.
pub trait Capture: Send + Sync + 'static {
    /// The answer to `request`, which never left the process.
    fn answer(&self, request: Captured) -> Reply;
}

static CAPTURE: OnceLock<Arc<dyn Capture>> = OnceLock::new();

/// From now on every [`Edge`](super::Edge) in this process answers through
/// `capture` and sends nothing. `false` if a capture was already set (the
/// first one stays).
pub fn capture_all(capture: Arc<dyn Capture>) -> bool {
    CAPTURE.set(capture).is_ok()
}

/// The capture, when one is set.
pub(super) fn current() -> Option<&'static Arc<dyn Capture>> {
    CAPTURE.get()
}

/// What `request` would put on the wire.
pub(super) fn describe(request: &reqwest::Request) -> Captured {
    Captured {
        method: request.method().as_str().to_owned(),
        url: request.url().as_str().to_owned(),
        headers: request
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: request
            .body()
            .and_then(reqwest::Body::as_bytes)
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default(),
    }
}
