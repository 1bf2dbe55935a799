//! The lifecycle shared by the in-process HTTP servers of this crate (the
//! HTTP target, the Salesforce double): bind a free port, serve an axum
//! router, stop so that connections are refused at once, restart on the
//! same port.

use std::net::SocketAddr;
use std::os::fd::{AsFd as _, OwnedFd};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::TestkitError;
use crate::http_target::lock;

/// How long `restart` waits for the old server to let go of the port.
const PORT_RELEASE_TIMEOUT: Duration = Duration::from_secs(10);

/// The listening half, present while the server is up.
#[derive(Debug)]
struct Running {
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<()>,
    /// A duplicate of the listening socket, so `stop` can shut it down
    /// synchronously.
    listener_fd: OwnedFd,
}

/// A local server on 127.0.0.1. Stops on drop.
#[derive(Debug)]
pub(crate) struct LocalServer {
    name: &'static str,
    addr: SocketAddr,
    app: Router,
    running: Mutex<Option<Running>>,
    /// The previous server task, awaited by `restart` before rebinding.
    stopped_task: Mutex<Option<JoinHandle<()>>>,
}

impl LocalServer {
    /// Serves the router `make_app` builds for the bound address, on a free
    /// port; `name` appears in errors and logs.
    pub(crate) async fn start(
        name: &'static str,
        make_app: impl FnOnce(SocketAddr) -> Router,
    ) -> Result<Self, TestkitError> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|source| TestkitError::Io {
                what: format!("binding {name} to 127.0.0.1:0"),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| TestkitError::Io {
            what: format!("reading the address of {name}"),
            source,
        })?;
        let server = Self {
            name,
            addr,
            app: make_app(addr),
            running: Mutex::new(None),
            stopped_task: Mutex::new(None),
        };
        server.serve(listener)?;
        Ok(server)
    }

    /// The bound address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops listening: from the moment this returns, new connections are
    /// refused; requests in flight still get their answer. Idempotent.
    ///
    /// The listening socket is shut down here, synchronously, through a
    /// duplicate of its descriptor: until the server task runs again a
    /// client's connect would otherwise still succeed and then be reset,
    /// which is not what a down system looks like.
    pub(crate) fn stop(&self) {
        let Some(running) = lock(&self.running).take() else {
            return;
        };
        // On Linux, shutdown(2) on a listening socket stops it listening.
        let _ = std::net::TcpStream::from(running.listener_fd).shutdown(std::net::Shutdown::Both);
        let _ = running.shutdown.send(());
        *lock(&self.stopped_task) = Some(running.task);
    }

    /// Listens again on the same port with the same router (and so the same
    /// state). A restart of a running server stops it first.
    pub(crate) async fn restart(&self) -> Result<(), TestkitError> {
        self.stop();
        let old_task = lock(&self.stopped_task).take();
        if let Some(task) = old_task {
            // Requests in flight finish first; a stuck one is cut off.
            let abort = task.abort_handle();
            if tokio::time::timeout(PORT_RELEASE_TIMEOUT, task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
        let deadline = Instant::now() + PORT_RELEASE_TIMEOUT;
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(listener) => break listener,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(_) => {
                    return Err(TestkitError::PortBusy {
                        what: self.name.to_owned(),
                        port: self.addr.port(),
                        waited: PORT_RELEASE_TIMEOUT,
                    });
                }
            }
        };
        self.serve(listener)
    }

    fn serve(&self, listener: TcpListener) -> Result<(), TestkitError> {
        let listener_fd =
            listener
                .as_fd()
                .try_clone_to_owned()
                .map_err(|source| TestkitError::Io {
                    what: format!("duplicating the listening socket of {}", self.name),
                    source,
                })?;
        let app = self.app.clone();
        let name = self.name;
        let (shutdown, signal) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = signal.await;
                })
                .await;
            if let Err(e) = served {
                tracing::warn!(error = %e, server = name, "Test server stopped with an error.");
            }
        });
        *lock(&self.running) = Some(Running {
            shutdown,
            task,
            listener_fd,
        });
        Ok(())
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        self.stop();
        if let Some(task) = lock(&self.stopped_task).take() {
            task.abort();
        }
    }
}
