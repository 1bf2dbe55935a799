//! The HTTP edge every REST connector sends through: the credential, the
//! attempt's timeout, transport errors classified once, `Retry-After`
//! parsed, each request counted under one name, the answer handed back.
//!
//! What an answer *means* (a 409 that is "already done", a quota error
//! inside a 200) is the connector's; the edge only turns what every HTTP API
//! shares into [`ConnectorError`]s, so two connectors never disagree on a 503.

use super::direct::{self, Unanswered};
use crate::ConnectorError;
use crate::auth::Credential;
use crate::classify::{class_of_reqwest_error, parse_retry_after};
use crate::error::ErrorClass;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// How much of an error body goes into an error message.
const SNIPPET_CHARS: usize = 300;

/// One HTTP client and the count of requests it sent.
///
/// Cheap to clone: clones share the connection pool and the counter.
#[derive(Debug, Clone)]
pub struct Edge {
    /// Builds every request; sends it too when `direct` is false or the
    /// process has no direct transport.
    http: reqwest::Client,
    /// Whether requests go through the process's pooled hyper-util client
    /// (see the `direct` module), which is built at the first request, so
    /// that a worker which sends nothing never loads its code.
    direct: bool,
    requests: Arc<AtomicU64>,
}

/// One request about to go out.
#[derive(Debug)]
pub struct Outgoing<'a> {
    /// `METHOD /path` as the vendor would name it, for error messages.
    pub what: String,
    /// The request, without credential or timeout.
    pub request: reqwest::RequestBuilder,
    /// Sent as its own header, when there is one.
    pub credential: Option<&'a Credential>,
    /// The attempt's time left: the request is cut off then.
    pub timeout: Duration,
}

/// An answer, whatever its status.
#[derive(Debug)]
pub struct Answer {
    /// `METHOD /path`, as in [`Outgoing::what`].
    pub what: String,
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: http::HeaderMap,
    /// The body as text (empty when there was none or it could not be read).
    pub body: String,
}

impl Edge {
    /// An edge whose requests `http` builds and the process's shared
    /// transport sends, with [`client`](super::client)'s settings (TLS,
    /// timeouts, pooling, user agent). Settings of `http`'s own that act
    /// when a request is sent (a cookie store, default headers) are not
    /// applied: for those, use [`through`](Self::through).
    ///
    /// With a proxy in the environment (`HTTPS_PROXY`, `HTTP_PROXY`,
    /// `ALL_PROXY`), requests go through `http`, which speaks to it.
    pub fn new(http: reqwest::Client) -> Self {
        Self {
            http,
            direct: true,
            requests: Arc::default(),
        }
    }

    /// An edge that sends through `http` itself, so that every setting of
    /// `http` applies: SAP's per-service cookie jar. It costs more CPU per
    /// request than [`new`](Self::new)'s transport.
    pub fn through(http: reqwest::Client) -> Self {
        Self {
            http,
            direct: false,
            requests: Arc::default(),
        }
    }

    /// A request to fill in and [`send`](Self::send).
    pub fn request(
        &self,
        method: http::Method,
        url: impl reqwest::IntoUrl,
    ) -> reqwest::RequestBuilder {
        self.http.request(method, url)
    }

    /// Requests that left this process (a request refused before it was
    /// built is not one).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Sends one request and reads the answer. Errors only when there is no
    /// answer: a request that cannot be built (permanent, nothing sent, not
    /// counted), a connection that could not be made (transient, nothing
    /// sent), or a request cut off or broken after it left (transient and
    /// [outcome unknown](ConnectorError::is_outcome_unknown): the server may
    /// have applied it).
    pub async fn send(&self, out: Outgoing<'_>) -> Result<Answer, ConnectorError> {
        let Outgoing {
            what,
            mut request,
            credential,
            timeout,
        } = out;
        if let Some(c) = credential {
            request = request.header(c.header_name(), c.header_value()?);
        }
        let request = request
            .timeout(timeout)
            .build()
            .map_err(|e| unbuildable(&what, &e))?;
        if let Some(capture) = super::capture::current() {
            self.requests.fetch_add(1, Ordering::Relaxed);
            let reply = capture.answer(super::capture::describe(&request));
            return Ok(Answer {
                what,
                status: reply.status,
                headers: reply.headers,
                body: reply.body,
            });
        }
        if self.direct
            && let Some(direct) = direct::shared()
        {
            // Converted before it is counted: one that cannot be is refused
            // here, unsent, as reqwest's builder refuses.
            let request = http::Request::<reqwest::Body>::try_from(request)
                .map_err(|e| unbuildable(&what, &e))?;
            self.requests.fetch_add(1, Ordering::Relaxed);
            let response = direct
                .send(request, timeout)
                .await
                .map_err(|e| unanswered(e, &what))?;
            return Ok(Answer {
                what,
                status: response.status,
                headers: response.headers,
                body: response.body,
            });
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut response = self
            .http
            .execute(request)
            .await
            .map_err(|e| transport_error(e, &what))?;
        let status = response.status().as_u16();
        // Taken, not copied, but for the one that reading the body as text
        // needs (its charset).
        let headers = std::mem::take(response.headers_mut());
        if let Some(ct) = headers.get(http::header::CONTENT_TYPE) {
            response
                .headers_mut()
                .insert(http::header::CONTENT_TYPE, ct.clone());
        }
        // A body cut off mid-read leaves the status, which is what decides.
        let body = response.text().await.unwrap_or_default();
        Ok(Answer {
            what,
            status,
            headers,
            body,
        })
    }
}

/// A request that got no answer, classified: see [`Edge::send`]. The
/// message ends with the innermost cause (`invalid peer certificate:
/// UnknownIssuer`, `Connection refused`), which says what to fix; the URL
/// (which can carry a query) is left out.
pub fn transport_error(e: reqwest::Error, what: &str) -> ConnectorError {
    let class = class_of_reqwest_error(&e);
    let why = root_cause(&e).map(|c| format!(": {c}")).unwrap_or_default();
    let (message, unsent) = if e.is_builder() {
        (format!("{what}: the request cannot be built{why}"), true)
    } else if e.is_timeout() {
        (format!("{what}: no answer in time"), false)
    } else if e.is_connect() {
        (format!("{what}: cannot connect{why}"), true)
    } else {
        (format!("{what}: request failed{why}"), false)
    };
    let err = match class {
        ErrorClass::Permanent => ConnectorError::permanent(message),
        _ => ConnectorError::transient(message),
    }
    .with_source(e);
    if unsent {
        err
    } else {
        err.with_outcome_unknown()
    }
}

/// A request refused before it left: permanent, nothing sent.
fn unbuildable(what: &str, e: &reqwest::Error) -> ConnectorError {
    ConnectorError::permanent(format!("{what}: the request cannot be built: {e}"))
}

/// What [`Direct`] could not get an answer to, classified as
/// [`transport_error`] classifies reqwest's.
fn unanswered(e: Unanswered, what: &str) -> ConnectorError {
    match e {
        Unanswered::TimedOut => {
            ConnectorError::transient(format!("{what}: no answer in time")).with_outcome_unknown()
        }
        Unanswered::Failed(e) => {
            let why = root_cause(&e).map(|c| format!(": {c}")).unwrap_or_default();
            if e.is_connect() {
                ConnectorError::transient(format!("{what}: cannot connect{why}")).with_source(e)
            } else {
                ConnectorError::transient(format!("{what}: request failed{why}"))
                    .with_source(e)
                    .with_outcome_unknown()
            }
        }
    }
}

/// The innermost error below `e`, as text; `None` when `e` has no cause.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cause = e.source()?;
    while let Some(next) = cause.source() {
        cause = next;
    }
    Some(cause.to_string())
}

impl Answer {
    /// 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// A header as text, when present and readable.
    pub fn header(&self, name: impl http::header::AsHeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `Retry-After` as a delay from now (seconds or an HTTP date).
    pub fn retry_after(&self) -> Option<Duration> {
        self.header(http::header::RETRY_AFTER)
            .and_then(|v| parse_retry_after(v, SystemTime::now()))
    }

    /// The body as JSON: `null` when empty, a JSON string when it is not JSON.
    pub fn json(&self) -> Value {
        if self.body.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&self.body).unwrap_or_else(|_| Value::String(self.body.clone()))
        }
    }

    /// Records what every HTTP answer can tell the next step, in `answer`:
    /// `status`, `location` (when sent), and `body` when it is a JSON
    /// object or array small enough to keep
    /// ([`MAX_VALUE_BYTES`](crate::answer::MAX_VALUE_BYTES)): a created
    /// record's id is usually there.
    pub fn record_into(&self, answer: &crate::answer::Answer) {
        answer.record("status", self.status);
        if let Some(l) = self.header(http::header::LOCATION) {
            answer.record("location", l);
        }
        if self.body.len() <= crate::answer::MAX_VALUE_BYTES
            && let Ok(v @ (Value::Object(_) | Value::Array(_))) =
                serde_json::from_str::<Value>(&self.body)
        {
            answer.record("body", v);
        }
    }

    /// The start of the body, for error messages.
    pub fn snippet(&self) -> String {
        self.body.trim().chars().take(SNIPPET_CHARS).collect()
    }

    /// This answer as a failure, classified by the shared status table
    /// ([`class_of_status`](crate::classify::class_of_status)), with the body's
    /// start as the detail. See [`error_with`](Self::error_with).
    pub fn error(&self) -> ConnectorError {
        self.error_with(&self.snippet())
    }

    /// This answer as a failure, with `detail` (what the vendor's error body
    /// says, read by the connector) in the message. A 429's or 503's
    /// `Retry-After` is kept; a 503 with one is the server asking for a
    /// pause, so it is rate-limited rather than transient.
    pub fn error_with(&self, detail: &str) -> ConnectorError {
        let status = self.status;
        let detail = detail.trim();
        let message = if detail.is_empty() {
            format!("{} answered {status}", self.what)
        } else {
            format!("{} answered {status}: {detail}", self.what)
        };
        let retry_after = self.retry_after();
        if status == 503 && retry_after.is_some() {
            return ConnectorError::rate_limited(message, retry_after).with_http_status(status);
        }
        ConnectorError::from_status(status, message, retry_after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, headers: &[(&'static str, &str)], body: &str) -> Answer {
        let mut map = http::HeaderMap::new();
        for (k, v) in headers {
            map.insert(*k, http::HeaderValue::from_str(v).expect("header"));
        }
        Answer {
            what: "POST /orders".into(),
            status,
            headers: map,
            body: body.into(),
        }
    }

    #[test]
    fn answers_classify_by_the_shared_table() {
        assert!(answer(503, &[], "").error().is_transient());
        let e = answer(503, &[("retry-after", "3")], "").error();
        assert!(e.is_rate_limited(), "{e}");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
        assert_eq!(e.http_status(), Some(503));
        let e = answer(429, &[("retry-after", "2")], "").error();
        assert!(e.is_rate_limited() && e.retry_after() == Some(Duration::from_secs(2)));
        let e = answer(400, &[], r#"{"error":"total missing"}"#).error();
        assert!(
            e.is_permanent() && e.message().contains("total missing"),
            "{e}"
        );
        assert!(e.message().starts_with("POST /orders answered 400"), "{e}");
        assert!(answer(401, &[], "").error().is_unauthorized());
        assert_eq!(
            answer(500, &[], "").error().message(),
            "POST /orders answered 500"
        );
    }

    #[test]
    fn bodies_read_as_json_or_text() {
        assert_eq!(answer(200, &[], "").json(), Value::Null);
        assert_eq!(answer(200, &[], r#"{"a":1}"#).json()["a"], 1);
        assert_eq!(
            answer(200, &[], "oops").json(),
            Value::String("oops".into())
        );
        assert_eq!(
            answer(400, &[], &"x".repeat(1000)).snippet().len(),
            SNIPPET_CHARS
        );
    }

    /// Sends `request` through `edge` with no credential: the tests' one
    /// way to call [`Edge::send`].
    async fn send(
        edge: &Edge,
        what: &str,
        request: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<Answer, ConnectorError> {
        edge.send(Outgoing {
            what: what.into(),
            request,
            credential: None,
            timeout,
        })
        .await
    }

    /// One edge per transport: the direct one and reqwest's own.
    fn both() -> [Edge; 2] {
        let direct = Edge::new(reqwest::Client::new());
        assert!(
            direct.direct && direct::shared().is_some(),
            "no proxy here: the direct transport"
        );
        [direct, Edge::through(reqwest::Client::new())]
    }

    #[tokio::test]
    async fn a_request_that_cannot_be_built_is_not_sent_nor_counted() {
        for edge in both() {
            let err = send(
                &edge,
                "POST /x",
                edge.request(http::Method::POST, "http://127.0.0.1:9/x")
                    .header("x-bad", "a\r\nb"),
                Duration::from_secs(1),
            )
            .await
            .expect_err("refused");
            assert!(err.is_permanent() && !err.is_outcome_unknown(), "{err}");
            assert_eq!(edge.requests(), 0);
        }
    }

    #[tokio::test]
    async fn a_url_too_long_for_http_is_refused_unsent_on_the_direct_transport() {
        // The `url` crate takes it; an HTTP request's URI cannot be longer
        // than 65,534 bytes, so the conversion fails before anything is sent.
        let edge = Edge::new(reqwest::Client::new());
        let url = format!("http://127.0.0.1:9/{}", "a".repeat(70_000));
        let err = send(
            &edge,
            "GET /long",
            edge.request(http::Method::GET, url),
            Duration::from_secs(1),
        )
        .await
        .expect_err("refused");
        assert!(err.is_permanent() && !err.is_outcome_unknown(), "{err}");
        assert!(err.message().contains("cannot be built"), "{err}");
        assert_eq!(edge.requests(), 0, "refused before it was counted");
    }

    #[tokio::test]
    async fn a_refused_connection_is_transient_and_known_unsent() {
        // Bind and drop: nothing listens on the port afterwards.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        for edge in both() {
            let err = send(
                &edge,
                "POST /x",
                edge.request(http::Method::POST, format!("http://127.0.0.1:{port}/x")),
                Duration::from_secs(5),
            )
            .await
            .expect_err("nothing listens");
            assert!(err.is_transient() && !err.is_outcome_unknown(), "{err}");
            assert!(err.message().contains("cannot connect"), "{err}");
            assert!(
                err.message().to_lowercase().contains("refused"),
                "the cause is named: {err}"
            );
            assert!(
                !err.message().contains("127.0.0.1"),
                "no URL in the message: {err}"
            );
            assert_eq!(edge.requests(), 1, "it left the process");
        }
    }

    #[tokio::test]
    async fn a_tls_failure_says_why() {
        // A plain-text server where TLS is expected: the handshake fails.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let serve = tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                use tokio::io::AsyncWriteExt;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                    .await;
            }
        });
        let http = crate::http::client().expect("client");
        for edge in [Edge::new(http.clone()), Edge::through(http)] {
            let err = send(
                &edge,
                "GET /",
                edge.request(
                    http::Method::GET,
                    format!("https://localhost:{}/", addr.port()),
                ),
                Duration::from_secs(5),
            )
            .await
            .expect_err("no TLS there");
            assert!(err.is_transient() && !err.is_outcome_unknown(), "{err}");
            let text = err.message();
            assert!(
                text.len() > "GET /: cannot connect: ".len(),
                "a reason follows: {text}"
            );
            assert!(text.starts_with("GET /: cannot connect: "), "{text}");
        }
        serve.abort();
    }

    #[tokio::test]
    async fn a_request_cut_off_after_it_left_has_an_unknown_outcome() {
        // Accepts and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        for edge in both() {
            let err = send(
                &edge,
                "POST /x",
                edge.request(http::Method::POST, format!("http://{addr}/x")),
                Duration::from_millis(200),
            )
            .await
            .expect_err("cut off");
            assert!(err.is_transient() && err.is_outcome_unknown(), "{err}");
            assert!(err.message().contains("no answer in time"), "{err}");
        }
        hold.abort();
    }

    /// A keep-alive HTTP/1.1 server that answers every request with
    /// `reply`, records each request's head, and counts connections. A
    /// `reply` without a whole head is written, then the connection closed.
    async fn recording_server(
        reply: &'static [u8],
    ) -> (
        std::net::SocketAddr,
        Arc<std::sync::Mutex<Vec<String>>>,
        Arc<AtomicU64>,
    ) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let heads = Arc::new(std::sync::Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicU64::new(0));
        let (h, c) = (heads.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::Relaxed);
                let h = h.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while let Ok(n @ 1..) = s.read(&mut chunk).await {
                        buf.extend_from_slice(&chunk[..n]);
                        // Bodiless requests: a head ends each one.
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head: Vec<u8> = buf.drain(..end + 4).collect();
                            h.lock()
                                .expect("heads")
                                .push(String::from_utf8_lossy(&head).to_lowercase());
                            let whole = reply.windows(4).any(|w| w == b"\r\n\r\n");
                            if s.write_all(reply).await.is_err() || !whole {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (addr, heads, connections)
    }

    #[tokio::test]
    async fn the_direct_transport_keeps_connections_and_reads_charsets() {
        let (addr, heads, connections) = recording_server(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/plain; charset=ISO-8859-1\r\n\
              x-answer: yes\r\ncontent-length: 4\r\n\r\nK\xf6ln",
        )
        .await;
        let edge = Edge::new(crate::http::client().expect("client"));
        for i in 0..3 {
            let answer = send(
                &edge,
                "GET /x",
                edge.request(http::Method::GET, format!("http://{addr}/x/{i}"))
                    .header("x-mine", "1"),
                Duration::from_secs(5),
            )
            .await
            .expect("answered");
            assert_eq!((answer.status, answer.body.as_str()), (200, "Köln"));
            assert_eq!(answer.header("x-answer"), Some("yes"));
        }
        assert_eq!(
            connections.load(Ordering::Relaxed),
            1,
            "one kept-alive connection"
        );
        let heads = heads.lock().expect("heads").clone();
        assert_eq!(heads.len(), 3);
        let user_agent = format!("user-agent: {}", super::super::USER_AGENT.to_lowercase());
        for (i, head) in heads.iter().enumerate() {
            assert!(
                head.starts_with(&format!("get /x/{i} http/1.1\r\n")),
                "{head}"
            );
            assert!(head.contains(&user_agent), "{head}");
            assert!(
                head.contains("x-mine: 1") && head.contains(&format!("host: {addr}")),
                "{head}"
            );
        }
        assert_eq!(edge.requests(), 3);
    }

    #[tokio::test]
    async fn a_connection_closed_mid_answer_has_an_unknown_outcome() {
        let (addr, _, _) = recording_server(b"HTTP/1.1 200 OK\r\ncontent-le").await;
        for edge in both() {
            let err = send(
                &edge,
                "POST /x",
                edge.request(http::Method::POST, format!("http://{addr}/x")),
                Duration::from_secs(5),
            )
            .await
            .expect_err("no whole answer");
            assert!(err.is_transient() && err.is_outcome_unknown(), "{err}");
            assert!(
                err.message().starts_with("POST /x: request failed"),
                "{err}"
            );
        }
    }
}
