//! Firestore REST calls: `batchWrite` and `get`, nothing more, sent through
//! the core's [`Edge`]: only the reading of Firestore's error body (Google's
//! error model, the gRPC status it names) is Google's own.

use crate::error::GoogleError;
use crate::grpc::{class_of_grpc_code, code_of_name, name_of_code};
use gluefleet_core::auth::TokenProvider;
use gluefleet_core::http::{Answer, Edge, Outgoing};
use gluefleet_core::{ConnectorError, ErrorClass};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The status of one write of a `batchWrite` (gRPC code; 0 is success).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteStatus {
    /// gRPC status code.
    pub code: i32,
    /// The server's message.
    pub message: String,
    /// The document's update time after a successful write.
    pub update_time: Option<String>,
}

impl WriteStatus {
    /// True for code 0.
    pub fn is_ok(&self) -> bool {
        self.code == 0
    }

    /// The failure as a classified error (`what` names the document).
    pub fn error(&self, what: &str) -> ConnectorError {
        let text = format!("{what}: {} ({})", self.message, name_of_code(self.code));
        match class_of_grpc_code(self.code) {
            ErrorClass::Transient => ConnectorError::transient(text),
            ErrorClass::RateLimited => ConnectorError::rate_limited(text, None),
            ErrorClass::Unauthorized => ConnectorError::unauthorized(text),
            _ => ConnectorError::permanent(text),
        }
    }
}

/// A document as read.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    /// Its fields, REST-encoded.
    pub fields: serde_json::Map<String, Value>,
    /// When it last changed (for `updateTime` preconditions).
    pub update_time: String,
}

/// One Firestore database.
#[derive(Debug)]
pub struct Firestore {
    edge: Edge,
    base: String,
    database: String,
    auth: Arc<dyn TokenProvider>,
}

/// How long one Firestore request may take by default, the credential it
/// needs and the answer included. The idempotency ledger's calls use it: a
/// claim stuck longer than this would eat into its own lease.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

impl Firestore {
    /// A client for `projects/{project}/databases/{database}`, on the emulator
    /// at `emulator_host` when given.
    pub fn new(
        http: reqwest::Client,
        project: &str,
        database: &str,
        emulator_host: Option<&str>,
        auth: Arc<dyn TokenProvider>,
    ) -> Self {
        let base = match emulator_host {
            Some(h) => format!("http://{h}/v1"),
            None => "https://firestore.googleapis.com/v1".to_owned(),
        };
        Self {
            edge: Edge::new(http),
            base,
            database: format!("projects/{project}/databases/{database}"),
            auth,
        }
    }

    /// A client the way every gluefleet process reaches Firestore: the
    /// emulator when `FIRESTORE_EMULATOR_HOST` is set (with the emulator's
    /// `Bearer owner`), else Firestore with Application Default Credentials.
    /// `env` reads the environment (injectable for tests).
    pub fn connect(
        http: reqwest::Client,
        project: &str,
        database: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, gluefleet_core::ConfigError> {
        let emulator = env("FIRESTORE_EMULATOR_HOST").filter(|h| !h.is_empty());
        let auth: Arc<dyn TokenProvider> = match &emulator {
            Some(_) => Arc::new(gluefleet_core::auth::Fixed::bearer(
                &secrecy::SecretString::from("owner"),
            )),
            None => Arc::new(crate::adc::Google::new(&[
                "https://www.googleapis.com/auth/datastore",
            ])?),
        };
        Ok(Self::new(
            http,
            project,
            database,
            emulator.as_deref(),
            auth,
        ))
    }

    /// `projects/P/databases/D/documents/{path}`.
    pub fn document_name(&self, path: &str) -> String {
        format!("{}/documents/{path}", self.database)
    }

    /// Requests sent so far (for benchmarks and tests): those that left the
    /// process, so a credential that could not be had sends and counts none.
    pub fn requests(&self) -> u64 {
        self.edge.requests()
    }

    /// One request, the credential fetch included, cut off at `until`.
    async fn send(
        &self,
        method: reqwest::Method,
        url: String,
        body: Option<&Value>,
        until: Instant,
    ) -> Result<Option<Value>, ConnectorError> {
        let timeout = until.saturating_duration_since(Instant::now());
        tokio::time::timeout_at(until, self.send_once(method, url, body, until))
            .await
            .unwrap_or_else(|_| {
                Err(
                    ConnectorError::transient(format!("Firestore: no answer within {timeout:?}"))
                        .with_outcome_unknown(),
                )
            })
    }

    async fn send_once(
        &self,
        method: reqwest::Method,
        url: String,
        body: Option<&Value>,
        until: Instant,
    ) -> Result<Option<Value>, ConnectorError> {
        let credential = self.auth.credential().await?;
        let mut request = self.edge.request(method, &url);
        if let Some(b) = body {
            request = request.json(b);
        }
        let answer = self
            .edge
            .send(Outgoing {
                what: "Firestore".into(),
                request,
                credential: Some(&credential),
                // What the credential fetch left of the request's time.
                timeout: until.saturating_duration_since(Instant::now()),
            })
            .await?;
        if answer.status == 404 {
            return Ok(None);
        }
        if !answer.is_success() {
            return Err(failure(&answer));
        }
        serde_json::from_str(&answer.body).map(Some).map_err(|e| {
            ConnectorError::transient(format!(
                "Firestore answered something that is not JSON: {e}"
            ))
        })
    }

    /// Sends `writes` in one `batchWrite` within [`REQUEST_TIMEOUT`]; one
    /// status per write, in order.
    pub async fn batch_write(&self, writes: &[Value]) -> Result<Vec<WriteStatus>, ConnectorError> {
        self.batch_write_until(writes, Instant::now() + REQUEST_TIMEOUT)
            .await
    }

    /// [`batch_write`](Self::batch_write), cut off at `until` (a batch's
    /// earliest attempt deadline) instead of after [`REQUEST_TIMEOUT`].
    pub async fn batch_write_until(
        &self,
        writes: &[Value],
        until: Instant,
    ) -> Result<Vec<WriteStatus>, ConnectorError> {
        let n = writes.len();
        let url = format!("{}/{}/documents:batchWrite", self.base, self.database);
        let body = json!({ "writes": writes });
        let answer = self
            .send(reqwest::Method::POST, url, Some(&body), until)
            .await?
            .ok_or_else(|| {
                ConnectorError::permanent(format!("Firestore database {} not found", self.database))
            })?;
        let statuses = answer["status"].as_array().cloned().unwrap_or_default();
        let results = answer["writeResults"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if statuses.len() != n {
            return Err(ConnectorError::transient(format!(
                "Firestore batchWrite answered {} statuses for {n} writes",
                statuses.len()
            )));
        }
        Ok(statuses
            .iter()
            .enumerate()
            .map(|(i, s)| WriteStatus {
                code: s["code"]
                    .as_i64()
                    .and_then(|c| i32::try_from(c).ok())
                    .unwrap_or(0),
                message: s["message"].as_str().unwrap_or_default().to_owned(),
                update_time: results
                    .get(i)
                    .and_then(|r| r["updateTime"].as_str())
                    .map(str::to_owned),
            })
            .collect())
    }

    /// One write, through `batchWrite` so a failed precondition is a status,
    /// not an error, within [`REQUEST_TIMEOUT`].
    pub async fn write(&self, write: Value) -> Result<WriteStatus, ConnectorError> {
        self.write_until(write, Instant::now() + REQUEST_TIMEOUT)
            .await
    }

    /// [`write`](Self::write), cut off at `until`.
    pub async fn write_until(
        &self,
        write: Value,
        until: Instant,
    ) -> Result<WriteStatus, ConnectorError> {
        self.batch_write_until(std::slice::from_ref(&write), until)
            .await?
            .pop()
            .ok_or_else(|| ConnectorError::transient("Firestore answered no status"))
    }

    /// Reads the document at `path`, `None` when it does not exist.
    pub async fn get(&self, path: &str) -> Result<Option<Document>, ConnectorError> {
        let url = format!("{}/{}", self.base, self.document_name(path));
        let until = Instant::now() + REQUEST_TIMEOUT;
        let Some(doc) = self.send(reqwest::Method::GET, url, None, until).await? else {
            return Ok(None);
        };
        Ok(Some(Document {
            fields: doc["fields"].as_object().cloned().unwrap_or_default(),
            update_time: doc["updateTime"].as_str().unwrap_or_default().to_owned(),
        }))
    }

    /// Lists document names of a collection (first page; for `check`).
    pub async fn probe(&self, collection: &str) -> Result<String, ConnectorError> {
        let url = format!(
            "{}/{}/documents/{collection}?pageSize=1",
            self.base, self.database
        );
        let until = Instant::now() + REQUEST_TIMEOUT;
        self.send(reqwest::Method::GET, url, None, until).await?;
        Ok(format!("Firestore {} answered", self.database))
    }
}

/// A failed answer: Google APIs name the gRPC status in the error body, and
/// it is more precise than the HTTP status (ABORTED comes as 409 but is worth
/// a retry); without one, the core's shared HTTP table decides.
fn failure(answer: &Answer) -> ConnectorError {
    let error = GoogleError::of(answer);
    let detail = error.message();
    match error.grpc_status().and_then(code_of_name) {
        Some(code) => WriteStatus {
            code,
            message: format!("{} answered {}: {detail}", answer.what, answer.status),
            update_time: None,
        }
        .error("request")
        .with_http_status(answer.status),
        None => answer.error_with(detail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, retry_after: Option<&str>, body: &str) -> Answer {
        let mut headers = http::HeaderMap::new();
        if let Some(v) = retry_after {
            headers.insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_str(v).expect("header"),
            );
        }
        Answer {
            what: "Firestore".into(),
            status,
            headers,
            body: body.into(),
        }
    }

    #[test]
    fn the_grpc_status_in_the_body_decides_over_the_http_status() {
        let body =
            r#"{"error": {"code": 409, "message": "too much contention", "status": "ABORTED"}}"#;
        let e = failure(&answer(409, None, body));
        assert!(e.is_transient(), "ABORTED is worth a retry: {e}");
        assert_eq!(e.http_status(), Some(409));
        assert!(
            e.message()
                .contains("Firestore answered 409: too much contention (ABORTED)"),
            "{e}"
        );
        let body = r#"{"error": {"code": 403, "message": "Missing or insufficient permissions.", "status": "PERMISSION_DENIED"}}"#;
        let e = failure(&answer(403, None, body));
        assert!(e.is_permanent(), "{e}");
    }

    #[test]
    fn without_a_grpc_status_the_shared_http_table_decides() {
        let e = failure(&answer(429, Some("4"), "slow down"));
        assert!(e.is_rate_limited(), "{e}");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(4)));
        assert!(
            e.message().starts_with("Firestore answered 429: slow down"),
            "{e}"
        );
        let e = failure(&answer(503, Some("2"), ""));
        assert!(e.is_rate_limited(), "a 503 asking for a pause: {e}");
        assert!(failure(&answer(503, None, "")).is_transient());
        assert!(failure(&answer(400, None, "<html>bad</html>")).is_permanent());
    }
}
