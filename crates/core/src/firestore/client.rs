//! Firestore REST calls: `batchWrite` and `get`, nothing more.

use crate::auth::TokenProvider;
use crate::classify::{class_of_grpc_code, parse_retry_after};
use crate::error::{ConnectorError, ErrorClass};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

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
        let text = format!("{what}: {} ({})", self.message, grpc_name(self.code));
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
    http: reqwest::Client,
    base: String,
    database: String,
    auth: Arc<dyn TokenProvider>,
    timeout: Duration,
    calls: AtomicU64,
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
            http,
            base,
            database: format!("projects/{project}/databases/{database}"),
            auth,
            timeout: REQUEST_TIMEOUT,
            calls: AtomicU64::new(0),
        }
    }

    /// Sets how long one request may take, credential included (default
    /// [`REQUEST_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
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
    ) -> Result<Self, crate::config::ConfigError> {
        let emulator = env("FIRESTORE_EMULATOR_HOST").filter(|h| !h.is_empty());
        let auth: Arc<dyn TokenProvider> = match &emulator {
            Some(_) => Arc::new(crate::auth::Fixed::bearer(&secrecy::SecretString::from(
                "owner",
            ))),
            None => Arc::new(crate::auth::Google::new(&[
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

    /// Requests sent so far (for benchmarks and tests).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// One request, the credential fetch included, within the client's
    /// timeout.
    async fn send(
        &self,
        method: reqwest::Method,
        url: String,
        body: Option<&Value>,
    ) -> Result<Option<Value>, ConnectorError> {
        let timeout = self.timeout;
        tokio::time::timeout(timeout, self.send_once(method, url, body))
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
    ) -> Result<Option<Value>, ConnectorError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let credential = self.auth.credential().await?;
        let mut req = self
            .http
            .request(method, &url)
            .timeout(self.timeout)
            .header(credential.header_name(), credential.header_value()?);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| {
            let class = crate::classify::class_of_reqwest_error(&e);
            // Only a connection that was never made proves the request was
            // not sent.
            let unsent = e.is_connect();
            let msg = format!("Firestore request failed: {e}");
            let err = match class {
                ErrorClass::Permanent => ConnectorError::permanent(msg),
                _ => ConnectorError::transient(msg),
            };
            if unsent {
                err
            } else {
                err.with_outcome_unknown()
            }
        })?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let text = resp.text().await.unwrap_or_default();
        if status == 404 {
            return Ok(None);
        }
        if !(200..300).contains(&status) {
            let error = serde_json::from_str::<Value>(&text).ok();
            let detail = error
                .as_ref()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
                .unwrap_or_else(|| text.chars().take(300).collect());
            let message = format!("Firestore answered {status}: {detail}");
            // Google APIs name the gRPC status too; it is more precise than
            // the HTTP status (ABORTED comes as 409 but is worth a retry).
            let code = error
                .as_ref()
                .and_then(|v| v["error"]["status"].as_str())
                .and_then(grpc_code_of);
            return Err(match code {
                Some(code) => WriteStatus {
                    code,
                    message,
                    update_time: None,
                }
                .error("request")
                .with_http_status(status),
                None => ConnectorError::from_status(status, message, retry_after),
            });
        }
        serde_json::from_str(&text).map(Some).map_err(|e| {
            ConnectorError::transient(format!(
                "Firestore answered something that is not JSON: {e}"
            ))
        })
    }

    /// Sends `writes` in one `batchWrite`; one status per write, in order.
    pub async fn batch_write(&self, writes: &[Value]) -> Result<Vec<WriteStatus>, ConnectorError> {
        let n = writes.len();
        let url = format!("{}/{}/documents:batchWrite", self.base, self.database);
        let body = json!({ "writes": writes });
        let answer = self
            .send(reqwest::Method::POST, url, Some(&body))
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
    /// not an error.
    pub async fn write(&self, write: Value) -> Result<WriteStatus, ConnectorError> {
        self.batch_write(std::slice::from_ref(&write))
            .await?
            .pop()
            .ok_or_else(|| ConnectorError::transient("Firestore answered no status"))
    }

    /// Reads the document at `path`, `None` when it does not exist.
    pub async fn get(&self, path: &str) -> Result<Option<Document>, ConnectorError> {
        let url = format!("{}/{}", self.base, self.document_name(path));
        let Some(doc) = self.send(reqwest::Method::GET, url, None).await? else {
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
        self.send(reqwest::Method::GET, url, None).await?;
        Ok(format!("Firestore {} answered", self.database))
    }
}

/// The code of a gRPC status name (`"ABORTED"` → 10).
fn grpc_code_of(name: &str) -> Option<i32> {
    (1..=16).find(|c| grpc_name(*c) == name)
}

fn grpc_name(code: i32) -> &'static str {
    match code {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "UNKNOWN_CODE",
    }
}
