//! Finding and running connector binaries as real child processes.
//!
//! End-to-end tests run the shipped `gluefleet-<name>` binary, not a library
//! call, so that argument parsing, config loading, signal handling and exit
//! codes are what gets tested. A [`Worker`] leads its own process group,
//! collects its output for assertions, and is killed if a test forgets it.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use crate::TestkitError;
use crate::process::{self, Log};

/// Set this (to anything) to see worker output live on the test's stderr.
const ECHO_ENV: &str = "GLUEFLEET_TEST_ECHO";
/// Output lines quoted when `cargo build` fails.
const BUILD_TAIL_LINES: usize = 40;
/// How long `wait` gives the output readers to finish after exit.
const READER_DRAIN: Duration = Duration::from_secs(2);

/// Keeps parallel tests in one process from starting the same build twice.
static BUILD_LOCK: Mutex<()> = Mutex::new(());

/// The path of connector binary `gluefleet-<name>`, building it if needed.
///
/// Looks next to the running test (`target/<profile>/`, the parent of the
/// test's `deps/` directory), because `cargo test` builds only the binaries
/// of the package under test. If it is missing, runs
/// `cargo build -p gluefleet-<name> --bin gluefleet-<name>` (with `--release`
/// for the release profile) using `$CARGO` or `cargo`, then looks again.
/// Blocks while cargo runs.
pub fn connector_binary(name: &str) -> Result<PathBuf, TestkitError> {
    let package = format!("gluefleet-{name}");
    let file = format!("{package}{}", std::env::consts::EXE_SUFFIX);
    let exe = std::env::current_exe().map_err(|_| TestkitError::TargetDir { exe: None })?;
    let profile_dir = profile_dir(&exe).ok_or_else(|| TestkitError::TargetDir {
        exe: Some(exe.clone()),
    })?;
    let candidate = profile_dir.join(&file);
    if candidate.is_file() {
        return Ok(candidate);
    }

    let _guard = BUILD_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    // Another test may have built it while we waited for the lock.
    if candidate.is_file() {
        return Ok(candidate);
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut args = vec!["build", "-p", &package, "--bin", &package];
    if profile_dir.file_name().is_some_and(|p| p == "release") {
        args.push("--release");
    }
    let command = format!("{} {}", cargo.to_string_lossy(), args.join(" "));
    let output = std::process::Command::new(&cargo)
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| TestkitError::Spawn {
            what: command.clone(),
            source,
        })?;
    if !output.status.success() {
        let text = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        return Err(TestkitError::Build {
            command,
            status: output.status,
            log_tail: crate::tail(&lines, BUILD_TAIL_LINES),
        });
    }
    if candidate.is_file() {
        return Ok(candidate);
    }
    Err(TestkitError::BinaryNotFound {
        binary: file,
        tried: format!(
            "looked for {}, ran `{command}` (succeeded), still not there",
            candidate.display()
        ),
    })
}

/// `target/<profile>` from the test executable's path
/// (`target/<profile>/deps/<test>-<hash>`, or directly in the profile dir).
fn profile_dir(exe: &Path) -> Option<PathBuf> {
    let dir = exe.parent()?;
    if dir.file_name().is_some_and(|d| d == "deps") {
        dir.parent().map(Path::to_path_buf)
    } else {
        Some(dir.to_path_buf())
    }
}

/// A connector binary running as a child process in its own process group.
/// Killed (whole group) on drop if still running.
#[derive(Debug)]
pub struct Worker {
    child: Child,
    pgid: Option<u32>,
    log: Log,
    readers: Vec<JoinHandle<()>>,
    exit: Option<ExitStatus>,
}

impl Worker {
    /// Starts `binary` with `args` and extra `envs` (on top of the test's
    /// environment), stdin closed, stdout and stderr collected line by line.
    pub async fn spawn(
        binary: &Path,
        args: &[&str],
        envs: &[(&str, String)],
    ) -> Result<Self, TestkitError> {
        let mut child = Command::new(binary)
            .args(args)
            .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|source| TestkitError::Spawn {
                what: format!("{} {}", binary.display(), args.join(" ")),
                source,
            })?;
        let echo = std::env::var_os(ECHO_ENV).map(|_| "[worker] ");
        let log: Log = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(process::capture(out, log.clone(), echo));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(process::capture(err, log.clone(), echo));
        }
        Ok(Self {
            pgid: child.id(),
            child,
            log,
            readers,
            exit: None,
        })
    }

    /// The job summary the worker printed (`{"summary": {...}}`), if any:
    /// the inner object.
    pub fn summary(&self) -> Option<serde_json::Value> {
        self.logs().iter().find_map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v.get("summary").cloned())
        })
    }

    /// Everything the worker printed so far (stdout and stderr interleaved).
    pub fn logs(&self) -> Vec<String> {
        process::snapshot(&self.log)
    }

    /// Polls the output every 20 ms until a line contains `needle` (true) or
    /// `timeout` passes (false).
    pub async fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if process::snapshot(&self.log)
                .iter()
                .any(|line| line.contains(needle))
            {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM to the worker process only, as Cloud Run sends on shutdown.
    pub fn signal_term(&self) {
        if self.exit.is_none()
            && let Some(pid) = self.child.id()
        {
            process::signal_process(pid, Signal::SIGTERM);
        }
    }

    /// SIGKILL to the whole group: a crash, with no chance to clean up.
    pub fn kill_hard(&mut self) {
        // Signalled before reaping, so the group id cannot have been reused.
        if self.exit.is_none()
            && let Some(pgid) = self.pgid
        {
            process::signal_group(pgid, Signal::SIGKILL);
        }
    }

    /// Waits up to `timeout` for the worker to exit; `None` if it did not.
    /// After an exit, the output is complete in [`Worker::logs`].
    pub async fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
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

    /// The worker's process id, while it has not been reaped.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill_hard();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_dir_is_above_deps() {
        assert_eq!(
            profile_dir(Path::new("/w/target/debug/deps/e2e-0123abcd")),
            Some(PathBuf::from("/w/target/debug"))
        );
        assert_eq!(
            profile_dir(Path::new("/w/target/release/gluefleet-x")),
            Some(PathBuf::from("/w/target/release"))
        );
    }
}
