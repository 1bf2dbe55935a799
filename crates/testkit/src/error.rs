//! The one error type of the testkit.
//!
//! A failing integration test is only useful if it says what failed to
//! start or answer, so every variant carries the step and, where there is
//! one, the tail of the server's own log.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

/// What went wrong while starting, talking to or stopping a test server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestkitError {
    /// The emulators (Pub/Sub, Firestore) are started through the gcloud CLI.
    #[error(
        "gcloud not found on PATH; install google-cloud-cli (with the pubsub-emulator and cloud-firestore-emulator components)"
    )]
    GcloudMissing,

    /// A child process could not be started at all.
    #[error("could not start {what}: {source}")]
    Spawn {
        /// The command line, for reproducing by hand.
        what: String,
        /// Why the OS refused.
        source: std::io::Error,
    },

    /// A server did not report readiness in time.
    #[error("{what} not ready after {timeout:?}; last log lines:\n{log_tail}")]
    NotReady {
        /// Which server.
        what: String,
        /// How long we waited.
        timeout: Duration,
        /// The end of its output.
        log_tail: String,
    },

    /// A server process exited while we were waiting for it to become ready.
    #[error("{what} exited with {status} before it was ready; last log lines:\n{log_tail}")]
    Exited {
        /// Which server.
        what: String,
        /// How it exited.
        status: ExitStatus,
        /// The end of its output.
        log_tail: String,
    },

    /// A port stayed taken after the server on it was stopped.
    #[error("port {port} still in use {waited:?} after stopping {what}")]
    PortBusy {
        /// Which server.
        what: String,
        /// The port.
        port: u16,
        /// How long we waited for it to free up.
        waited: Duration,
    },

    /// A local I/O operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What we were doing.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },

    /// An HTTP request to a test server failed before an answer arrived.
    #[error("{what}: {source}")]
    Http {
        /// The request.
        what: String,
        /// The transport error.
        source: reqwest::Error,
    },

    /// A test server answered with a non-success status.
    #[error("{what}: HTTP {status}: {body}")]
    Api {
        /// The request.
        what: String,
        /// The status it answered.
        status: u16,
        /// The body it answered, for the reason.
        body: String,
    },

    /// A test server answered something we could not read.
    #[error("{what}: unexpected answer: {detail}")]
    Decode {
        /// The request.
        what: String,
        /// What did not fit.
        detail: String,
    },

    /// A worker run to its end was still running after its time.
    #[error("{what} was still running after {timeout:?}; last log lines:\n{log_tail}")]
    StillRunning {
        /// The command line.
        what: String,
        /// How long we waited.
        timeout: Duration,
        /// The end of its output.
        log_tail: String,
    },

    /// A worker run to its end exited with another status than 0.
    #[error("{what} exited with {status}; last log lines:\n{log_tail}")]
    Failed {
        /// The command line.
        what: String,
        /// How it exited.
        status: ExitStatus,
        /// The end of its output.
        log_tail: String,
    },

    /// A connector binary was neither built nor buildable.
    #[error("connector binary {binary} not found: {tried}")]
    BinaryNotFound {
        /// The binary name, e.g. `gluefleet-legacy-rest`.
        binary: String,
        /// Where we looked and what we ran.
        tried: String,
    },

    /// `cargo build` for a connector binary failed.
    #[error("`{command}` failed with {status}; last output lines:\n{log_tail}")]
    Build {
        /// The command line.
        command: String,
        /// How cargo exited.
        status: ExitStatus,
        /// The end of cargo's output.
        log_tail: String,
    },

    /// The running test's own path could not be read.
    #[error("cannot locate the cargo target directory from the test executable {exe:?}")]
    TargetDir {
        /// What `current_exe` gave, if anything.
        exe: Option<PathBuf>,
    },
}
