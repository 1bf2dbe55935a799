//! The conformance suite: the same behaviour checks for every connector.
//!
//! The fleet layout test checks that every connector has the same shape;
//! this suite checks that every connector *behaves* the same where the core
//! promises it does: one effect per event, retries that end in one effect,
//! `Retry-After` honoured, one credential refresh after a 401, permanent
//! failures dead-lettered with every `gluefleet-*` reason, no concurrent
//! duplicate after a timeout, nothing lost on SIGTERM, and per-item outcomes
//! of a batch. docs/CONFORMANCE.md says what each case proves.
//!
//! Each case runs the connector's real binary against the real Pub/Sub
//! emulator (one per test binary, see [`Shared`]) and the connector's real
//! system or its testkit double, with a [`FaultProxy`] of its own in front
//! of that system. The proxy is where faults are injected and where call
//! times are recorded, so a case asserts on what the system saw, never on
//! the test's own sleeps.
//!
//! A connector takes part by implementing [`Subject`] in
//! `connectors/<name>/tests/conformance.rs` and expanding
//! [`conformance_suite!`](crate::conformance_suite), which writes one
//! `#[tokio::test]` per case.
//!
//! ```no_run
//! // Compiled, not run: the cases need a connector binary and the Pub/Sub
//! // emulator. connectors/legacy-rest/tests/conformance.rs runs this shape.
//! use gluefleet_testkit::conformance::{FaultProxy, Subject};
//! use gluefleet_testkit::http_target::{HttpTarget, LoggedRequest};
//! use gluefleet_testkit::token::TokenServer;
//! use gluefleet_testkit::TestkitError;
//! use std::time::Duration;
//!
//! struct Rest {
//!     target: HttpTarget,
//!     token: TokenServer,
//! }
//!
//! impl Subject for Rest {
//!     const CONNECTOR: &'static str = "my-rest";
//!
//!     async fn start(_front: String) -> Result<(Self, String), TestkitError> {
//!         let target = HttpTarget::start().await?;
//!         let token = TokenServer::start("gluefleet", "s3cret", Duration::from_secs(3600)).await?;
//!         let upstream = target.url();
//!         Ok((Self { target, token }, upstream))
//!     }
//!
//!     fn target(&self, front: &FaultProxy) -> String {
//!         format!(
//!             "[auth]\nkind = \"oauth2_client_credentials\"\ntoken_url = \"{}\"\n\
//!              client_id = \"gluefleet\"\nclient_secret = \"s3cret\"\n\n\
//!              [target]\nbase_url = \"{}\"\nallow_insecure_http = true\n",
//!             self.token.token_url(),
//!             front.url()
//!         )
//!     }
//!
//!     fn action(&self) -> String {
//!         r#"{ path = "/items/{data.id}", body = "{id: .data.id, name: .data.name}" }"#.into()
//!     }
//!
//!     async fn effects(&self, tag: &str, _front: &FaultProxy) -> usize {
//!         let applied = |r: &LoggedRequest| (200..300).contains(&r.status) && r.body.contains(tag);
//!         self.target.requests().iter().filter(|r| applied(r)).count()
//!     }
//!
//!     fn refreshes(&self) -> Option<usize> {
//!         Some(self.token.issued().len())
//!     }
//! }
//!
//! gluefleet_testkit::conformance_suite!(Rest);
//! ```

mod batch;
mod delivery;
mod failure;
mod harness;
mod proxy;
mod shared;
mod shutdown;
mod throttle;

use std::future::Future;

pub use proxy::{Fault, FaultProxy, Proxied};
/// For subjects' [`Batch::refused`] data, without a `serde_json` dependency.
pub use serde_json::{Value, json};
pub use shared::{Shared, SharedLease};

use crate::TestkitError;
use crate::http_target::LoggedRequest;

/// Every case of the suite, as [`conformance_suite!`](crate::conformance_suite)
/// expands them.
pub mod cases {
    pub use super::batch::batch_outcomes_are_per_item;
    pub use super::delivery::{duplicate_has_one_effect, success_is_acked, transient_then_success};
    pub use super::failure::{
        permanent_is_dead_lettered_with_every_reason, timeout_has_no_concurrent_duplicate,
    };
    pub use super::shutdown::sigterm_mid_batch_loses_nothing;
    pub use super::throttle::{retry_after_is_honoured, unauthorized_refreshes_once};
}

/// The default timeout of the suite's routes ([`Subject::ROUTE_TIMEOUT`]).
/// Short, so the timeout case is quick; long enough that a local server on
/// a busy two-core machine answers well within it.
pub const DEFAULT_ROUTE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// A connector under test and the system it writes to.
///
/// One value per case: [`Subject::start`] starts what the connector talks
/// to (an [`HttpTarget`](crate::http_target::HttpTarget), the Salesforce
/// double, or a lease on a [`Shared`] SAP CAP server or Firestore
/// emulator). The suite puts a [`FaultProxy`] in front of it and writes the
/// worker's config: the shared tables (`[pubsub]`, `[delivery]`, short
/// retry backoffs), then [`Subject::target`], then the routes, with
/// [`Subject::action`] as their action and [`Subject::ROUTE_TIMEOUT`] as
/// their timeout.
///
/// Events are CloudEvents of source `//conformance` whose id is a *tag*
/// (at most 10 characters of `[a-z0-9-]`, unique in the test binary, so it
/// fits any key) and whose data is `{"id": TAG, "name": "conformance TAG"}`.
/// An action must put the tag in the call's path or body: that is how the
/// suite tells the calls of one event apart ([`Proxied::mentions`]).
pub trait Subject: Sized + Send + Sync + 'static {
    /// The connector's name: the binary is `gluefleet-<CONNECTOR>`, and dead
    /// letters carry it in `gluefleet-connector`.
    const CONNECTOR: &'static str;

    /// The `timeout` of the suite's routes; the timeout case hangs a call
    /// for twice this. Raise it for a system that can be slow to answer
    /// under load (an emulator on a JVM).
    const ROUTE_TIMEOUT: std::time::Duration = DEFAULT_ROUTE_TIMEOUT;

    /// Cases this connector is known to fail, each with the reason (a
    /// documented limit, the change that will fix it). Such a case still
    /// runs: its failure is reported on stderr as expected, and its
    /// *passing* fails the test, so the entry is removed once the fix lands.
    /// A known failure is never a capability the connector lacks: those are
    /// [`Subject::refreshes`] and [`Subject::batch`].
    const KNOWN_FAILURES: &'static [(&'static str, &'static str)] = &[];

    /// Starts the system for one case; returns the subject and the URL
    /// (`http://host:port`) of the system, where the proxy forwards to.
    /// `front` is the proxy's URL, for a system that must name its own
    /// public URL (the Salesforce double's `instance_url`).
    fn start(front: String) -> impl Future<Output = Result<(Self, String), TestkitError>> + Send;

    /// The `[target]` table (and `[auth]`, if the connector has one) of the
    /// worker's config, reaching the system through `front`.
    fn target(&self, front: &FaultProxy) -> String;

    /// The action of the route `conformance` (an inline TOML table): it
    /// applies one event once.
    fn action(&self) -> String;

    /// Environment variables the worker needs besides Pub/Sub's: secrets,
    /// emulator hosts (through `front`).
    fn env(&self, front: &FaultProxy) -> Vec<(String, String)> {
        let _ = front;
        Vec::new()
    }

    /// Whether a request through the proxy applies events (a *call*).
    /// Faults and delays hit calls only; token, CSRF and metadata requests
    /// pass untouched. Default: every request that is not a `GET`.
    fn is_call(request: &LoggedRequest) -> bool {
        request.method != "GET"
    }

    /// How many times the system applied the event tagged `tag`, by the
    /// system's own account where it keeps one (a counter, a request log),
    /// else by the calls `front` forwarded and saw answered 2xx.
    fn effects(&self, tag: &str, front: &FaultProxy) -> impl Future<Output = usize> + Send;

    /// Credentials fetched from the token endpoint so far, if the connector
    /// has a credential that can be refreshed and the endpoint counts
    /// fetches. `None`: the 401 case checks the one retry but not the
    /// refresh, and says so.
    fn refreshes(&self) -> Option<usize> {
        None
    }

    /// For a connector that batches: the routes and event of the per-item
    /// case. `None`: the connector does not batch; the case is skipped with
    /// a note on stderr.
    fn batch(&self) -> Option<Batch> {
        None
    }
}

/// How the batching case makes one item of a batch fail while the others
/// succeed.
#[derive(Clone, Debug)]
pub struct Batch {
    /// The action of the route `conformance-batch` (events of type
    /// `conformance.batch`); it must be batched.
    pub action: String,
    /// The action of the route `conformance-refused` (type
    /// `conformance.refused`), batched with the others; `None`: the same as
    /// [`Batch::action`].
    pub refused_action: Option<String>,
    /// The data of the event the system refuses item by item (a key too
    /// long, a record a validation rule refuses, a document that does not
    /// exist), given the event's tag.
    pub refused: fn(&str) -> serde_json::Value,
}

/// Runs one case of subject `S`, minding [`Subject::KNOWN_FAILURES`].
///
/// # Panics
///
/// When the case fails (and is not a known failure), or when a known
/// failure passes.
pub async fn run_case<S: Subject>(name: &str, case: impl Future<Output = ()> + Send + 'static) {
    let Some((_, why)) = S::KNOWN_FAILURES.iter().find(|(c, _)| *c == name) else {
        case.await;
        return;
    };
    match tokio::spawn(case).await {
        Err(e) if e.is_panic() => harness::note(
            S::CONNECTOR,
            name,
            &format!("KNOWN FAILURE (failed as declared): {why}"),
        ),
        Ok(()) => panic!(
            "{name} is declared a known failure of {} ({why}) but passed: remove it from KNOWN_FAILURES",
            S::CONNECTOR
        ),
        Err(e) => panic!("{name}: {e}"),
    }
}

/// Writes one `#[tokio::test]` per conformance case for a [`Subject`], each
/// named after its case, so a failure names the behaviour that broke and
/// one case can be run alone (`cargo test --test conformance -- retry_after`).
/// The test crate needs `tokio` (the workspace's, with `macros` and
/// `rt-multi-thread`) among its dev-dependencies.
#[macro_export]
macro_rules! conformance_suite {
    ($subject:ty) => {
        $crate::conformance_suite!(@cases $subject;
            success_is_acked,
            duplicate_has_one_effect,
            transient_then_success,
            retry_after_is_honoured,
            unauthorized_refreshes_once,
            permanent_is_dead_lettered_with_every_reason,
            timeout_has_no_concurrent_duplicate,
            sigterm_mid_batch_loses_nothing,
            batch_outcomes_are_per_item
        );
    };
    (@cases $subject:ty; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::conformance::run_case::<$subject>(
                    stringify!($case),
                    $crate::conformance::cases::$case::<$subject>(),
                )
                .await;
            }
        )*
    };
}
