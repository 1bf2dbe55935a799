//! The one child-process lifecycle of the testkit, shared by the emulators,
//! the SAP CAP server, its `npm ci` and the connector workers.
//!
//! Test servers are often wrappers (gcloud starts a Java server and is not
//! that server), so killing one PID leaves the real server running and
//! holding its port. Every child we start therefore leads its own process
//! group ([`GroupChild`]), and we signal the group; a child the test forgets
//! is killed, group and all, on drop. Output is collected line by line so
//! tests can wait for a log line and failures can show the tail. A server
//! that must be told its port up front is a [`ChildServer`]: a free port
//! picked once, a readiness line awaited, stopped on drop, restartable on
//! the same port.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use crate::TestkitError;

/// Log lines quoted in startup errors: enough to show a Java stack trace's
/// cause, few enough to read in a test failure.
pub(crate) const ERROR_TAIL_LINES: usize = 30;
/// How long a server gets to exit on SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How long `wait` gives the output readers to finish after exit.
const READER_DRAIN: Duration = Duration::from_secs(2);

/// Lines a child wrote on stdout and stderr, interleaved in arrival order.
pub(crate) type Log = Arc<Mutex<Vec<String>>>;

/// A copy of the log so far; a poisoned lock only means a reader panicked,
/// the lines are still good.
pub(crate) fn snapshot(log: &Log) -> Vec<String> {
    log.lock().unwrap_or_else(PoisonError::into_inner).clone()
}

/// Copies `reader` into `log` line by line until EOF.
///
/// Lines are decoded lossily: a child printing invalid UTF-8 must not stop
/// the capture (and then block on a full pipe). With `echo`, each line is
/// also printed to the test's stderr behind that prefix.
fn capture<R>(reader: R, log: Log, echo: Option<&'static str>) -> JoinHandle<()>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut reader = BufReader::new(reader);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf)
                        .trim_end_matches(['\n', '\r'])
                        .to_owned();
                    if let Some(prefix) = echo {
                        eprintln!("{prefix}{line}");
                    }
                    log.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(line);
                }
            }
        }
    })
}

fn as_pid(pid: u32) -> Option<Pid> {
    i32::try_from(pid).ok().map(Pid::from_raw)
}

/// Sends `signal` to every process of group `pgid`; ignores a gone group.
fn signal_group(pgid: u32, signal: Signal) {
    if let Some(pgid) = as_pid(pgid) {
        let _ = killpg(pgid, signal);
    }
}

/// Whether any process (zombies included) is left in group `pgid`.
fn group_exists(pgid: u32) -> bool {
    match as_pid(pgid) {
        Some(pgid) => !matches!(killpg(pgid, None), Err(Errno::ESRCH)),
        None => false,
    }
}

/// A child process leading a process group of its own, stdin closed, its
/// stdout and stderr captured into one log. Killed (whole group) on drop
/// unless it already exited or was stopped.
#[derive(Debug)]
pub(crate) struct GroupChild {
    child: Child,
    /// The group to signal; `None` only if the child already vanished.
    pgid: Option<u32>,
    log: Log,
    readers: Vec<JoinHandle<()>>,
    /// Set once the child was reaped: its group id may be reused then, so
    /// it is never signalled again.
    exit: Option<ExitStatus>,
    /// The command line, for errors.
    what: String,
}

impl GroupChild {
    /// Starts `command` as leader of a new process group with a fresh log.
    ///
    /// A fresh log per start means a readiness line from a previous run of
    /// the same server cannot count. `what` names the command in errors;
    /// with `echo`, every output line also goes to the test's stderr behind
    /// that prefix.
    pub(crate) fn spawn(
        mut command: Command,
        what: impl Into<String>,
        echo: Option<&'static str>,
    ) -> Result<Self, TestkitError> {
        let what = what.into();
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|source| TestkitError::Spawn {
                what: what.clone(),
                source,
            })?;
        let log: Log = Arc::default();
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(capture(out, log.clone(), echo));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(capture(err, log.clone(), echo));
        }
        Ok(Self {
            pgid: child.id(),
            child,
            log,
            readers,
            exit: None,
            what,
        })
    }

    /// The log this child writes to, shared.
    pub(crate) fn log(&self) -> Log {
        self.log.clone()
    }

    /// Everything the child printed so far.
    pub(crate) fn logs(&self) -> Vec<String> {
        snapshot(&self.log)
    }

    /// The child's process id, while it has not been reaped.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Polls the output every `poll` until a line contains `needle` (true)
    /// or `timeout` passes (false).
    pub(crate) async fn wait_for_log(
        &self,
        needle: &str,
        timeout: Duration,
        poll: Duration,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if snapshot(&self.log).iter().any(|line| line.contains(needle)) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(poll).await;
        }
    }

    /// Waits until a line of the output contains `needle`, failing early if
    /// the child exits and late after `timeout`, both with the log's tail.
    ///
    /// The emulators print their readiness line only once the port accepts
    /// requests, so this is the readiness check; polling the port instead
    /// would also succeed on a stale server.
    pub(crate) async fn wait_ready(
        &mut self,
        needle: &str,
        timeout: Duration,
    ) -> Result<(), TestkitError> {
        let started = Instant::now();
        loop {
            let lines = snapshot(&self.log);
            if lines.iter().any(|l| l.contains(needle)) {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exit = Some(status);
                // Let the readers catch the last words.
                tokio::time::sleep(Duration::from_millis(200)).await;
                return Err(TestkitError::Exited {
                    what: self.what.clone(),
                    status,
                    log_tail: crate::tail(&snapshot(&self.log), ERROR_TAIL_LINES),
                });
            }
            if started.elapsed() >= timeout {
                return Err(self.not_ready(timeout));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A [`TestkitError::NotReady`] for this child after `timeout`, with the
    /// tail of its log.
    pub(crate) fn not_ready(&self, timeout: Duration) -> TestkitError {
        TestkitError::NotReady {
            what: self.what.clone(),
            timeout,
            log_tail: crate::tail(&self.logs(), ERROR_TAIL_LINES),
        }
    }

    /// Waits up to `timeout` for the child to exit; `None` if it did not.
    /// After an exit, the output is complete in [`Self::logs`].
    pub(crate) async fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if let Some(status) = self.exit {
            return Some(status);
        }
        let status = match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(Ok(status)) => status,
            Ok(Err(_)) | Err(_) => return None,
        };
        self.exit = Some(status);
        for reader in self.readers.drain(..) {
            let abort = reader.abort_handle();
            // A grandchild still holding the pipe must not hang the test.
            if tokio::time::timeout(READER_DRAIN, reader).await.is_err() {
                abort.abort();
            }
        }
        Some(status)
    }

    /// Waits up to `timeout` for the child to exit 0: a child still running
    /// then ([`TestkitError::StillRunning`]) or exiting otherwise
    /// ([`TestkitError::Failed`]) is an error with the last `tail_lines` of
    /// its log.
    pub(crate) async fn wait_success(
        &mut self,
        timeout: Duration,
        tail_lines: usize,
    ) -> Result<ExitStatus, TestkitError> {
        let Some(status) = self.wait(timeout).await else {
            return Err(TestkitError::StillRunning {
                what: self.what.clone(),
                timeout,
                log_tail: crate::tail(&self.logs(), tail_lines),
            });
        };
        if status.success() {
            Ok(status)
        } else {
            Err(TestkitError::Failed {
                what: self.what.clone(),
                status,
                log_tail: crate::tail(&self.logs(), tail_lines),
            })
        }
    }

    /// Sends `signal` to the leader only (a worker's own SIGTERM handling).
    pub(crate) fn signal_leader(&self, signal: Signal) {
        if self.exit.is_none()
            && let Some(pid) = self.child.id().and_then(as_pid)
        {
            let _ = kill(pid, signal);
        }
    }

    /// SIGKILL to the whole group: a crash, with no chance to clean up.
    pub(crate) fn kill_group(&mut self) {
        // Signalled before reaping, so the group id cannot have been reused.
        if self.exit.is_none()
            && let Some(pgid) = self.pgid
        {
            signal_group(pgid, Signal::SIGKILL);
        }
    }

    /// Ends the group: SIGTERM, then SIGKILL after `grace` or as soon as
    /// `done` says the group's work is over.
    ///
    /// `done` exists because exited members of the group can stay zombies
    /// until init reaps them, so "the group is empty" may come late; a freed
    /// port is the signal that matters for a server. Blocking on purpose:
    /// this also runs in `Drop`, where nothing can be awaited.
    pub(crate) fn stop(&mut self, grace: Duration, done: impl Fn() -> bool) {
        let Some(pgid) = self.pgid.take() else {
            return;
        };
        if self.exit.is_some() && !group_exists(pgid) {
            return;
        }
        signal_group(pgid, Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        loop {
            // Reap the leader so it does not keep the group alive as a zombie.
            let _ = self.child.try_wait();
            if !group_exists(pgid) {
                return;
            }
            if done() || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        signal_group(pgid, Signal::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for GroupChild {
    fn drop(&mut self) {
        self.kill_group();
    }
}

/// A server child on a port of 127.0.0.1 picked once, up front: servers
/// that take their port on the command line cannot bind port 0 themselves,
/// and a restart must come back where clients already connect.
#[derive(Debug)]
pub(crate) struct ChildServer {
    port: u16,
    running: Option<GroupChild>,
    /// The last start's output, kept after a stop for debugging.
    log: Log,
}

impl ChildServer {
    /// A server not started yet, on a port that is free now.
    pub(crate) fn on_free_port() -> Self {
        Self {
            port: crate::free_port(),
            running: None,
            log: Arc::default(),
        }
    }

    /// The port the server listens on.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`, the value an emulator's `*_EMULATOR_HOST` takes.
    pub(crate) fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The output of the last start so far.
    pub(crate) fn logs(&self) -> Vec<String> {
        snapshot(&self.log)
    }

    /// Starts `command` (which must listen on [`Self::port`]) and waits up
    /// to `timeout` for a line containing `ready_line`. The child is kept
    /// before the wait, so an error or a cancelled test still stops it.
    pub(crate) async fn launch(
        &mut self,
        command: Command,
        what: impl Into<String>,
        ready_line: &str,
        timeout: Duration,
    ) -> Result<(), TestkitError> {
        self.stop();
        let child = GroupChild::spawn(command, what, None)?;
        self.log = child.log();
        self.running
            .insert(child)
            .wait_ready(ready_line, timeout)
            .await
    }

    /// A [`TestkitError::NotReady`] for the running server after `timeout`.
    pub(crate) fn not_ready(&self, what: &str, timeout: Duration) -> TestkitError {
        match &self.running {
            Some(child) => child.not_ready(timeout),
            None => TestkitError::NotReady {
                what: what.to_owned(),
                timeout,
                log_tail: crate::tail(&self.logs(), ERROR_TAIL_LINES),
            },
        }
    }

    /// Kills the server's process group, SIGTERM first, until its port is
    /// free. Idempotent; also runs on drop.
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.running.take() {
            let port = self.port;
            child.stop(STOP_GRACE, || crate::port_is_free(port));
        }
    }

    /// Stops the server and waits up to `timeout` for its port to be free
    /// again, so it can be launched on the port its clients already know.
    pub(crate) async fn stop_and_release(
        &mut self,
        timeout: Duration,
        what: &str,
    ) -> Result<(), TestkitError> {
        self.stop();
        let started = Instant::now();
        while !crate::port_is_free(self.port) {
            if started.elapsed() >= timeout {
                return Err(TestkitError::PortBusy {
                    what: what.to_owned(),
                    port: self.port,
                    waited: timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The first executable file called `name` in `PATH`.
pub(crate) fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Numbers the emulator instances of this process.
static NEXT_INSTANCE: AtomicU32 = AtomicU32::new(1);

/// Whether `gcloud`, which starts both emulators, is on `PATH`.
pub(crate) fn gcloud_available() -> bool {
    find_on_path("gcloud").is_some()
}

/// `<prefix>-<pid>-<n>`: a project id no other emulator of any test
/// process uses, so parallel tests never see each other's data.
pub(crate) fn fresh_project(prefix: &str) -> String {
    let n = NEXT_INSTANCE.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

/// `gcloud ARGS` without prompts, and its command line for errors: how
/// both emulators start.
pub(crate) fn gcloud(args: &[String]) -> (Command, String) {
    let mut command = Command::new("gcloud");
    command.args(args).env("CLOUDSDK_CORE_DISABLE_PROMPTS", "1");
    (command, format!("gcloud {}", args.join(" ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut command = Command::new("/bin/sh");
        command.args(["-c", script]);
        command
    }

    /// Whether process `pid` is gone (or a zombie nobody reaps) within 5 s.
    async fn gone(pid: i32) -> bool {
        for _ in 0..100 {
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // The state is the field after the `(comm)`.
            let zombie = state
                .rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z'));
            if state.is_empty() || zombie {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    fn child_pid(logs: &[String]) -> i32 {
        logs.iter()
            .find_map(|l| l.strip_prefix("child=").and_then(|p| p.parse().ok()))
            .expect("the script printed its child's pid")
    }

    #[tokio::test]
    async fn a_server_is_ready_on_its_line_and_its_whole_group_ends_on_drop() {
        let mut server = ChildServer::on_free_port();
        server
            .launch(
                sh("sleep 30 & echo child=$!; echo listening; wait"),
                "a shell",
                "listening",
                Duration::from_secs(10),
            )
            .await
            .expect("ready");
        let grandchild = child_pid(&server.logs());
        drop(server);
        assert!(gone(grandchild).await, "the server's own child went too");
    }

    #[tokio::test]
    async fn a_server_that_exits_first_says_how_with_its_last_words() {
        let mut server = ChildServer::on_free_port();
        let err = server
            .launch(
                sh("echo 'no such port'; exit 3"),
                "a shell",
                "listening",
                Duration::from_secs(10),
            )
            .await
            .expect_err("never ready");
        match err {
            TestkitError::Exited {
                status, log_tail, ..
            } => {
                assert_eq!(status.code(), Some(3));
                assert!(log_tail.contains("no such port"), "{log_tail}");
            }
            other => panic!("expected Exited, got {other}"),
        }
    }

    #[tokio::test]
    async fn a_silent_server_is_not_ready_after_its_timeout_and_is_stopped() {
        let mut server = ChildServer::on_free_port();
        let err = server
            .launch(
                sh("echo child=$$; exec sleep 30"),
                "a shell",
                "listening",
                Duration::from_millis(300),
            )
            .await
            .expect_err("never ready");
        assert!(matches!(err, TestkitError::NotReady { .. }), "{err}");
        let pid = child_pid(&server.logs());
        server.stop();
        assert!(gone(pid).await, "stopped after the failed start");
    }
}
