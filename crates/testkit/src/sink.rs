//! An HTTP target that costs nothing: it answers every request 200 at
//! once and never reads a body into memory, so it neither slows a worker
//! under load nor limits the size of what a worker sends. It counts
//! requests and distinct `Idempotency-Key`s, which is all a throughput or
//! memory measurement needs to know that every event arrived.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

use crate::TestkitError;
use crate::http_target::lock;
use crate::server::LocalServer;

#[derive(Debug, Default)]
struct Counts {
    requests: AtomicU64,
    keys: Mutex<HashSet<String>>,
}

/// A running sink on a free port of 127.0.0.1. Stops on drop.
#[derive(Debug)]
pub struct HttpSink {
    counts: Arc<Counts>,
    server: LocalServer,
}

impl HttpSink {
    /// Starts a sink on a free port.
    pub async fn start() -> Result<Self, TestkitError> {
        let counts = Arc::new(Counts::default());
        let state = counts.clone();
        let server = LocalServer::start("the HTTP sink", move |_| {
            Router::new().fallback(answer).with_state(state)
        })
        .await?;
        Ok(Self { counts, server })
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// Requests so far.
    pub fn requests(&self) -> u64 {
        self.counts.requests.load(Ordering::Relaxed)
    }

    /// Distinct idempotency keys seen since the last call, forgetting them:
    /// a benchmark that drains the same backlog again sees the same keys.
    pub fn take_distinct_keys(&self) -> usize {
        std::mem::take(&mut *lock(&self.counts.keys)).len()
    }
}

async fn answer(State(counts): State<Arc<Counts>>, headers: HeaderMap) -> StatusCode {
    counts.requests.fetch_add(1, Ordering::Relaxed);
    if let Some(key) = headers.get("idempotency-key").and_then(|v| v.to_str().ok()) {
        lock(&counts.keys).insert(key.to_owned());
    }
    StatusCode::OK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_sink_counts_requests_and_distinct_keys_of_any_size() {
        let sink = HttpSink::start().await.expect("sink starts");
        let http = crate::net::fresh_client().expect("client");
        // Larger than axum's default body limit: never read, never refused.
        let big = "7".repeat(3 * 1024 * 1024);
        for (key, body) in [("a", "{}"), ("b", big.as_str()), ("a", "{}")] {
            let r = http
                .post(format!("{}/accounts/1", sink.url()))
                .header("Idempotency-Key", key)
                .body(body.to_owned())
                .send()
                .await
                .expect("sent");
            assert_eq!(r.status(), reqwest::StatusCode::OK);
        }
        assert_eq!(sink.requests(), 3);
        assert_eq!(sink.take_distinct_keys(), 2);
        assert_eq!(sink.take_distinct_keys(), 0, "forgotten once taken");
    }
}
