//! The client side of tests that talk to local servers themselves: a
//! client that opens a new connection per request, so "refused" really
//! means that nothing listens, and the check for exactly that.

use std::time::Duration;

use crate::TestkitError;

/// How long a test's own request may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// A client without a proxy and without connection reuse: every request
/// opens a new connection, so a stopped server shows as refused, not as an
/// old connection that still answers.
pub fn fresh_client() -> Result<reqwest::Client, TestkitError> {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(TIMEOUT)
        .build()
        .map_err(|source| TestkitError::Http {
            what: "building a test client".to_owned(),
            source,
        })
}

/// Whether a `GET url` fails before any answer: nothing listens there (or
/// the client could not be built, which a test reads the same way).
pub async fn refused(url: &str) -> bool {
    match fresh_client() {
        Ok(client) => client.get(url).send().await.is_err(),
        Err(_) => true,
    }
}
