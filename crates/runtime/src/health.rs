//! `/healthz` (the process is alive) and `/readyz` (the subscription is
//! reachable and the credential valid), on `$PORT`, for Cloud Run probes.

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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
