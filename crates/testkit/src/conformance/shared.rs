//! One heavy server per test binary, shared by the cases that run in it.
//!
//! Every case is its own `#[tokio::test]`, so cases report one by one; but
//! starting a Pub/Sub emulator, a Firestore emulator or a SAP CAP server
//! per case would cost seconds each, on two cores, for nothing a case
//! needs: each case makes its own topics, documents or keys. [`Shared`]
//! starts the server once, on a runtime of its own, and stops it when the
//! last case using it is done.
//!
//! Why a runtime of its own: each `#[tokio::test]` has a runtime that ends
//! with the test. A server started on one would lose its output readers
//! (and block once its pipe fills) when that first test ends, and an HTTP
//! client's pooled connections live on the runtime that opened them. So the
//! server starts, and every call to it runs, on the background runtime
//! ([`SharedLease::run`]).
//!
//! Why stop at the last user rather than at exit: Rust runs no destructor
//! for a `static`, so a server kept until exit would outlive the test
//! binary. Counting users stops it as soon as no case holds it; if that
//! happens between two cases, the next one starts a fresh server.

use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};

use crate::TestkitError;
use crate::http_target::lock;

/// The runtime shared servers start and are called on.
fn background() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("gluefleet-conformance-shared")
            .enable_all()
            .build()
            .expect("building the runtime for shared test servers")
    })
}

/// Runs `fut` on the background runtime and waits for it.
pub(crate) async fn on_background<R: Send + 'static>(
    fut: impl Future<Output = R> + Send + 'static,
) -> R {
    match background().spawn(fut).await {
        Ok(r) => r,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// A server shared by the cases of one test binary; declare it as a
/// `static` (`static CAP: Shared<SapCap> = Shared::new();`).
#[derive(Debug)]
pub struct Shared<T> {
    /// Serialises starts, so two cases arriving together start one server.
    starting: tokio::sync::Mutex<()>,
    state: Mutex<State<T>>,
}

#[derive(Debug)]
struct State<T> {
    value: Option<Arc<T>>,
    users: usize,
}

impl<T: Send + Sync + 'static> Shared<T> {
    /// No server yet; the first [`Shared::acquire`] starts it.
    pub const fn new() -> Self {
        Self {
            starting: tokio::sync::Mutex::const_new(()),
            state: Mutex::new(State {
                value: None,
                users: 0,
            }),
        }
    }

    /// The running server, started with `start` (on the background
    /// runtime) if no case holds one.
    pub async fn acquire<F, Fut>(&'static self, start: F) -> Result<SharedLease<T>, TestkitError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, TestkitError>> + Send + 'static,
    {
        let _starting = self.starting.lock().await;
        {
            let mut state = lock(&self.state);
            if let Some(value) = state.value.clone() {
                state.users += 1;
                return Ok(SharedLease { owner: self, value });
            }
        }
        let value = Arc::new(on_background(async move { start().await }).await?);
        let mut state = lock(&self.state);
        state.value = Some(value.clone());
        state.users = 1;
        Ok(SharedLease { owner: self, value })
    }
}

impl<T: Send + Sync + 'static> Default for Shared<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// A case's hold on a [`Shared`] server; the last one dropped stops it.
#[derive(Debug)]
pub struct SharedLease<T: Send + Sync + 'static> {
    owner: &'static Shared<T>,
    value: Arc<T>,
}

impl<T: Send + Sync + 'static> SharedLease<T> {
    /// Runs `f` with the server on the background runtime, where its
    /// clients' connections live.
    pub async fn run<R, Fut>(&self, f: impl FnOnce(Arc<T>) -> Fut) -> R
    where
        R: Send + 'static,
        Fut: Future<Output = R> + Send + 'static,
    {
        on_background(f(self.value.clone())).await
    }
}

impl<T: Send + Sync + 'static> std::ops::Deref for SharedLease<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: Send + Sync + 'static> Drop for SharedLease<T> {
    fn drop(&mut self) {
        let last = {
            let mut state = lock(&self.owner.state);
            state.users = state.users.saturating_sub(1);
            if state.users == 0 {
                state.value.take()
            } else {
                None
            }
        };
        // Dropping the last handle (ours goes right after) stops the server.
        drop(last);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static STARTS: AtomicUsize = AtomicUsize::new(0);
    static STOPS: AtomicUsize = AtomicUsize::new(0);

    #[derive(Debug)]
    struct Server(usize);

    impl Drop for Server {
        fn drop(&mut self) {
            STOPS.fetch_add(1, Ordering::SeqCst);
        }
    }

    static SERVER: Shared<Server> = Shared::new();

    async fn start() -> Result<Server, TestkitError> {
        Ok(Server(STARTS.fetch_add(1, Ordering::SeqCst)))
    }

    #[tokio::test]
    async fn one_server_while_held_stopped_with_the_last_lease() {
        let a = SERVER.acquire(start).await.expect("a");
        let b = SERVER.acquire(start).await.expect("b");
        assert_eq!((a.0, b.0), (0, 0), "the second case got the same server");
        assert_eq!(STARTS.load(Ordering::SeqCst), 1);
        let on_background = a
            .run(|s| async move { (s.0, std::thread::current().name().map(str::to_owned)) })
            .await;
        assert_eq!(on_background.0, 0);
        assert_eq!(
            on_background.1.as_deref(),
            Some("gluefleet-conformance-shared")
        );
        drop(a);
        assert_eq!(STOPS.load(Ordering::SeqCst), 0, "still held by b");
        drop(b);
        assert_eq!(
            STOPS.load(Ordering::SeqCst),
            1,
            "stopped with the last lease"
        );
        let c = SERVER.acquire(start).await.expect("c");
        assert_eq!(c.0, 1, "a later case starts a fresh one");
    }
}
