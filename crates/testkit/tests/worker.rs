//! Worker processes: output capture, signals, process groups, binaries.

use std::path::Path;
use std::time::{Duration, Instant};

use gluefleet_testkit::TestkitError;
use gluefleet_testkit::bin::{Worker, connector_binary};

/// Whether `pid` is still a live (non-zombie) process.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

async fn gone_within(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if !alive(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    !alive(pid)
}

fn grandchild_pid(worker: &Worker) -> u32 {
    worker
        .logs()
        .iter()
        .find_map(|l| l.strip_prefix("child=").and_then(|p| p.parse().ok()))
        .expect("script printed its child's pid")
}

#[tokio::test]
async fn captures_output_and_handles_sigterm() {
    let script = r#"echo "ready $GREETING"; echo oops >&2
trap 'echo got-term; exit 3' TERM
while true; do sleep 0.05; done"#;
    let mut worker = Worker::spawn(
        Path::new("/bin/sh"),
        &["-c", script],
        &[("GREETING", "hi".to_owned())],
    )
    .await
    .expect("spawn");
    assert!(worker.pid().is_some());
    assert!(
        worker
            .wait_for_log("ready hi", Duration::from_secs(5))
            .await
    );
    assert!(
        worker.wait_for_log("oops", Duration::from_secs(5)).await,
        "stderr captured"
    );
    assert!(
        !worker
            .wait_for_log("never printed", Duration::from_millis(100))
            .await
    );
    assert!(
        worker.wait(Duration::from_millis(100)).await.is_none(),
        "still running"
    );

    worker.signal_term();
    let status = worker
        .wait(Duration::from_secs(5))
        .await
        .expect("exits on SIGTERM");
    assert_eq!(status.code(), Some(3));
    assert!(
        worker.logs().iter().any(|l| l == "got-term"),
        "{:?}",
        worker.logs()
    );
    assert_eq!(worker.wait(Duration::from_millis(1)).await, Some(status));
}

/// A shell that started a `sleep` of its own and waits for it: the worker
/// and the pid of its child.
async fn shell_with_a_child() -> (Worker, u32) {
    let worker = Worker::spawn(
        Path::new("/bin/sh"),
        &["-c", "sleep 30 & echo child=$!; wait"],
        &[],
    )
    .await
    .expect("spawn");
    assert!(worker.wait_for_log("child=", Duration::from_secs(5)).await);
    let grandchild = grandchild_pid(&worker);
    (worker, grandchild)
}

#[tokio::test]
async fn kill_hard_ends_the_whole_group() {
    let (mut worker, grandchild) = shell_with_a_child().await;
    assert!(alive(grandchild));
    worker.kill_hard();
    let status = worker.wait(Duration::from_secs(5)).await.expect("killed");
    assert!(!status.success());
    assert!(
        gone_within(grandchild, Duration::from_secs(5)).await,
        "grandchild killed too"
    );
}

#[tokio::test]
async fn drop_kills_the_group() {
    let (worker, grandchild) = shell_with_a_child().await;
    let pid = worker.pid().expect("running");
    drop(worker);
    assert!(gone_within(grandchild, Duration::from_secs(5)).await);
    assert!(gone_within(pid, Duration::from_secs(5)).await);
}

#[tokio::test]
async fn spawn_error_names_the_binary() {
    let err = Worker::spawn(Path::new("/nonexistent/gluefleet-nope"), &[], &[])
        .await
        .expect_err("no such binary");
    assert!(matches!(err, TestkitError::Spawn { .. }));
    assert!(
        err.to_string().contains("/nonexistent/gluefleet-nope"),
        "{err}"
    );
}

#[test]
fn unknown_connector_reports_the_build_it_tried() {
    let err = connector_binary("no-such-connector-xyz").expect_err("no such package");
    let message = err.to_string();
    assert!(
        message.contains("gluefleet-no-such-connector-xyz"),
        "{message}"
    );
    assert!(matches!(err, TestkitError::Build { .. }), "{message}");
}

#[tokio::test]
async fn wait_success_names_a_failure_or_a_hang_with_the_last_lines() {
    let mut failing = Worker::spawn(
        Path::new("/bin/sh"),
        &["-c", "echo first; echo last words; exit 4"],
        &[],
    )
    .await
    .expect("spawn");
    let err = failing
        .wait_success(Duration::from_secs(10), 1)
        .await
        .expect_err("exit 4 is a failure");
    match err {
        TestkitError::Failed {
            status, log_tail, ..
        } => {
            assert_eq!(status.code(), Some(4));
            assert_eq!(log_tail, "last words", "only the last line");
        }
        other => panic!("expected Failed, got {other}"),
    }

    let mut hanging = Worker::spawn(Path::new("/bin/sh"), &["-c", "exec sleep 30"], &[])
        .await
        .expect("spawn");
    let err = hanging
        .wait_success(Duration::from_millis(200), 10)
        .await
        .expect_err("still running");
    assert!(matches!(err, TestkitError::StillRunning { .. }), "{err}");

    let mut fine = Worker::spawn(Path::new("/bin/sh"), &["-c", "exit 0"], &[])
        .await
        .expect("spawn");
    assert!(
        fine.wait_success(Duration::from_secs(10), 10)
            .await
            .is_ok_and(|s| s.success())
    );
}
