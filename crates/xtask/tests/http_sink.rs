//! The benchmark's HTTP sink (`src/bin/http-sink.rs`) counts what the
//! benchmark reports: requests, distinct idempotency keys, and the TCP
//! connections a worker opened, leaving out the connection each count is
//! asked on; and every count starts afresh.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};

/// The sink, killed on drop.
struct Sink(Child);

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start() -> (Sink, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_http-sink"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("the sink starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("the sink prints its address");
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (Sink(child), format!("http://{addr}"))
}

async fn counts(url: &str) -> serde_json::Value {
    // A connection of its own, as the benchmark asks.
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client")
        .get(format!("{url}/__sink"))
        .send()
        .await
        .expect("the sink answers")
        .json()
        .await
        .expect("JSON counts")
}

/// POSTs to `/accounts/{key}` with `key` as the idempotency key; the status.
async fn post(client: &reqwest::Client, url: &str, key: &str, body: String) -> u16 {
    client
        .post(format!("{url}/accounts/{key}"))
        .header("idempotency-key", key)
        .body(body)
        .send()
        .await
        .expect("answered")
        .status()
        .as_u16()
}

#[tokio::test]
async fn the_sink_counts_requests_keys_and_connections() {
    let (_sink, url) = start();
    // Two requests on one kept-alive connection, one on another.
    let pooled = reqwest::Client::new();
    for key in ["a", "b"] {
        assert_eq!(post(&pooled, &url, key, "x".repeat(2000)).await, 200);
    }
    let fresh = reqwest::Client::new();
    assert_eq!(post(&fresh, &url, "a", String::new()).await, 200);
    assert_eq!(
        counts(&url).await,
        serde_json::json!({"requests": 3, "connections": 2, "distinct_keys": 2})
    );
    // The count started again, and its own connection is not in it.
    assert_eq!(
        counts(&url).await,
        serde_json::json!({"requests": 0, "connections": 0, "distinct_keys": 0})
    );
    assert_eq!(post(&pooled, &url, "c", String::new()).await, 200);
    assert_eq!(
        counts(&url).await,
        serde_json::json!({"requests": 1, "connections": 0, "distinct_keys": 1}),
        "the pooled connection from before was reused"
    );
}

#[tokio::test]
async fn the_sink_answers_bodies_of_any_size() {
    let (_sink, url) = start();
    let client = reqwest::Client::new();
    // Larger than axum's default body limit (2 MiB): never read, never
    // refused, so `bench memory` can deliver its 10 MB event.
    let big = "7".repeat(3 * 1024 * 1024);
    assert_eq!(post(&client, &url, "big", big).await, 200);
    assert_eq!(
        counts(&url).await,
        serde_json::json!({"requests": 1, "connections": 1, "distinct_keys": 1})
    );
}
