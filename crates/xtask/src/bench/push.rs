//! `cargo xtask bench push`: the same release `gluefleet-legacy-rest`, the
//! same events and the same local sink, pulling (`run`: streaming pull) with
//! metrics on and with `[telemetry] metrics = false`, and pushed to (`serve`:
//! the Pub/Sub emulator's push subscription, one HTTP request per message).
//! The two pull rows are the cost of `/metrics` counting (goal: at most 5%
//! more CPU per message). A benchmark, not a test: it prints a table and
//! writes it to docs/BENCHMARKS.md.
//!
//! Both modes are measured the same way: the worker is started and ready
//! (`/readyz` = 200 for pull, "Serving push deliveries." for push) before
//! anything is published, its CPU time (`utime + stime` from
//! `/proc/<pid>/stat`) is read, the backlog is published, and the CPU time is
//! read again once the sink has seen every event. Start-up is left out; the
//! emulator's own CPU is not the worker's and is not counted.
//!
//! The emulator pushes without a token, so push mode runs with
//! `push.auth = "none"`: on Cloud Run every request also has its OIDC token
//! verified (one RSA signature check against cached keys), which this
//! benchmark does not include.

use super::{Result, SinkProcess, block_on, build_release, machine, median, write_benchmarks};
use gluefleet_testkit::bin::Worker;
use gluefleet_testkit::pubsub::{OutgoingMessage, PubsubEmulator, SubscriptionOptions};
use gluefleet_testkit::{TempDir, free_port};
use serde_json::json;
use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The event's `data.note`, padding each message to about 1 KiB (as in
/// `cargo xtask bench`).
const NOTE_LEN: usize = 880;
/// Longest wait for a backlog to reach the sink.
const DRAIN_LIMIT: Duration = Duration::from_secs(600);
/// `/proc/<pid>/stat` counts CPU time in these ticks per second (USER_HZ,
/// 100 on every Linux `/proc` reports to user space).
const TICKS_PER_S: f64 = 100.0;

const TITLE: &str = "Push mode next to pull mode (`cargo xtask bench push`)";

/// How the worker receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Pull,
    PullNoMetrics,
    Push,
}

const MODES: [Mode; 3] = [Mode::Pull, Mode::PullNoMetrics, Mode::Push];

impl Mode {
    fn slug(self) -> &'static str {
        match self {
            Self::Pull => "pull",
            Self::PullNoMetrics => "pull-nometrics",
            Self::Push => "push",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Pull => "pull (`run`, 1 streaming pull)",
            Self::PullNoMetrics => "pull, `[telemetry] metrics = false`",
            Self::Push => "push (`serve`, one request per message)",
        }
    }
}

/// One drained backlog.
#[derive(Debug)]
struct Load {
    events: usize,
    cpu_s: f64,
    busy_s: f64,
}

/// Runs the benchmark: `rounds` rounds of `events` events per mode.
pub(crate) fn run(events: usize, rounds: usize) -> ExitCode {
    block_on(bench(events, rounds.max(1)))
}

async fn bench(events: usize, rounds: usize) -> Result<()> {
    let binary = build_release("gluefleet-legacy-rest", "gluefleet-legacy-rest")?;
    let pubsub = PubsubEmulator::start().await?;
    let sink = SinkProcess::start().await?;
    let dir = TempDir::new("bench-push")?;
    pubsub.create_topic("bench-dead").await?;
    let mut loads: Vec<(Mode, Load)> = Vec::new();
    for round in 1..=rounds {
        // Alternate the order, so no mode always runs on a warmer machine.
        let mut order = MODES;
        if round % 2 == 0 {
            order.reverse();
        }
        for mode in order {
            let load = one_load(&binary, &pubsub, &sink, &dir, round, mode, events).await?;
            eprintln!(
                "  round {round} {}: {} events, {:.2} s CPU, {:.1} s",
                mode.slug(),
                load.events,
                load.cpu_s,
                load.busy_s
            );
            loads.push((mode, load));
        }
    }
    let table = report(&loads, events, rounds);
    println!("{table}");
    write_benchmarks(TITLE, &table)
}

async fn one_load(
    binary: &Path,
    pubsub: &PubsubEmulator,
    sink: &SinkProcess,
    dir: &TempDir,
    round: usize,
    mode: Mode,
    events: usize,
) -> Result<Load> {
    let name = format!("bench-{}-r{round}", mode.slug());
    pubsub.create_topic(&name).await?;
    let port = free_port();
    let mut config = String::new();
    if mode == Mode::Push {
        // The emulator signs nothing.
        config.push_str("[push]\nauth = \"none\"\n\n");
    }
    if mode == Mode::PullNoMetrics {
        config.push_str("[telemetry]\nmetrics = false\n\n");
    }
    let _ = write!(
        config,
        r#"[target]
base_url = "{url}"
allow_insecure_http = true

[[routes]]
type = "bench.event"
action = {{ path = "/accounts/{{data.id}}", body = ".data" }}
"#,
        url = sink.url()
    );
    let path = dir.write(&format!("{name}.toml"), config)?;
    let path = path.display().to_string();
    let mut env = pubsub.worker_env(&name, "bench-dead");
    env.push(("PORT", port.to_string()));
    env.push(("RUST_LOG", "warn".to_owned()));
    let (args, options) = match mode {
        // The pull subscription first: the worker checks it before /readyz.
        Mode::Pull | Mode::PullNoMetrics => {
            (["run", "--config", &path], SubscriptionOptions::default())
        }
        Mode::Push => (
            ["serve", "--config", &path],
            SubscriptionOptions {
                push_endpoint: Some(format!("http://127.0.0.1:{port}/")),
                ..SubscriptionOptions::default()
            },
        ),
    };
    if mode != Mode::Push {
        pubsub
            .create_subscription(&name, &name, options.clone())
            .await?;
    }
    let mut worker = Worker::spawn(binary, &args, &env).await?;
    wait_ready(&worker, port).await?;
    if mode == Mode::Push {
        pubsub.create_subscription(&name, &name, options).await?;
    }
    let pid = worker.pid().ok_or("the worker exited before the load")?;
    // A new count for this load: what reached the sink before is not its.
    sink.take().await?;
    let cpu0 = cpu_s(pid)?;
    let started = Instant::now();
    pubsub.publish(&name, &backlog(round, mode, events)).await?;
    let target = events as u64;
    let mut reached = 0;
    loop {
        reached += sink.take().await?.requests;
        if reached >= target {
            break;
        }
        if started.elapsed() > DRAIN_LIMIT {
            return Err(format!(
                "{}: {reached} of {events} events reached the sink in {} s",
                mode.slug(),
                DRAIN_LIMIT.as_secs()
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let busy_s = started.elapsed().as_secs_f64();
    let cpu_s = cpu_s(pid)? - cpu0;
    worker.signal_term();
    let _ = worker.wait(Duration::from_secs(15)).await;
    Ok(Load {
        events,
        cpu_s,
        busy_s,
    })
}

/// Pull: `/readyz` = 200 (subscription checked, stream open). Push: the
/// server's start line.
async fn wait_ready(worker: &Worker, port: u16) -> Result<()> {
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/readyz");
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if let Ok(r) = http.get(&url).send().await
            && r.status() == reqwest::StatusCode::OK
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(format!("not ready after 30 s:\n{}", worker.logs().join("\n")).into())
}

/// CPU seconds (user + system) process `pid` has used so far.
fn cpu_s(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold
    // spaces: state is field 3, utime 14, stime 15.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or("unreadable /proc stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| -> Result<f64> {
        Ok(fields
            .get(i)
            .ok_or("short /proc stat")?
            .parse::<u64>()
            .map_err(|e| format!("/proc stat field: {e}"))? as f64)
    };
    // utime and stime are fields 14 and 15: 11 and 12 after the state.
    Ok((tick(11)? + tick(12)?) / TICKS_PER_S)
}

/// `events` CloudEvents of about 1 KiB, ids unique per round and mode.
fn backlog(round: usize, mode: Mode, events: usize) -> Vec<OutgoingMessage> {
    let note = "x".repeat(NOTE_LEN);
    (0..events)
        .map(|i| {
            let id = format!("{}{round}-{i:06}", mode.slug());
            let data = json!({"id": id, "name": format!("Bench account {i}"), "note": note});
            OutgoingMessage::cloudevent(&id, "//bench", "bench.event", data)
        })
        .collect()
}

fn report(loads: &[(Mode, Load)], events: usize, rounds: usize) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "## {TITLE}\n");
    let _ = writeln!(t, "{}\n", machine());
    let _ = writeln!(
        t,
        "Release `gluefleet-legacy-rest`, {events} events of about 1 KiB per run, {rounds} \
         round(s), medians. Each event is one HTTP request to a local sink in a process of its \
         own on one thread (`http-sink`), answering at once (in-memory idempotency store on, \
         no rate limit). CPU is the worker's own \
         (`/proc/<pid>/stat`), from the first publish to the last event at the sink, start-up \
         excluded. Push runs with `push.auth = \"none\"` (the emulator signs nothing); on Cloud \
         Run each request also has its OIDC token verified. The emulator's push rate bounds \
         push events/s: that column says what the emulator sends, not what Cloud Run's push \
         reaches.\n"
    );
    let _ = writeln!(t, "| mode | CPU s per 10k messages | events/s |");
    let _ = writeln!(t, "|---|---|---|");
    let mut cpu_of = Vec::new();
    for mode in MODES {
        let mine: Vec<&Load> = loads
            .iter()
            .filter(|(m, _)| *m == mode)
            .map(|(_, l)| l)
            .collect();
        let cpu = median(
            mine.iter()
                .map(|l| l.cpu_s * 10_000.0 / l.events.max(1) as f64)
                .collect(),
        );
        let rate = median(
            mine.iter()
                .map(|l| l.events as f64 / l.busy_s.max(1e-9))
                .collect(),
        );
        let _ = writeln!(t, "| {} | {cpu:.2} | {rate:.0} |", mode.label());
        cpu_of.push((mode, cpu));
    }
    let cpu = |m: Mode| {
        cpu_of
            .iter()
            .find(|(k, _)| *k == m)
            .map_or(0.0, |(_, c)| *c)
    };
    let (on, off) = (cpu(Mode::Pull), cpu(Mode::PullNoMetrics));
    if off > 0.0 {
        let _ = writeln!(
            t,
            "\nMetrics on cost {:+.1}% CPU per message next to metrics off (goal: at most +5%).",
            (on / off - 1.0) * 100.0
        );
    }
    t
}
