//! Process-group plumbing shared by the emulators and connector workers.
//!
//! Test servers are often wrappers (gcloud starts a Java server and is not
//! that server), so killing one PID leaves the real server running and
//! holding its port. Every child we start therefore leads its own process
//! group, and we signal the group. Output is collected line by line so
//! tests can wait for a log line and failures can show the tail.

use std::path::{Path, PathBuf};
use std::process::Stdio;
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
const ERROR_TAIL_LINES: usize = 30;

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
pub(crate) fn capture<R>(reader: R, log: Log, echo: Option<&'static str>) -> JoinHandle<()>
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

/// Sends `signal` to one process. Errors (it already exited) are ignored:
/// the caller only wants it gone or told.
pub(crate) fn signal_process(pid: u32, signal: Signal) {
    if let Some(pid) = as_pid(pid) {
        let _ = kill(pid, signal);
    }
}

/// Sends `signal` to every process of group `pgid`; ignores a gone group.
pub(crate) fn signal_group(pgid: u32, signal: Signal) {
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

/// Ends process group `pgid` led by `child`: SIGTERM, then SIGKILL after
/// `grace` or as soon as `done` says the group's work is over.
///
/// `done` exists because exited members of the group can stay zombies
/// until init reaps them, so "the group is empty" may come late; a freed
/// port is the signal that matters for the emulator. Blocking on purpose:
/// this also runs in `Drop`, where nothing can be awaited.
pub(crate) fn stop_group(child: &mut Child, pgid: u32, grace: Duration, done: impl Fn() -> bool) {
    signal_group(pgid, Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    loop {
        // Reap the leader so it does not keep the group alive as a zombie.
        let _ = child.try_wait();
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
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A server child just started by [`spawn_group`].
pub(crate) struct Spawned {
    /// The group leader (the gcloud wrapper for the emulators).
    pub(crate) child: Child,
    /// The group to signal; `None` only if the child already vanished.
    pub(crate) pgid: Option<u32>,
    /// Its stdout and stderr, filled in the background.
    pub(crate) log: Log,
}

/// Starts `program args` with `envs` as leader of a new process group, stdin
/// closed and output captured into a fresh log.
///
/// A fresh log per start means a readiness line from a previous run of the
/// same server cannot count. `what` names the command in the error.
pub(crate) fn spawn_group(
    program: &str,
    args: &[String],
    envs: &[(&str, &str)],
    what: &str,
) -> Result<Spawned, TestkitError> {
    let mut child = Command::new(program)
        .args(args)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|source| TestkitError::Spawn {
            what: what.to_owned(),
            source,
        })?;
    let log: Log = Arc::new(Mutex::new(Vec::new()));
    if let Some(out) = child.stdout.take() {
        capture(out, log.clone(), None);
    }
    if let Some(err) = child.stderr.take() {
        capture(err, log.clone(), None);
    }
    Ok(Spawned {
        pgid: child.id(),
        child,
        log,
    })
}

/// Waits until a line of `log` contains `needle`, failing early if `child`
/// exits and late after `timeout`, both with the log's tail.
///
/// The emulators print their readiness line only once the port accepts
/// requests, so this is the readiness check; polling the port instead would
/// also succeed on a stale server.
pub(crate) async fn wait_ready(
    child: &mut Child,
    log: &Log,
    needle: &str,
    timeout: Duration,
    what: &str,
) -> Result<(), TestkitError> {
    let started = Instant::now();
    loop {
        let lines = snapshot(log);
        if lines.iter().any(|l| l.contains(needle)) {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            // Let the readers catch the last words.
            tokio::time::sleep(Duration::from_millis(200)).await;
            return Err(TestkitError::Exited {
                what: what.to_owned(),
                status,
                log_tail: crate::tail(&snapshot(log), ERROR_TAIL_LINES),
            });
        }
        if started.elapsed() >= timeout {
            return Err(TestkitError::NotReady {
                what: what.to_owned(),
                timeout,
                log_tail: crate::tail(&lines, ERROR_TAIL_LINES),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits up to `timeout` for `port` to be free again, so a server can be
/// restarted on the port its clients already know.
pub(crate) async fn wait_port_free(
    port: u16,
    timeout: Duration,
    what: &str,
) -> Result<(), TestkitError> {
    let started = Instant::now();
    while !crate::port_is_free(port) {
        if started.elapsed() >= timeout {
            return Err(TestkitError::PortBusy {
                what: what.to_owned(),
                port,
                waited: timeout,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
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
