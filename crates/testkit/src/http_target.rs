//! A scriptable local HTTP server standing in for an external system.
//!
//! Connector tests need to see exactly what a worker sent (method, path,
//! headers, body, idempotency key) and to make the far side misbehave on
//! cue: fail the next N calls, refuse a given body, answer slowly, or go
//! away entirely and come back on the same port. [`HttpTarget`] is a real
//! axum server on 127.0.0.1 so the worker's HTTP stack, timeouts and
//! connection handling are exercised as in production.
//!
//! Opt-in, it also behaves like a vendor API that honours the
//! `Idempotency-Key` header ([`HttpTarget::honour_idempotency_keys`]): a
//! repeat of a key that already succeeded gets the stored answer and is not
//! applied again. Fault tests need this to tell "the worker lost an event"
//! from "the worker redelivered one whose answer it never saw", which a real
//! system absorbs.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use http::{HeaderName, HeaderValue, StatusCode};

use crate::TestkitError;
use crate::server::LocalServer;

/// Largest request body accepted; bigger requests are answered 413.
const BODY_LIMIT: usize = 10 * 1024 * 1024;

/// An answer the target gives.
#[derive(Clone, Debug)]
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// Response headers, in order.
    pub headers: Vec<(String, String)>,
    /// Response body.
    pub body: String,
}

impl Reply {
    /// A reply with `s` and an empty body.
    pub fn status(s: u16) -> Self {
        Self {
            status: s,
            headers: Vec::new(),
            body: String::new(),
        }
    }

    /// Adds a response header (e.g. `Retry-After`).
    #[must_use]
    pub fn header(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }

    /// Sets the body. Without an explicit `content-type` header, a body that
    /// parses as JSON is sent as `application/json`, anything else as
    /// `text/plain`.
    #[must_use]
    pub fn body(mut self, b: impl Into<String>) -> Self {
        self.body = b.into();
        self
    }

    /// What the target answers when nothing else is scripted.
    fn default_answer() -> Self {
        Self::status(201).body(r#"{"ok":true}"#)
    }

    pub(crate) fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let has_content_type = self
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
        let content_type = if has_content_type || self.body.is_empty() {
            None
        } else if serde_json::from_str::<serde_json::Value>(&self.body).is_ok() {
            Some("application/json")
        } else {
            Some("text/plain; charset=utf-8")
        };
        let mut response = Response::new(Body::from(self.body));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        if let Some(ct) = content_type {
            headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(ct));
        }
        for (k, v) in self.headers {
            match (
                HeaderName::try_from(k.as_str()),
                HeaderValue::try_from(v.as_str()),
            ) {
                (Ok(name), Ok(value)) => {
                    headers.append(name, value);
                }
                _ => {
                    tracing::warn!(header = %k, "scripted reply header is not valid HTTP; left out")
                }
            }
        }
        response
    }
}

/// One request as the target saw it.
#[derive(Clone, Debug)]
pub struct LoggedRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// Path with query string, e.g. `/v1/orders?dry=1`.
    pub path: String,
    /// Headers by lowercase name; repeated headers are joined with `, `.
    pub headers: BTreeMap<String, String>,
    /// The body (lossy UTF-8).
    pub body: String,
    /// When it arrived.
    pub at: Instant,
    /// The status the target answered (0 while rules are consulted).
    pub status: u16,
}

impl LoggedRequest {
    /// The `Idempotency-Key` header, if sent.
    pub fn idempotency_key(&self) -> Option<&str> {
        self.headers.get("idempotency-key").map(String::as_str)
    }

    /// The body parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&self.body).ok()
    }

    /// `Authorization: Basic` client credentials (id, secret), each part
    /// form-urlencoded as RFC 6749 §2.3.1 asks (plain values decode to
    /// themselves): how the token endpoints of this crate read a client.
    pub fn basic_credentials(&self) -> Option<(String, String)> {
        use base64::Engine as _;
        let header = self.headers.get("authorization")?;
        let (scheme, encoded) = header.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (id, secret) = decoded.split_once(':')?;
        let form_decode = |s: &str| {
            let s = s.replace('+', " ");
            percent_encoding::percent_decode_str(&s)
                .decode_utf8_lossy()
                .into_owned()
        };
        Some((form_decode(id), form_decode(secret)))
    }
}

type Rule = Arc<dyn Fn(&LoggedRequest) -> Option<Reply> + Send + Sync>;

/// What the handler and the test share.
#[derive(Default)]
struct Shared {
    log: Mutex<Vec<LoggedRequest>>,
    /// Positions in `log` of the requests answered as replays. Written only
    /// while `log` is held, so the two always agree.
    replayed: Mutex<BTreeSet<usize>>,
    script: Mutex<VecDeque<Reply>>,
    rules: Mutex<Vec<Rule>>,
    delay: Mutex<Duration>,
    /// `Some` once [`HttpTarget::honour_idempotency_keys`] was called: per
    /// key, the 2xx answer its first successful request got.
    stored: Mutex<Option<BTreeMap<String, Reply>>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("requests", &lock(&self.log).len())
            .field("scripted", &lock(&self.script).len())
            .field("rules", &lock(&self.rules).len())
            .field("delay", &*lock(&self.delay))
            .finish()
    }
}

/// A poisoned lock means a test's rule panicked; the data is still usable
/// and the panic is already reported.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A local HTTP server playing the external system. Stops on drop.
#[derive(Debug)]
pub struct HttpTarget {
    shared: Arc<Shared>,
    server: LocalServer,
}

impl HttpTarget {
    /// Starts on a free port of 127.0.0.1. Every method on every path is
    /// answered `201 {"ok":true}` until scripted otherwise.
    pub async fn start() -> Result<Self, TestkitError> {
        let shared: Arc<Shared> = Arc::default();
        let state = shared.clone();
        let server = LocalServer::start("the HTTP target", move |_| {
            Router::new().fallback(handle).with_state(state)
        })
        .await?;
        Ok(Self { shared, server })
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// The next requests (any path, FIFO) get these replies; afterwards the
    /// default answer resumes. Appends to what is already scripted.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        lock(&self.shared.script).extend(replies);
    }

    /// Adds a rule consulted for every request before the script and the
    /// default; the first rule (in the order added) returning `Some` wins,
    /// and a request a rule answers does not use up a scripted reply.
    pub fn rule(&self, f: impl Fn(&LoggedRequest) -> Option<Reply> + Send + Sync + 'static) {
        lock(&self.shared.rules).push(Arc::new(f));
    }

    /// Every answer waits `d` before it is sent, to keep calls in flight.
    pub fn set_delay(&self, d: Duration) {
        *lock(&self.shared.delay) = d;
    }

    /// Every request so far, in arrival order. A request is logged when it
    /// arrives (with the status it will get), before any delay.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        lock(&self.shared.log).clone()
    }

    /// Per `Idempotency-Key`: how many requests carrying it got a 2xx
    /// answer, i.e. how often the side effect happened. Keys that never got
    /// a 2xx are absent. With [`HttpTarget::honour_idempotency_keys`] on,
    /// replays got a 2xx too and are counted here; [`HttpTarget::applied`]
    /// leaves them out.
    pub fn effects(&self) -> BTreeMap<String, usize> {
        let mut effects = BTreeMap::new();
        for request in lock(&self.shared.log).iter() {
            if let Some(key) = request.idempotency_key()
                && (200..300).contains(&request.status)
            {
                *effects.entry(key.to_owned()).or_insert(0) += 1;
            }
        }
        effects
    }

    /// From now on, answers like an API that honours the `Idempotency-Key`
    /// header: a request whose key already got a 2xx answer is not applied
    /// again; it gets that stored answer (status, headers, body) and is
    /// marked as a replay ([`HttpTarget::requests_with_replays`]).
    ///
    /// Rules and the script are still consulted first, as the layers in
    /// front of a real API's idempotency store are (availability, auth, rate
    /// limits): a repeat they answer with an error gets that error. Only a
    /// repeat they would let succeed is turned into a replay. Deciding and
    /// storing happen under one lock, so two concurrent requests with a new
    /// key cannot both be applied. Keys that succeeded before this call are
    /// not known. Idempotent.
    pub fn honour_idempotency_keys(&self) {
        lock(&self.shared.stored).get_or_insert_with(BTreeMap::new);
    }

    /// Every request so far, in arrival order, each with whether it was
    /// answered as a replay (always `false` unless
    /// [`HttpTarget::honour_idempotency_keys`] is on).
    pub fn requests_with_replays(&self) -> Vec<(LoggedRequest, bool)> {
        let log = lock(&self.shared.log);
        let replayed = lock(&self.shared.replayed);
        log.iter()
            .enumerate()
            .map(|(i, request)| (request.clone(), replayed.contains(&i)))
            .collect()
    }

    /// Per `Idempotency-Key`: how many requests carrying it got a 2xx answer
    /// and were not replays, i.e. how often the change was really applied.
    /// Without [`HttpTarget::honour_idempotency_keys`] this is
    /// [`HttpTarget::effects`]; with it, a key is applied at most once, and
    /// [`HttpTarget::effects`] also counts the replays (they got a 2xx too).
    pub fn applied(&self) -> BTreeMap<String, usize> {
        let log = lock(&self.shared.log);
        let replayed = lock(&self.shared.replayed);
        let mut applied = BTreeMap::new();
        for (i, request) in log.iter().enumerate() {
            if let Some(key) = request.idempotency_key()
                && (200..300).contains(&request.status)
                && !replayed.contains(&i)
            {
                *applied.entry(key.to_owned()).or_insert(0) += 1;
            }
        }
        applied
    }

    /// How many requests were answered as replays so far.
    pub fn replays(&self) -> usize {
        lock(&self.shared.replayed).len()
    }

    /// Polls the log every 20 ms until `pred` holds (true) or `timeout`
    /// passes (false).
    pub async fn wait_for(
        &self,
        pred: impl Fn(&[LoggedRequest]) -> bool,
        timeout: Duration,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if pred(&self.requests()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until at least `n` requests were answered 2xx (true) or
    /// `timeout` passes (false): "every event delivered" for a test that
    /// sent `n`.
    pub async fn wait_for_successes(&self, n: usize, timeout: Duration) -> bool {
        self.wait_for(
            |requests| {
                requests
                    .iter()
                    .filter(|r| (200..300).contains(&r.status))
                    .count()
                    >= n
            },
            timeout,
        )
        .await
    }

    /// Stops listening: from the moment this returns, new connections are
    /// refused. Idle keep-alive connections are closed; requests in flight
    /// still get their answer. Idempotent; also runs on drop.
    ///
    /// The listening socket is shut down here, synchronously, through a
    /// duplicate of its descriptor: closing it is otherwise left to the
    /// server task, and until that task runs again a client's connect would
    /// still succeed and then be reset, which is not what a down system
    /// looks like.
    pub fn stop(&self) {
        self.server.stop();
    }

    /// Listens again on the same port, keeping the request log, script,
    /// rules and delay. A restart of a running target stops it first.
    pub async fn restart(&self) -> Result<(), TestkitError> {
        self.server.restart().await
    }
}

/// Reads a request into a [`LoggedRequest`] (status 0), or the 413 answer
/// for a body over the limit. Shared by the servers of this crate.
pub(crate) async fn read_request(request: Request) -> Result<LoggedRequest, Response> {
    let at = Instant::now();
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => {
            return Err(Reply::status(413)
                .body("request body over 10 MiB or unreadable")
                .into_response());
        }
    };
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    Ok(LoggedRequest {
        method: parts.method.as_str().to_owned(),
        path: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned()),
        headers,
        body,
        at,
        status: 0,
    })
}

/// Answers a request with `reply` and logs it, with its status, in `log`:
/// the whole handler of a server whose answer depends only on the request.
pub(crate) async fn answer_logged(
    request: Request,
    log: &Mutex<Vec<LoggedRequest>>,
    reply: impl FnOnce(&LoggedRequest) -> Reply,
) -> Response {
    let mut logged = match read_request(request).await {
        Ok(logged) => logged,
        Err(response) => return response,
    };
    let reply = reply(&logged);
    logged.status = reply.status;
    lock(log).push(logged);
    reply.into_response()
}

/// Answers every request: log it, pick a reply (rules, script, default),
/// wait the delay, answer.
async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let mut logged = match read_request(request).await {
        Ok(logged) => logged,
        Err(response) => return response,
    };

    // Rules are cloned out so a rule runs without any lock held.
    let rules: Vec<Rule> = lock(&shared.rules).clone();
    let reply = rules
        .iter()
        .find_map(|rule| rule(&logged))
        .or_else(|| lock(&shared.script).pop_front())
        .unwrap_or_else(Reply::default_answer);
    let (reply, replayed) = honour_key(&shared, &logged, reply);
    logged.status = reply.status;
    {
        let mut log = lock(&shared.log);
        if replayed {
            lock(&shared.replayed).insert(log.len());
        }
        log.push(logged);
    }

    let delay = *lock(&shared.delay);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    reply.into_response()
}

/// With idempotency keys honoured: the stored answer (and `true`) for a
/// repeat of a key that already succeeded, when `reply` would succeed again;
/// otherwise `reply`, remembered if it is the key's first success.
fn honour_key(shared: &Shared, request: &LoggedRequest, reply: Reply) -> (Reply, bool) {
    let success = (200..300).contains(&reply.status);
    let (Some(key), true) = (request.idempotency_key(), success) else {
        return (reply, false);
    };
    let mut stored = lock(&shared.stored);
    let Some(stored) = stored.as_mut() else {
        return (reply, false);
    };
    match stored.get(key) {
        Some(first) => (first.clone(), true),
        None => {
            stored.insert(key.to_owned(), reply.clone());
            (reply, false)
        }
    }
}
