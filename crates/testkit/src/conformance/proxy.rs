//! A fault-injecting HTTP proxy in front of a real server.
//!
//! The conformance cases need the far side to fail on cue (a 503, a 429 with
//! `Retry-After`, a 401, a 400, a call that hangs) whatever the system is.
//! Where the system is an in-process double that could be scripted, it could
//! also be done there; but the SAP CAP server and the Firestore emulator are
//! real servers that cannot be told to fail. Putting this proxy in front of
//! every subject gives one mechanism for all of them, and one place that
//! records when each call arrived and when the worker let go of it, which is
//! what the timing assertions read.
//!
//! Only the requests the subject calls *calls* (the ones that apply an
//! event, not token, CSRF or metadata requests) take a fault; everything
//! else is forwarded untouched.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use http::{HeaderName, HeaderValue, StatusCode};

use crate::TestkitError;
use crate::http_target::{LoggedRequest, Reply, lock, read_request};
use crate::server::LocalServer;

/// Headers that belong to one hop and are not forwarded either way.
const HOP_HEADERS: [&str; 6] = [
    "host",
    "connection",
    "content-length",
    "transfer-encoding",
    "keep-alive",
    "upgrade",
];

/// What the proxy does to the next call.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer this instead of forwarding.
    Reply(Reply),
    /// Hold the call this long, then forward it: a server that answers
    /// late. If the worker gives up first, its connection closes and the
    /// call is never forwarded.
    Hang(Duration),
    /// Hold the call this long, then forward it even if the worker has
    /// given up by then: a server that applies a write whose answer comes
    /// too late. The outcome-unknown cases need the write to land.
    ApplyLate(Duration),
}

/// One request through the proxy.
#[derive(Clone, Debug)]
pub struct Proxied {
    /// The request, with the status the worker got (0 if it got none).
    pub request: LoggedRequest,
    /// Whether the subject counts it as a call (faults apply to calls only).
    pub call: bool,
    /// Whether a fault answered or held it.
    pub faulted: bool,
    /// Whether the upstream server saw it.
    pub forwarded: bool,
    /// When the proxy was done with it: answered, or the worker's
    /// connection went away while it was held.
    pub released: Option<Instant>,
}

impl Proxied {
    /// Whether the path or the body mentions `needle` (an event's tag).
    pub fn mentions(&self, needle: &str) -> bool {
        self.request.path.contains(needle) || self.request.body.contains(needle)
    }

    /// Whether the upstream server saw it and answered 2xx.
    pub fn applied(&self) -> bool {
        self.forwarded && (200..300).contains(&self.request.status)
    }
}

type IsCall = Arc<dyn Fn(&LoggedRequest) -> bool + Send + Sync>;

struct Shared {
    upstream: Mutex<Option<String>>,
    is_call: Mutex<IsCall>,
    faults: Mutex<VecDeque<Fault>>,
    delay: Mutex<Duration>,
    log: Mutex<Vec<Proxied>>,
    client: reqwest::Client,
}

/// A local reverse proxy with fault injection. Stops on drop.
pub struct FaultProxy {
    shared: Arc<Shared>,
    server: LocalServer,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("url", &self.url())
            .field("upstream", &*lock(&self.shared.upstream))
            .field("requests", &lock(&self.shared.log).len())
            .finish()
    }
}

impl FaultProxy {
    /// Starts on a free port of 127.0.0.1 with no upstream yet (requests
    /// get 502 until [`FaultProxy::set_upstream`]), so that a server that
    /// must know its public URL up front can be started after it. Every
    /// request that is not a `GET` counts as a call until
    /// [`FaultProxy::set_is_call`].
    pub async fn start() -> Result<Self, TestkitError> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|source| TestkitError::Http {
                what: "building the fault proxy's HTTP client".to_owned(),
                source,
            })?;
        let is_call: IsCall = Arc::new(|r: &LoggedRequest| r.method != "GET");
        let shared = Arc::new(Shared {
            upstream: Mutex::new(None),
            is_call: Mutex::new(is_call),
            faults: Mutex::default(),
            delay: Mutex::default(),
            log: Mutex::default(),
            client,
        });
        let state = shared.clone();
        let server = LocalServer::start("the fault proxy", move |_| {
            Router::new().fallback(handle).with_state(state)
        })
        .await?;
        Ok(Self { shared, server })
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// `127.0.0.1:PORT`, for variables such as `FIRESTORE_EMULATOR_HOST`.
    pub fn host(&self) -> String {
        self.server.addr().to_string()
    }

    /// Where requests are forwarded: `http://host:port`, no trailing slash.
    pub fn set_upstream(&self, url: &str) {
        *lock(&self.shared.upstream) = Some(url.trim_end_matches('/').to_owned());
    }

    /// Which requests are calls, the only ones faults and the delay apply to.
    pub fn set_is_call(&self, f: impl Fn(&LoggedRequest) -> bool + Send + Sync + 'static) {
        *lock(&self.shared.is_call) = Arc::new(f);
    }

    /// The next calls (FIFO) get these faults; later calls are forwarded.
    pub fn inject(&self, faults: impl IntoIterator<Item = Fault>) {
        lock(&self.shared.faults).extend(faults);
    }

    /// Every forwarded call waits `d` first: a slow server.
    pub fn set_delay(&self, d: Duration) {
        *lock(&self.shared.delay) = d;
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Proxied> {
        lock(&self.shared.log).clone()
    }

    /// The calls so far, in arrival order.
    pub fn calls(&self) -> Vec<Proxied> {
        self.requests().into_iter().filter(|p| p.call).collect()
    }
}

/// Marks its request released when dropped: when the handler finishes, or
/// when the server drops the handler because the worker's connection closed.
struct Release {
    shared: Arc<Shared>,
    index: usize,
}

impl Drop for Release {
    fn drop(&mut self) {
        if let Some(p) = lock(&self.shared.log).get_mut(self.index)
            && p.released.is_none()
        {
            p.released = Some(Instant::now());
        }
    }
}

fn set(shared: &Shared, index: usize, f: impl FnOnce(&mut Proxied)) {
    if let Some(p) = lock(&shared.log).get_mut(index) {
        f(p);
    }
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let headers = request.headers().clone();
    let logged = match read_request(request).await {
        Ok(logged) => logged,
        Err(response) => return response,
    };
    let is_call = lock(&shared.is_call).clone();
    let call = is_call(&logged);
    let fault = if call {
        lock(&shared.faults).pop_front()
    } else {
        None
    };
    let index = {
        let mut log = lock(&shared.log);
        log.push(Proxied {
            request: logged.clone(),
            call,
            faulted: fault.is_some(),
            forwarded: false,
            released: None,
        });
        log.len() - 1
    };
    let _release = Release {
        shared: shared.clone(),
        index,
    };
    let delay = if call {
        *lock(&shared.delay)
    } else {
        Duration::ZERO
    };
    let upstream = lock(&shared.upstream).clone();
    let Some(upstream) = upstream else {
        set(&shared, index, |p| p.request.status = 502);
        return Reply::status(502)
            .body("fault proxy: no upstream set")
            .into_response();
    };
    match fault {
        Some(Fault::Reply(reply)) => {
            set(&shared, index, |p| p.request.status = reply.status);
            return reply.into_response();
        }
        Some(Fault::Hang(d)) => tokio::time::sleep(d).await,
        Some(Fault::ApplyLate(d)) => {
            // Forwarded from a task of its own, which the worker closing its
            // connection (and the server dropping this handler) cannot stop.
            let (tx, rx) = tokio::sync::oneshot::channel();
            let shared = shared.clone();
            tokio::spawn(async move {
                tokio::time::sleep(d).await;
                let _ = tx.send(forward_logged(&shared, index, &upstream, &logged, &headers).await);
            });
            return rx
                .await
                .unwrap_or_else(|_| Reply::status(502).into_response());
        }
        None if !delay.is_zero() => tokio::time::sleep(delay).await,
        None => {}
    }
    forward_logged(&shared, index, &upstream, &logged, &headers).await
}

/// Forwards request `index` of the log and records what came back.
async fn forward_logged(
    shared: &Shared,
    index: usize,
    upstream: &str,
    logged: &LoggedRequest,
    headers: &http::HeaderMap,
) -> Response {
    set(shared, index, |p| p.forwarded = true);
    match forward(&shared.client, upstream, logged, headers).await {
        Ok(response) => {
            let status = response.status().as_u16();
            set(shared, index, |p| p.request.status = status);
            response
        }
        Err(e) => {
            set(shared, index, |p| p.request.status = 502);
            Reply::status(502)
                .body(format!("fault proxy: upstream failed: {e}"))
                .into_response()
        }
    }
}

async fn forward(
    client: &reqwest::Client,
    upstream: &str,
    request: &LoggedRequest,
    headers: &http::HeaderMap,
) -> Result<Response, reqwest::Error> {
    let method =
        reqwest::Method::from_bytes(request.method.as_bytes()).unwrap_or(reqwest::Method::GET);
    let mut outgoing = client.request(method, format!("{upstream}{}", request.path));
    for (name, value) in headers {
        if !HOP_HEADERS.contains(&name.as_str()) {
            outgoing = outgoing.header(name, value);
        }
    }
    let answer = outgoing.body(request.body.clone()).send().await?;
    let status = answer.status().as_u16();
    let mut response_headers = Vec::new();
    for (name, value) in answer.headers() {
        if !HOP_HEADERS.contains(&name.as_str()) {
            response_headers.push((name.clone(), value.clone()));
        }
    }
    let body = answer.bytes().await?;
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let out = response.headers_mut();
    for (name, value) in response_headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_str().as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            out.append(name, value);
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http_target::HttpTarget;

    async fn proxied() -> (HttpTarget, FaultProxy, reqwest::Client) {
        let target = HttpTarget::start().await.expect("target");
        let proxy = FaultProxy::start().await.expect("proxy");
        proxy.set_upstream(&target.url());
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        (target, proxy, client)
    }

    #[tokio::test]
    async fn forwards_calls_and_faults_only_calls() {
        let (target, proxy, client) = proxied().await;
        target.script([Reply::status(202)
            .header("x-from", "target")
            .body("applied")]);
        proxy.inject([Fault::Reply(Reply::status(503).body("injected"))]);

        // A GET is not a call: forwarded although a fault is queued.
        let got = client
            .get(format!("{}/meta?x=1", proxy.url()))
            .send()
            .await
            .expect("get");
        assert_eq!(got.status().as_u16(), 202);
        assert_eq!(got.headers()["x-from"], "target");
        assert_eq!(got.text().await.expect("body"), "applied");

        let post = |body: &'static str| {
            client
                .post(format!("{}/orders/7", proxy.url()))
                .header("idempotency-key", "k7")
                .body(body)
                .send()
        };
        let first = post("one").await.expect("post");
        assert_eq!(first.status().as_u16(), 503, "the fault hit the first call");
        let second = post("two").await.expect("post");
        assert_eq!(second.status().as_u16(), 201, "then forwarded");

        let seen = target.requests();
        assert_eq!(seen.len(), 2, "the faulted call never reached the target");
        assert_eq!(seen[0].path, "/meta?x=1");
        assert_eq!(seen[1].body, "two");
        assert_eq!(seen[1].idempotency_key(), Some("k7"));
        let calls = proxy.calls();
        assert_eq!(calls.len(), 2);
        assert!(calls[0].faulted && !calls[0].forwarded && !calls[0].applied());
        assert!(calls[1].applied() && calls[1].mentions("two"));
    }

    #[tokio::test]
    async fn a_hung_call_is_released_when_the_client_gives_up_and_never_forwarded() {
        let (target, proxy, client) = proxied().await;
        proxy.inject([Fault::Hang(Duration::from_secs(3))]);
        let cut = client
            .post(proxy.url())
            .timeout(Duration::from_millis(300))
            .send()
            .await;
        assert!(cut.is_err(), "the client timed out");
        let released = async {
            loop {
                if let Some(r) = proxy.calls()[0].released {
                    return r;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let released = tokio::time::timeout(Duration::from_secs(2), released)
            .await
            .expect("released well before the hang ends");
        assert!(released.duration_since(proxy.calls()[0].request.at) < Duration::from_secs(2));
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(target.requests().is_empty(), "never forwarded");
        assert!(!proxy.calls()[0].forwarded);
    }

    #[tokio::test]
    async fn a_late_write_lands_after_the_client_gave_up() {
        let (target, proxy, client) = proxied().await;
        proxy.inject([Fault::ApplyLate(Duration::from_millis(800))]);
        let cut = client
            .post(proxy.url())
            .body("late")
            .timeout(Duration::from_millis(200))
            .send()
            .await;
        assert!(cut.is_err(), "the client timed out");
        let landed = target
            .wait_for(
                |r| r.iter().any(|r| r.body == "late"),
                Duration::from_secs(5),
            )
            .await;
        assert!(landed, "forwarded although the client had gone");
        // The target has it before the proxy has read the target's answer
        // and recorded the call: wait for the record too.
        let mut applied = false;
        for _ in 0..250 {
            if proxy.calls().first().is_some_and(Proxied::applied) {
                applied = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(applied, "recorded as applied: {:?}", proxy.calls());
    }
}
