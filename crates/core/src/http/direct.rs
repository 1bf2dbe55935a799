//! The transport under an [`Edge`](super::Edge): hyper-util's pooled client,
//! sent to directly.
//!
//! reqwest still builds every request (connectors keep its builder, and
//! its checks on headers and URLs), but its send path wraps hyper-util's
//! client in layers an edge does not use (redirects, retries, cookies,
//! proxies, its own timeouts): on one delivered message that cost 0.13 CPU
//! s/10k against 0.08 straight through hyper-util (docs/BENCHMARKS.md). So
//! the edge converts the built request and sends it here, with the settings
//! of [`client`](super::client) done the same way: rustls with the
//! platform's verifier, HTTP/2 when the server offers it, a 10 s connect
//! timeout, `TCP_NODELAY`, idle connections kept for 90 s, no redirects and
//! no retries (hyper-util only resends a request that never left, on a
//! pooled connection the server had closed).
//!
//! Two cases stay on reqwest's own path: a process with a proxy in its
//! environment (reqwest speaks to it), and a client with settings of its
//! own ([`Edge::through`](super::Edge::through): SAP's cookie jar).

use super::{CONNECT_TIMEOUT, POOL_IDLE_TIMEOUT, USER_AGENT};
use http::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::time::{Instant, sleep_until};

/// The variables in which reqwest looks for a proxy.
const PROXY_VARIABLES: [&str; 6] = [
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
];

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// One pooled client for every edge in the process, as one reqwest client
/// was before.
#[derive(Debug)]
pub(super) struct Direct {
    client: Client<Connector, reqwest::Body>,
}

/// Why a request got no answer.
#[derive(Debug)]
pub(super) enum Unanswered {
    /// No answer before the attempt's deadline: it may have been applied.
    TimedOut,
    /// The client's error: see [`is_connect`](hyper_util::client::legacy::Error::is_connect).
    Failed(hyper_util::client::legacy::Error),
}

/// What came back: status, headers and the body as text.
#[derive(Debug)]
pub(super) struct Response {
    pub(super) status: u16,
    pub(super) headers: http::HeaderMap,
    pub(super) body: String,
}

/// The process's direct transport, or `None` when requests must go through
/// reqwest: a proxy is set in the environment, or the TLS stack cannot start
/// (then building reqwest's client fails too, and says why).
pub(super) fn shared() -> Option<&'static Direct> {
    static SHARED: OnceLock<Option<Direct>> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            if proxied(|name| std::env::var_os(name)) {
                tracing::debug!("a proxy is set: requests go through reqwest, which speaks to it");
                return None;
            }
            Direct::new()
                .inspect_err(|e| tracing::debug!("no direct transport: {e}"))
                .ok()
        })
        .as_ref()
}

/// Whether the environment (read through `var`) names a proxy.
fn proxied(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> bool {
    PROXY_VARIABLES
        .iter()
        .any(|name| var(name).is_some_and(|v| !v.is_empty()))
}

impl Direct {
    fn new() -> Result<Self, rustls::Error> {
        use rustls_platform_verifier::BuilderVerifierExt;
        // The provider reqwest picks: one installed for the process, else
        // aws-lc-rs.
        let provider = rustls::crypto::CryptoProvider::get_default()
            .cloned()
            .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_platform_verifier()?
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .build(https);
        Ok(Self { client })
    }

    /// Sends `request` and reads the answer, all within `timeout`. A body
    /// cut off by the deadline or mid-read leaves the status, which is what
    /// decides; it reads as empty.
    pub(super) async fn send(
        &self,
        mut request: http::Request<reqwest::Body>,
        timeout: Duration,
    ) -> Result<Response, Unanswered> {
        let deadline = Instant::now() + timeout;
        // What reqwest's client adds to every request.
        let headers = request.headers_mut();
        headers
            .entry(http::header::USER_AGENT)
            .or_insert(HeaderValue::from_static(USER_AGENT));
        headers
            .entry(ACCEPT)
            .or_insert(HeaderValue::from_static("*/*"));
        // One timer for both halves: the answer's head, then its body.
        let timer = sleep_until(deadline);
        tokio::pin!(timer);
        let response = tokio::select! {
            biased;
            r = self.client.request(request) => r.map_err(Unanswered::Failed)?,
            () = &mut timer => return Err(Unanswered::TimedOut),
        };
        let (head, body) = response.into_parts();
        let bytes = tokio::select! {
            biased;
            b = body.collect() => b.map(|c| c.to_bytes()).unwrap_or_default(),
            () = &mut timer => bytes::Bytes::new(),
        };
        let body = text(&head.headers, &bytes);
        Ok(Response {
            status: head.status.as_u16(),
            headers: head.headers,
            body,
        })
    }
}

/// `bytes` as text in the charset its `Content-Type` names (UTF-8 when it
/// names none or one unknown), as reqwest's `text()` reads it: a byte order
/// mark wins, bytes that do not decode become U+FFFD.
fn text(headers: &http::HeaderMap, bytes: &[u8]) -> String {
    let encoding = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(charset)
        .and_then(|label| encoding_rs::Encoding::for_label(label.as_bytes()))
        .unwrap_or(encoding_rs::UTF_8);
    encoding.decode(bytes).0.into_owned()
}

/// The `charset` parameter of a media type, unquoted.
fn charset(content_type: &str) -> Option<&str> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| value.trim().trim_matches('"'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    #[test]
    fn any_proxy_variable_sends_through_reqwest() {
        assert!(!proxied(|_| None));
        assert!(proxied(
            |n| (n == "https_proxy").then(|| OsString::from("http://p:3128"))
        ));
        assert!(proxied(
            |n| (n == "ALL_PROXY").then(|| OsString::from("socks5://p"))
        ));
        assert!(
            !proxied(|n| (n == "HTTP_PROXY").then(OsString::new)),
            "empty is unset"
        );
        assert!(!proxied(|n| (n == "NO_PROXY").then(|| OsString::from("*"))));
    }

    #[test]
    fn bodies_decode_in_their_charset() {
        let with = |ct: &str| {
            let mut h = http::HeaderMap::new();
            h.insert(CONTENT_TYPE, HeaderValue::from_str(ct).expect("header"));
            h
        };
        let latin1 = [b'K', 0xf6, b'l', b'n'];
        assert_eq!(
            text(&with("text/plain; charset=ISO-8859-1"), &latin1),
            "Köln"
        );
        assert_eq!(
            text(&with("text/plain;charset=\"latin1\""), &latin1),
            "Köln"
        );
        assert_eq!(text(&with("application/json"), "Köln".as_bytes()), "Köln");
        assert_eq!(text(&http::HeaderMap::new(), &latin1), "K\u{fffd}ln");
        assert_eq!(
            text(&with("text/plain; charset=no-such"), "ok".as_bytes()),
            "ok"
        );
    }

    #[test]
    fn charset_is_read_from_the_parameters_only() {
        assert_eq!(charset("text/html; Charset=UTF-8"), Some("UTF-8"));
        assert_eq!(charset("text/html; q=1; charset = utf-8 "), Some("utf-8"));
        assert_eq!(charset("charset=utf-8"), None, "a type, not a parameter");
        assert_eq!(charset("text/html"), None);
    }
}
