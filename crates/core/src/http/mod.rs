//! HTTP for every connector: one way to build the client (the same TLS
//! stack, rustls, timeouts and user agent everywhere), one [`Edge`] to send
//! through, and one rule for where a configured URL may point
//! ([`checked_url`]).

pub mod capture;
mod direct;
mod edge;
mod secure;

pub use edge::{Answer, Edge, Outgoing, transport_error};
pub use secure::{Insecure, checked_url, is_loopback};

use crate::config::ConfigError;
use std::time::Duration;

/// The user agent every gluefleet request carries.
pub const USER_AGENT: &str = concat!("gluefleet/", env!("CARGO_PKG_VERSION"));

/// How long any request may take, answer included, when its caller sets no
/// timeout of its own. Every caller should (a connector uses the attempt's,
/// token requests [`TOKEN_TIMEOUT`](crate::auth::TOKEN_TIMEOUT)); this
/// backstop makes sure that a server which accepts and never answers cannot
/// hold a task for ever.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a connection may take to open, for every transport.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an idle pooled connection is kept, for every transport.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// A client with gluefleet's defaults: rustls, 10 s connect timeout,
/// [`REQUEST_TIMEOUT`] for requests that set none, HTTP keep-alive pooling
/// (one client per process is shared by all tasks).
pub fn client() -> Result<reqwest::Client, ConfigError> {
    build(builder())
}

/// The builder behind [`client`], for a connector that needs one more
/// setting on top of the defaults (SAP's per-service cookie jar).
pub fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        // The pipeline owns retries (and counts each against the rate
        // limit): the client sends each request once.
        .retry(reqwest::retry::never())
}

/// Builds a client from [`builder`]; the error says the TLS stack could not
/// start (no usable root certificates), which no setting can fix at runtime.
pub fn build(builder: reqwest::ClientBuilder) -> Result<reqwest::Client, ConfigError> {
    builder
        .build()
        .map_err(|e| ConfigError::new(format!("building the HTTP client: {e}")))
}
