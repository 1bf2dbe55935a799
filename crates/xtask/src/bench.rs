//! `cargo xtask bench …`: numbers, not pass/fail; each benchmark prints a
//! table and writes it to its section of docs/BENCHMARKS.md.
//!
//! - [`compare`]: every worker side by side with the raw Pub/Sub client.
//! - [`memory`]: peak RSS of one worker for one large event.
//! - [`batching`]: API calls per 1,000 events through a batching connector.
//! - [`core`]: the criterion micro-benchmarks of the core path.
//! - [`push`]: CPU per message in push mode next to pull mode.
//!
//! What they share lives here: the async runtime and its exit code, the
//! release builds, one worker run to its summary, and the report's machine
//! line, medians and file.

pub(crate) mod batching;
pub(crate) mod compare;
pub(crate) mod memory;
pub(crate) mod push;

use gluefleet_testkit::bin::{Profile, Worker, cargo_build};
use serde_json::Value;
use std::error::Error;
use std::fmt::Write as _;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

pub(crate) type Result<T, E = Box<dyn Error + Send + Sync>> = std::result::Result<T, E>;

/// A worker still running after this is stuck.
const WORKER_TIMEOUT: Duration = Duration::from_secs(600);
/// Worker log lines quoted when a worker failed.
const LOG_TAIL: usize = 60;

/// Runs `bench` on a fresh multi-threaded runtime; its error, if any, on
/// stderr and as the exit code.
pub(crate) fn block_on(bench: impl Future<Output = Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bench: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(bench) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Builds binary `bin` of `package` in release mode; its path.
pub(crate) fn build_release(package: &str, bin: &str) -> Result<PathBuf> {
    eprintln!("• building {bin} in release mode…");
    Ok(cargo_build(package, bin, Profile::Release)?)
}

/// Waits for `worker` to end and returns its summary object (`summary` of
/// its `{"summary": …}` line); `what` names it in errors.
pub(crate) async fn summary_at_exit(mut worker: Worker, what: &str) -> Result<Value> {
    worker
        .wait_success(WORKER_TIMEOUT, LOG_TAIL)
        .await
        .map_err(|e| format!("{what}: {e}"))?;
    Ok(worker
        .summary()
        .ok_or_else(|| format!("{what} printed no summary"))?)
}

/// Spawns `binary job --config <config> --idle-exit <idle_exit>` with
/// `env` and returns its summary once the subscription was idle.
pub(crate) async fn run_job(
    binary: &Path,
    config: &Path,
    idle_exit: &str,
    env: &[(&str, String)],
    what: &str,
) -> Result<Value> {
    let config = config.display().to_string();
    let worker = Worker::spawn(
        binary,
        &["job", "--config", &config, "--idle-exit", idle_exit],
        env,
    )
    .await?;
    summary_at_exit(worker, what).await
}

/// CPU time (user + system) of every child this process has reaped so far,
/// from the kernel (`getrusage(RUSAGE_CHILDREN)`): the difference across one
/// worker's run is that worker's whole-process CPU, start-up and shutdown
/// included, as the OS bills it. Only correct while one child at a time
/// ends, which is how the benchmarks run their workers.
pub(crate) fn reaped_children_cpu() -> Duration {
    crate::rusage::cpu(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
}

/// The benchmarks' HTTP target (`src/bin/http-sink.rs`) in a process of its
/// own, on one thread, so its CPU is neither the worker's nor the harness's.
/// Killed with its process group on drop.
pub(crate) struct SinkProcess {
    _process: Worker,
    url: String,
    http: reqwest::Client,
}

/// What the sink counted since the previous [`SinkProcess::take`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SinkCounts {
    pub(crate) requests: u64,
    pub(crate) connections: u64,
    pub(crate) distinct_keys: u64,
}

impl SinkProcess {
    /// Builds (release) and starts the sink; returns once it listens.
    pub(crate) async fn start() -> Result<Self> {
        let binary = build_release("xtask", "http-sink")?;
        let process = Worker::spawn(&binary, &[], &[]).await?;
        if !process
            .wait_for_log("listening on ", Duration::from_secs(10))
            .await
        {
            return Err(format!(
                "the HTTP sink did not start:\n{}",
                process.logs().join("\n")
            )
            .into());
        }
        let addr = process
            .logs()
            .iter()
            .find_map(|l| l.strip_prefix("listening on ").map(str::to_owned))
            .ok_or("the HTTP sink printed no address")?;
        // No pooled connection: every count is asked on a connection of its
        // own, which the sink leaves out of its connection count.
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()?;
        Ok(Self {
            _process: process,
            url: format!("http://{addr}"),
            http,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The counts since the last call, starting a new count.
    pub(crate) async fn take(&self) -> Result<SinkCounts> {
        let v: Value = self
            .http
            .get(format!("{}/__sink", self.url))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let n = |k: &str| {
            v[k].as_u64()
                .ok_or_else(|| format!("the sink's count has no {k}: {v}"))
        };
        Ok(SinkCounts {
            requests: n("requests")?,
            connections: n("connections")?,
            distinct_keys: n("distinct_keys")?,
        })
    }
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// KiB as MiB.
pub(crate) fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// `cargo xtask bench core`: runs the core crate's criterion benchmarks and
/// writes their medians to docs/BENCHMARKS.md.
pub(crate) fn core() -> ExitCode {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    match Command::new(cargo)
        .args(["bench", "-p", "gluefleet-core", "--bench", "core_path"])
        .status()
    {
        Ok(s) if s.success() => {}
        Ok(s) => {
            eprintln!("bench: cargo bench failed ({s})");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("bench: cannot run cargo: {e}");
            return ExitCode::FAILURE;
        }
    }
    match core_report() {
        Ok(table) => {
            println!("{table}");
            match write_benchmarks(CORE_TITLE, &table) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("bench: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("bench: reading criterion's results: {e}");
            ExitCode::FAILURE
        }
    }
}

const CORE_TITLE: &str = "Core path micro-benchmarks (`cargo xtask bench core`)";

/// The medians criterion left in `target/criterion/<group>/<bench>/new/`.
fn core_report() -> Result<String> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("cannot find the target directory from the xtask binary")?
        .join("criterion");
    let mut rows = Vec::new();
    let mut groups: Vec<_> = std::fs::read_dir(&dir)?.flatten().collect();
    groups.sort_by_key(std::fs::DirEntry::file_name);
    for group in groups {
        let mut benches: Vec<_> = std::fs::read_dir(group.path())?.flatten().collect();
        benches.sort_by_key(std::fs::DirEntry::file_name);
        for bench in benches {
            let path = bench.path().join("new/estimates.json");
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let v: Value = serde_json::from_str(&text)?;
            let ns = v["median"]["point_estimate"]
                .as_f64()
                .ok_or_else(|| format!("no median in {}", path.display()))?;
            rows.push(format!(
                "| {}/{} | {} |",
                group.file_name().to_string_lossy(),
                bench.file_name().to_string_lossy(),
                if ns >= 1000.0 {
                    format!("{:.2} µs", ns / 1000.0)
                } else {
                    format!("{ns:.0} ns")
                }
            ));
        }
    }
    let mut t = String::new();
    let _ = writeln!(t, "## {CORE_TITLE}\n");
    let _ = writeln!(t, "{}\n", machine());
    let _ = writeln!(
        t,
        "Criterion medians per message, from `crates/core/benches/core_path.rs`: \
         decoding each accepted shape (about 1 KiB) and poison, a route lookup in a \
         table of 50 routes, and `Pipeline::process` to an outcome with a connector \
         that succeeds at once (in-memory idempotency store on, no rate limit).\n"
    );
    let _ = writeln!(t, "| benchmark | median |");
    let _ = writeln!(t, "|---|---|");
    for row in rows {
        let _ = writeln!(t, "{row}");
    }
    Ok(t)
}

pub(crate) fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map(|kib| format!(", {:.0} GiB RAM", kib as f64 / 1024.0 / 1024.0))
        .unwrap_or_default();
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| format!(", {}", v.trim_matches('"')))
        })
        .unwrap_or_default();
    format!("Machine: {cores} cores, {cpu}{memory}{os}.")
}

/// Replaces this connector's section of docs/BENCHMARKS.md (or adds it).
pub(crate) fn write_benchmarks(title: &str, section: &str) -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let path = root.join("docs/BENCHMARKS.md");
    let path = path.canonicalize().unwrap_or(path);
    let old = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        "# Benchmarks\n\nNumbers from `cargo xtask bench`; rerun to refresh.\n\n".into()
    });
    let start = old.find(&format!("## {title}"));
    // Sections are a blank line apart.
    let new = match start {
        Some(i) => {
            let end = old[i + 2..]
                .find("\n## ")
                .map(|j| i + 2 + j + 1)
                .unwrap_or(old.len());
            let rest = &old[end..];
            let gap = if rest.is_empty() { "" } else { "\n" };
            format!("{}{}\n{gap}{rest}", &old[..i], section.trim_end())
        }
        None => format!("{}\n\n{}\n", old.trim_end(), section.trim_end()),
    };
    std::fs::write(&path, new)?;
    eprintln!("• wrote {}", path.display());
    Ok(())
}
