//! The one way connectors build an HTTP client, so every connector gets the
//! same TLS stack (rustls), timeouts and user agent.

use std::time::Duration;

/// The user agent every gluefleet request carries.
pub const USER_AGENT: &str = concat!("gluefleet/", env!("CARGO_PKG_VERSION"));

/// How long any request may take, answer included, when its caller sets no
/// timeout of its own. Every caller should (a connector uses the attempt's,
/// token requests [`TOKEN_TIMEOUT`](crate::auth::TOKEN_TIMEOUT)); this
/// backstop makes sure that a server which accepts and never answers cannot
/// hold a task for ever.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A client with gluefleet's defaults: rustls, 10 s connect timeout,
/// [`REQUEST_TIMEOUT`] for requests that set none, HTTP keep-alive pooling
/// (one client per process is shared by all tasks).
pub fn client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(Duration::from_secs(10))
        .timeout(REQUEST_TIMEOUT)
        .pool_idle_timeout(Duration::from_secs(90))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("building the HTTP client: {e}"))
}
