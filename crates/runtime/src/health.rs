//! `/healthz` (the process is alive) and `/readyz` (the subscription is
//! reachable and the credential valid), on `$PORT`, for Cloud Run probes.

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

/// Serves the probes on `port` until the process ends.
pub async fn serve(port: u16, readiness: Arc<Readiness>) -> Result<(), String> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
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
        );
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port))
        .await
        .map_err(|e| format!("binding the health port {port}: {e}"))?;
    axum::serve(listener, app)
        .await
        .map_err(|e| format!("health server: {e}"))
}

/// Keeps `readiness` true while the subscription is readable and a credential
/// can be had. Checks at start, then every 5 s only while something is wrong:
/// a stream that failed and reconnected says nothing until a message comes,
/// so a passing check vouches for it.
pub async fn watch(
    readiness: Arc<Readiness>,
    conn: Connection,
    subscription: String,
    auth: Option<Arc<dyn TokenProvider>>,
) {
    loop {
        let sub = conn.check_subscription(&subscription).await;
        let cred = match &auth {
            Some(a) => a.credential().await.map(|_| ()).map_err(|e| e.to_string()),
            None => Ok(()),
        };
        match (sub, cred) {
            (Ok(what), Ok(())) => {
                if !readiness.checked.swap(true, Ordering::Relaxed) {
                    tracing::info!(check = %what, "Ready.");
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
