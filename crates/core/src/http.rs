//! The one way connectors build an HTTP client, so every connector gets the
//! same TLS stack (rustls), timeouts and user agent.

use std::time::Duration;

/// The user agent every gluefleet request carries.
pub const USER_AGENT: &str = concat!("gluefleet/", env!("CARGO_PKG_VERSION"));

/// A client with gluefleet's defaults: rustls, 10 s connect timeout, HTTP
/// keep-alive pooling (one client per process is shared by all tasks).
pub fn client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(90))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("building the HTTP client: {e}"))
}
