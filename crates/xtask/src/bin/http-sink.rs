//! The HTTP target of `cargo xtask bench`, in a process of its own so that
//! what it costs is never counted against the worker under measurement, nor
//! against the harness. One thread (a current-thread runtime): the worker
//! gets the other core. It answers every request `200` once its body is
//! read (and dropped, frame by frame), and counts requests, distinct `Idempotency-Key`s and
//! TCP connections accepted, so the benchmark can tell both that every
//! event arrived once and whether the worker's connections were reused.
//!
//! Usage: `http-sink` prints `listening on 127.0.0.1:PORT` on stdout and
//! serves until killed. `GET /__sink` answers
//! `{"requests": N, "connections": N, "distinct_keys": N}` for what came
//! since the previous `GET /__sink` (itself not counted), then starts a
//! new count.

use axum::Router;
use axum::body::HttpBody as _;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::serve::ListenerExt;
use std::collections::HashSet;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

#[derive(Debug, Default)]
struct Counts {
    requests: AtomicU64,
    connections: AtomicU64,
    keys: Mutex<HashSet<String>>,
}

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("http-sink: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("http-sink: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve() -> std::io::Result<()> {
    let counts = Arc::new(Counts::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening on {}", listener.local_addr()?);
    let tapped = counts.clone();
    let listener = listener.tap_io(move |tcp| {
        tapped.connections.fetch_add(1, Ordering::Relaxed);
        // As a real target would: a small answer goes out at once.
        let _ = tcp.set_nodelay(true);
    });
    let app = Router::new()
        .route("/__sink", get(stats))
        .fallback(answer)
        .with_state(counts);
    axum::serve(listener, app).await
}

async fn answer(
    State(counts): State<Arc<Counts>>,
    headers: HeaderMap,
    mut body: axum::body::Body,
) -> StatusCode {
    // Read to the end, a frame at a time, keeping none of it. Answering
    // before a large body is in makes the server close the connection under
    // the sender (a broken pipe, not an answer); holding it would put the
    // sink's memory in `bench memory`'s way.
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        if frame.is_err() {
            return StatusCode::BAD_REQUEST;
        }
    }
    counts.requests.fetch_add(1, Ordering::Relaxed);
    if let Some(key) = headers.get("idempotency-key").and_then(|v| v.to_str().ok()) {
        counts
            .keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.to_owned());
    }
    StatusCode::OK
}

async fn stats(State(counts): State<Arc<Counts>>) -> axum::Json<serde_json::Value> {
    let keys = std::mem::take(&mut *counts.keys.lock().unwrap_or_else(PoisonError::into_inner));
    // The connection this request came on is the harness's, not a worker's.
    let connections = counts
        .connections
        .swap(0, Ordering::Relaxed)
        .saturating_sub(1);
    axum::Json(serde_json::json!({
        "requests": counts.requests.swap(0, Ordering::Relaxed),
        "connections": connections,
        "distinct_keys": keys.len(),
    }))
}
