//! Finding and running connector binaries as real child processes.
//!
//! End-to-end tests run the shipped `gluefleet-<name>` binary, not a library
//! call, so that argument parsing, config loading, signal handling and exit
//! codes are what gets tested. A [`Worker`] leads its own process group,
//! collects its output for assertions, and is killed if a test forgets it.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::process::Command;

use crate::TestkitError;
use crate::process::GroupChild;

/// Set this (to anything) to see worker output live on the test's stderr.
const ECHO_ENV: &str = "GLUEFLEET_TEST_ECHO";
/// Output lines quoted when `cargo build` fails.
const BUILD_TAIL_LINES: usize = 40;
/// How often [`Worker::wait_for_log`] looks at the output.
const LOG_POLL: Duration = Duration::from_millis(20);

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

/// Which build of a binary [`cargo_build`] makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// The profile of the running executable (`target/debug` for a debug
    /// build of it), where [`connector_binary`] looks.
    Current,
    /// `--release`, for numbers worth reporting.
    Release,
}

/// Runs `cargo build --quiet -p <package> --bin <bin>` in `profile` and
/// returns the binary's path; cargo's own output goes to this process's
/// stderr, for a person to read.
///
/// Unlike [`connector_binary`], this builds even when a binary exists: a
/// demo or benchmark on a checkout with local changes must not run a stale
/// one, and `cargo build` is a no-op when nothing changed.
pub fn cargo_build(package: &str, bin: &str, profile: Profile) -> Result<PathBuf, TestkitError> {
    let exe = std::env::current_exe().map_err(|_| TestkitError::TargetDir { exe: None })?;
    let current = profile_dir(&exe).ok_or_else(|| TestkitError::TargetDir {
        exe: Some(exe.clone()),
    })?;
    let release = match profile {
        Profile::Release => true,
        Profile::Current => current.file_name().is_some_and(|p| p == "release"),
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut args = vec!["build", "--quiet", "-p", package, "--bin", bin];
    if release {
        args.push("--release");
    }
    let command = format!("{} {}", cargo.to_string_lossy(), args.join(" "));
    let status = std::process::Command::new(&cargo)
        .args(&args)
        .stdin(Stdio::null())
        .status()
        .map_err(|source| TestkitError::Spawn {
            what: command.clone(),
            source,
        })?;
    if !status.success() {
        return Err(TestkitError::Build {
            command,
            status,
            log_tail: "(cargo's output is above)".to_owned(),
        });
    }
    let dir = match (profile, current.parent()) {
        (Profile::Release, Some(target)) => target.join("release"),
        _ => current,
    };
    let file = format!("{bin}{}", std::env::consts::EXE_SUFFIX);
    let path = dir.join(&file);
    if path.is_file() {
        Ok(path)
    } else {
        Err(TestkitError::BinaryNotFound {
            binary: file,
            tried: format!(
                "ran `{command}` (succeeded), but {} is not there",
                path.display()
            ),
        })
    }
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
    process: GroupChild,
}

impl Worker {
    /// Starts `binary` with `args` and extra `envs` (on top of the test's
    /// environment), stdin closed, stdout and stderr collected line by line.
    pub async fn spawn(
        binary: &Path,
        args: &[&str],
        envs: &[(&str, String)],
    ) -> Result<Self, TestkitError> {
        let mut command = Command::new(binary);
        command
            .args(args)
            .envs(envs.iter().map(|(k, v)| (*k, v.as_str())));
        let what = format!("{} {}", binary.display(), args.join(" "));
        let echo = std::env::var_os(ECHO_ENV).map(|_| "[worker] ");
        Ok(Self {
            process: GroupChild::spawn(command, what, echo)?,
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
        self.process.logs()
    }

    /// Polls the output every 20 ms until a line contains `needle` (true) or
    /// `timeout` passes (false).
    pub async fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        self.process.wait_for_log(needle, timeout, LOG_POLL).await
    }

    /// Waits up to `timeout` for the worker to exit 0, for a job or a file
    /// run that must finish by itself: still running then, or exiting
    /// otherwise, is an error quoting the last `tail_lines` of its log.
    pub async fn wait_success(
        &mut self,
        timeout: Duration,
        tail_lines: usize,
    ) -> Result<ExitStatus, TestkitError> {
        self.process.wait_success(timeout, tail_lines).await
    }

    /// SIGTERM to the worker process only, as Cloud Run sends on shutdown.
    pub fn signal_term(&self) {
        self.process.signal_leader(Signal::SIGTERM);
    }

    /// SIGKILL to the whole group: a crash, with no chance to clean up.
    pub fn kill_hard(&mut self) {
        self.process.kill_group();
    }

    /// Waits up to `timeout` for the worker to exit; `None` if it did not.
    /// After an exit, the output is complete in [`Worker::logs`].
    pub async fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.process.wait(timeout).await
    }

    /// The worker's process id, while it has not been reaped.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
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
