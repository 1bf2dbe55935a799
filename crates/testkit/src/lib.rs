//! Real servers for gluefleet tests.
//!
//! gluefleet workers talk to Pub/Sub and to external systems over the
//! network, so the tests that matter run them against real servers rather
//! than mocks: the Pub/Sub emulator ([`pubsub`]), the Firestore emulator
//! ([`firestore`]) for connectors that keep state there, a scriptable local HTTP
//! server standing in for the external system ([`http_target`]), a double of a
//! Salesforce org, which has no local server ([`salesforce`]), a Google
//! Workspace domain checked against Google's Discovery documents
//! ([`workspace`]), an OAuth 2.0 token endpoint whose tokens expire
//! ([`token`]), an OTLP trace receiver standing in for an OpenTelemetry
//! collector ([`otlp`]), and the connector
//! binaries themselves as child processes ([`bin`]). Everything
//! listens on a free port of 127.0.0.1 and every child process gets its own
//! process group, so parallel tests do not collide and nothing outlives the
//! test that started it.

mod admin;
pub mod bin;
pub mod conformance;
pub mod discovery;
mod error;
pub mod file_source;
pub mod firestore;
pub mod http_target;
pub mod net;
pub mod oidc;
pub mod otlp;
pub mod pipeline;
mod process;
pub mod prometheus;
pub mod pubsub;
pub mod salesforce;
pub mod sap;
mod server;
mod temp;
pub mod token;
pub mod workspace;

pub use error::TestkitError;
pub use temp::TempDir;

use std::net::{Ipv4Addr, TcpListener};

/// A port on 127.0.0.1 that was free a moment ago.
///
/// Servers that must be told their port up front (the emulator takes it on
/// the command line) cannot bind port 0 themselves, so we ask the kernel for
/// one and release it. Another process could take it in between; that race is
/// accepted for tests.
///
/// # Panics
///
/// Panics if no local port can be bound at all: the machine cannot run any of
/// these tests then.
pub fn free_port() -> u16 {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding 127.0.0.1:0 for a free port");
    listener
        .local_addr()
        .expect("reading the port of a bound listener")
        .port()
}

/// Whether nothing listens on `port` of 127.0.0.1 any more.
///
/// Restarting a server on the same port only works once the previous one has
/// let go of it.
pub(crate) fn port_is_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// The last `n` lines of a log, joined, for error messages.
pub(crate) fn tail(lines: &[String], n: usize) -> String {
    let start = lines.len().saturating_sub(n);
    lines[start..].join("\n")
}

/// A [`TestkitError::Decode`] for an answer of request `what` that did not
/// parse; shared by the emulator clients.
pub(crate) fn decode(what: &str, e: impl std::fmt::Display) -> TestkitError {
    TestkitError::Decode {
        what: what.to_owned(),
        detail: e.to_string(),
    }
}
