//! A real SAP CAP server per test: OData V4 and V2 with a Gateway-style CSRF
//! handshake, for connectors that write to SAP.
//!
//! There is no local SAP Gateway, but SAP's own Cloud Application
//! Programming model (`@sap/cds` 9 on Node 20) serves a real OData V4
//! service, and the `@cap-js-community/odata-v2-adapter` plugin serves the
//! same service as V2, with ETags (428 without `If-Match`, 412 on a stale
//! one), `$batch` changesets and V2 error bodies. The sandbox project in
//! `tests/sandboxes/sap-cap` adds what CAP lacks: Gateway's CSRF handshake
//! (`X-CSRF-Token: Fetch` → token + `SAP_SESSIONID_GLF` cookie; a write
//! without both → 403 `X-CSRF-Token: Required`), 409 on a duplicate key, and
//! admin endpoints for request counts, token expiry and reset. Its README
//! lists the exact answers the connector must handle.
//!
//! The first start runs `npm ci` in the sandbox (a few seconds from the npm
//! cache, longer from the registry), serialised across test processes by a
//! lock file. Each [`SapCap`] is its own Node process on a free port with an
//! in-memory database seeded with two partners and one order, so tests run
//! in parallel without sharing rows.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;
use tokio::process::Command;

use crate::process::{self, ChildServer, ERROR_TAIL_LINES, GroupChild};
use crate::{TestkitError, admin};

/// How long a server may take from spawn to serving `$metadata` (1-4 s on
/// an idle machine; much more while other crates compile on 2 cores).
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// How long `npm ci` may take; from a warm npm cache it needs seconds.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);
/// How long `npm ci` gets to exit on SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// `server.js` prints this once the port serves requests.
const READY_LINE: &str = "[gluefleet-sap-cap] ready on";
/// The service name in URLs: `SalesService` is served at `/odata/v4/sales`.
const SERVICE_PATH: &str = "sales";
/// Requests carrying this header are served but not counted in
/// [`SapCap::stats`], so test-side reads do not blur the connector's counts.
const UNCOUNTED_HEADER: &str = "x-glf-testkit";
/// `npm ci` arguments; `.npmrc` in the sandbox says the same, this keeps the
/// command right even if that file is not read.
const NPM_CI_ARGS: [&str; 5] = [
    "ci",
    "--legacy-peer-deps",
    "--ignore-scripts",
    "--no-audit",
    "--no-fund",
];

/// Characters escaped in a key inside `('...')`: everything but RFC 3986
/// unreserved characters and the quote itself (doubled, not encoded).
const KEY_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'\'');

/// A running SAP CAP server, stopped (whole process group) on drop.
#[derive(Debug)]
pub struct SapCap {
    /// The Node process group, on a port fixed up front.
    server: ChildServer,
    http: reqwest::Client,
}

impl SapCap {
    /// Whether `node` and `npm` are on `PATH`. Tests must not use this to
    /// skip: a missing Node should fail the test loudly.
    pub fn available() -> bool {
        process::find_on_path("node").is_some() && process::find_on_path("npm").is_some()
    }

    /// The sandbox project: `tests/sandboxes/sap-cap` of the workspace.
    pub fn sandbox_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/sandboxes/sap-cap")
    }

    /// Installs the sandbox's node modules if needed, starts the server on a
    /// free port and waits until it serves the V4 `$metadata`.
    pub async fn start() -> Result<Self, TestkitError> {
        if !Self::available() {
            return Err(TestkitError::Spawn {
                what: "the SAP CAP sandbox (node and npm)".to_owned(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "node or npm not found on PATH; install Node.js 20",
                ),
            });
        }
        let dir = Self::sandbox_dir();
        ensure_installed(&dir).await?;
        let http = admin::client("SAP CAP")?;
        let mut server = Self {
            server: ChildServer::on_free_port(),
            http,
        };
        // On error `server` drops here, which kills whatever did start.
        server.launch(&dir).await?;
        Ok(server)
    }

    /// `http://127.0.0.1:PORT`, where the admin endpoints live.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.server.port())
    }

    /// The port the server listens on (127.0.0.1 only).
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// The OData V4 service root of `SalesService`, without a trailing slash:
    /// `http://127.0.0.1:PORT/odata/v4/sales`.
    pub fn v4_service(&self) -> String {
        format!("{}/odata/v4/{SERVICE_PATH}", self.url())
    }

    /// The OData V2 service root of the same service, without a trailing
    /// slash: `http://127.0.0.1:PORT/odata/v2/sales`.
    pub fn v2_service(&self) -> String {
        format!("{}/odata/v2/{SERVICE_PATH}", self.url())
    }

    /// The server's output so far, for debugging.
    pub fn logs(&self) -> Vec<String> {
        self.server.logs()
    }

    /// Counts of the OData requests clients sent since the start or the last
    /// [`reset`](Self::reset): `{"requests", "batch", "csrf_fetch", "writes",
    /// "csrf_rejected", "v2", "v4", "by_method": {"GET": n, ...}}`. Requests
    /// made through this struct are not counted.
    pub async fn stats(&self) -> Result<Value, TestkitError> {
        self.admin(reqwest::Method::GET, "stats", "reading SAP CAP stats")
            .await
    }

    /// Invalidates every CSRF token and session, as an expired Gateway
    /// session looks: the next write with an old token gets 403
    /// `X-CSRF-Token: Required` until the client fetches a new one.
    pub async fn invalidate_csrf(&self) -> Result<(), TestkitError> {
        self.admin(
            reqwest::Method::POST,
            "csrf/invalidate",
            "invalidating SAP CAP CSRF tokens",
        )
        .await
        .map(drop)
    }

    /// Deletes every row (the seed rows too) and zeroes the stats; CSRF
    /// tokens stay valid. For running several cases on one server.
    pub async fn reset(&self) -> Result<(), TestkitError> {
        self.admin(reqwest::Method::POST, "reset", "resetting SAP CAP")
            .await
            .map(drop)
    }

    /// Entity `set('key')` as V4 JSON (with `@odata.etag`), `None` if there
    /// is none. Needs no CSRF token and is not counted in the stats.
    pub async fn get_entity(&self, set: &str, key: &str) -> Result<Option<Value>, TestkitError> {
        let what = format!("reading {set}('{key}') from SAP CAP");
        let url = format!("{}/{set}({})", self.v4_service(), key_literal(key));
        let (status, text) = self.send(reqwest::Method::GET, url, &what).await?;
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        admin::parse(&what, status, &text).map(Some)
    }

    /// Kills the server's process group. Idempotent; also runs on drop.
    pub fn stop(&mut self) {
        self.server.stop();
    }

    /// Spawns `cds serve` in `dir` on `self.server.port()` and waits until it serves.
    async fn launch(&mut self, dir: &Path) -> Result<(), TestkitError> {
        let port = self.server.port().to_string();
        let args = ["node_modules/@sap/cds/bin/serve.js", "all", "--in-memory"];
        let what = format!("PORT={port} node {} (in {})", args.join(" "), dir.display());
        let mut command = Command::new("node");
        command
            .args(args)
            .current_dir(dir)
            .env("PORT", &port)
            .env("HOST", "127.0.0.1")
            .env_remove("CDS_ENV")
            .env_remove("NODE_ENV");
        let started = Instant::now();
        self.server
            .launch(command, what.clone(), READY_LINE, READY_TIMEOUT)
            .await?;
        // The line comes from the 'listening' event; one answered
        // `$metadata` proves the OData routes are mounted as well.
        let metadata = format!("{}/$metadata", self.v4_service());
        loop {
            let answer = self
                .send(reqwest::Method::GET, metadata.clone(), &what)
                .await;
            match answer {
                Ok((status, _)) if status.is_success() => return Ok(()),
                _ if started.elapsed() >= READY_TIMEOUT => {
                    return Err(self.server.not_ready(&what, READY_TIMEOUT));
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// `GET`/`POST` on `/__admin/<path>`; the answer as JSON (`null` when
    /// empty).
    async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        what: &str,
    ) -> Result<Value, TestkitError> {
        let url = format!("{}/__admin/{path}", self.url());
        let (status, text) = self.send(method, url, what).await?;
        admin::parse(what, status, &text)
    }

    /// One uncounted request; returns the status and body.
    async fn send(
        &self,
        method: reqwest::Method,
        url: String,
        what: &str,
    ) -> Result<(reqwest::StatusCode, String), TestkitError> {
        let request = self
            .http
            .request(method, url)
            .header(UNCOUNTED_HEADER, "1")
            .header(reqwest::header::ACCEPT, "application/json");
        admin::send(request, what).await
    }
}

impl Drop for SapCap {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `npm ci` in `dir` unless its `node_modules` is complete and newer
/// than `package-lock.json`. A lock file serialises this across parallel
/// tests and test processes, so only the first one installs.
async fn ensure_installed(dir: &Path) -> Result<(), TestkitError> {
    if installed(dir) {
        return Ok(());
    }
    let lock_path = dir.join(".npm-install.lock");
    // Blocking until another installer is done; off the async threads.
    let lock = tokio::task::spawn_blocking(move || lock_exclusive(&lock_path))
        .await
        .map_err(|e| TestkitError::Io {
            what: "waiting for the SAP CAP install lock".to_owned(),
            source: std::io::Error::other(e.to_string()),
        })??;
    if installed(dir) {
        return Ok(());
    }
    let what = format!("npm {} (in {})", NPM_CI_ARGS.join(" "), dir.display());
    let mut command = Command::new("npm");
    command.args(NPM_CI_ARGS).current_dir(dir);
    let mut child = GroupChild::spawn(command, what.clone(), None)?;
    let Some(status) = child.wait(INSTALL_TIMEOUT).await else {
        let err = child.not_ready(INSTALL_TIMEOUT);
        child.stop(STOP_GRACE, || false);
        return Err(err);
    };
    drop(lock);
    if !status.success() {
        return Err(TestkitError::Build {
            command: what,
            status,
            log_tail: crate::tail(&child.logs(), ERROR_TAIL_LINES),
        });
    }
    Ok(())
}

/// Whether `npm ci` finished in `dir` after the lock file last changed:
/// npm writes `node_modules/.package-lock.json` at the end of an install.
fn installed(dir: &Path) -> bool {
    let modified = |p: PathBuf| p.metadata().and_then(|m| m.modified()).ok();
    match (
        modified(dir.join("node_modules/.package-lock.json")),
        modified(dir.join("package-lock.json")),
    ) {
        (Some(installed), Some(locked)) => {
            installed >= locked && dir.join("node_modules/@sap/cds/bin/serve.js").is_file()
        }
        _ => false,
    }
}

/// Opens `path` and takes an exclusive lock on it, released when the file
/// is dropped (or the process dies).
fn lock_exclusive(path: &Path) -> Result<File, TestkitError> {
    let io = |source| TestkitError::Io {
        what: format!("locking {}", path.display()),
        source,
    };
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io)?;
    file.lock().map_err(io)?;
    Ok(file)
}

/// `key` as an OData string literal for a URL path: quoted, inner quotes
/// doubled, the rest percent-encoded.
fn key_literal(key: &str) -> String {
    let quoted = format!("'{}'", key.replace('\'', "''"));
    utf8_percent_encode(&quoted, KEY_ESCAPES).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_quoted_and_encoded() {
        assert_eq!(key_literal("BP0001"), "'BP0001'");
        assert_eq!(key_literal("O'Hara"), "'O''Hara'");
        assert_eq!(key_literal("a b/c?"), "'a%20b%2Fc%3F'");
    }

    #[test]
    fn sandbox_dir_holds_the_project() {
        assert!(SapCap::sandbox_dir().join("package.json").is_file());
    }
}
