//! `/healthz` (the process is alive) and `/readyz` (the subscription is
//! reachable and the credential valid), on `$PORT`, for Cloud Run probes.

use crate::metrics::{self, Metrics};
use crate::pubsub::Connection;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use gluefleet_core::auth::TokenProvider;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Readiness, shared with the pull loops.
#[derive(Debug, Default)]
pub struct Readiness {
    /// The start-up checks passed (subscription readable, credential obtained).
    pub checked: AtomicBool,
    /// No stream is failing right now.
    pub stream_ok: Arc<AtomicBool>,
}

impl Readiness {
    fn ready(&self) -> bool {
        self.checked.load(Ordering::Relaxed) && self.stream_ok.load(Ordering::Relaxed)
    }
}

/// Obtains a credential within [`CHECK_TIMEOUT`]. A provider acting per
/// user has no credential of its own to show: each user's is fetched with
/// their first event (and `check` signs in as the users the config names),
/// so readiness does not wait on one user's delegation.
async fn credential_check(auth: Option<&dyn TokenProvider>) -> Result<(), String> {
    let Some(a) = auth.filter(|a| !a.acts_as_subjects()) else {
        return Ok(());
    };
    match tokio::time::timeout(CHECK_TIMEOUT, a.credential()).await {
        Ok(r) => r.map(|_| ()).map_err(|e| e.to_string()),
        Err(_) => Err(format!(
            "getting a credential: no answer within {CHECK_TIMEOUT:?}"
        )),
    }
}

/// Serves the probes (and `/metrics`, when on) on `port` until the process ends.
pub async fn serve(
    port: u16,
    readiness: Arc<Readiness>,
    metrics: Option<Arc<Metrics>>,
) -> Result<(), String> {
    let app = router(readiness, metrics);
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port))
        .await
        .map_err(|e| format!("binding the health port {port}: {e}"))?;
    axum::serve(listener, app)
        .await
        .map_err(|e| format!("health server: {e}"))
}

/// `/healthz`, `/readyz` and, when metrics are on, `/metrics`, for a server
/// of their own or beside the push endpoint on one port (Cloud Run's
/// Prometheus sidecar scrapes the container's port).
pub fn router(readiness: Arc<Readiness>, metrics: Option<Arc<Metrics>>) -> Router {
    let router = match metrics {
        Some(m) => Router::new().route(
            "/metrics",
            get(move || {
                let m = m.clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
                        m.encode(),
                    )
                }
            }),
        ),
        None => Router::new(),
    };
    router.route("/healthz", get(|| async { "ok" })).route(
        "/readyz",
        get(move || {
            let r = readiness.clone();
            async move {
                if r.ready() {
                    (StatusCode::OK, "ready")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "not ready")
                }
            }
        }),
    )
}

/// How long the credential check of one readiness round may take. The
/// providers bound their own token requests; this bounds any provider, so a
/// hung one fails the round (not ready) and the next round tries again.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// Keeps `readiness` true while the subscription is readable and a credential
/// can be had. Checks at start, then every 5 s only while something is wrong:
/// a stream that failed and reconnected says nothing until a message comes,
/// so a passing check vouches for it. Every check has a timeout
/// ([`CHECK_TIMEOUT`], [`ADMIN_TIMEOUT`](crate::pubsub::ADMIN_TIMEOUT)): an
/// endpoint that never answers means not ready, and is asked again.
pub async fn watch(
    readiness: Arc<Readiness>,
    conn: Connection,
    subscription: String,
    auth: Option<Arc<dyn TokenProvider>>,
) {
    loop {
        let sub = conn.check_subscription(&subscription).await;
        let cred = credential_check(auth.as_deref()).await;
        match (sub, cred) {
            (Ok(what), Ok(())) => {
                if !readiness.checked.swap(true, Ordering::Relaxed) {
                    tracing::info!(check = %what.describe(), "Ready.");
                }
                readiness.stream_ok.store(true, Ordering::Relaxed);
            }
            (Err(e), _) | (_, Err(e)) => {
                readiness.checked.store(false, Ordering::Relaxed);
                tracing::warn!(error = %e, "Not ready; checking again in 5 s.");
            }
        }
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            if !readiness.ready() {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PubsubSettings;
    use gluefleet_core::auth::{ClientCredentials, ClientCredentialsConfig};
    use secrecy::SecretString;

    /// An endpoint that takes connections and never answers them.
    async fn silent() -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        addr
    }

    // Paused time: the clock jumps to the next timer whenever the runtime
    // waits, so the silent endpoint costs no real seconds.
    #[tokio::test(start_paused = true)]
    async fn a_token_endpoint_that_never_answers_fails_the_check_instead_of_hanging_it() {
        let provider = ClientCredentials::new(
            ClientCredentialsConfig {
                token_url: format!("http://{}/oauth2/token", silent().await),
                client_id: "gluefleet".into(),
                client_secret: SecretString::from("s3cret"),
                scopes: Vec::new(),
                credentials_in_body: false,
                refresh_ahead: None,
                default_lifetime: None,
            },
            gluefleet_core::http::client().expect("HTTP client"),
        )
        .expect("provider");
        let checked =
            tokio::time::timeout(Duration::from_secs(300), credential_check(Some(&provider)))
                .await
                .expect("the check ends by itself");
        let e = checked.expect_err("no credential, not ready");
        assert!(
            e.contains("getting a credential") || e.contains("token"),
            "{e}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_pubsub_endpoint_that_never_answers_fails_the_check_instead_of_hanging_it() {
        let conn = Connection::new(&PubsubSettings {
            emulator_host: Some(silent().await.to_string()),
            ..PubsubSettings::default()
        });
        let checked = tokio::time::timeout(
            Duration::from_secs(300),
            conn.check_subscription("projects/p/subscriptions/s"),
        )
        .await
        .expect("the check ends by itself");
        let e = checked.expect_err("not ready");
        assert!(e.contains("projects/p/subscriptions/s"), "{e}");
    }
}
