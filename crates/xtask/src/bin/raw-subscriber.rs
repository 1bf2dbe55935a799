//! The yardstick of `cargo xtask bench`: the least a Pub/Sub worker can do
//! on the official `google-cloud-pubsub` client. It opens `--streams`
//! streaming pulls on the emulator, parses each message's body as JSON and
//! acks it, nothing else. When `--messages` have been acked (or after
//! `--idle-exit` without a message) it shuts the streams down, flushing the
//! acks, and prints one JSON line with the same resource figures a gluefleet
//! job prints in its summary, measured the same way (`getrusage`, split at
//! the first message), so the two compare like for like.
//!
//! With `--post-to URL` it is the least a worker *delivering over HTTP* can
//! do: each message is also POSTed to `URL/accounts/<message id>` with its
//! id as `Idempotency-Key`, through hyper-util's pooled client with up to
//! `--concurrency` requests in flight (gluefleet's default, 64), and acked
//! once answered. That is the floor under gluefleet-legacy-rest's cost.
//!
//! Usage: `raw-subscriber --subscription projects/P/subscriptions/S
//! --streams 5 --messages 20000 [--max-outstanding 1000] [--idle-exit 2s]
//! [--post-to http://127.0.0.1:PORT] [--concurrency 64]`, with
//! `PUBSUB_EMULATOR_HOST` set.

#[path = "../rusage.rs"]
mod rusage;

use clap::Parser;
use google_cloud_pubsub::client::Subscriber;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(name = "raw-subscriber")]
struct Args {
    /// `projects/P/subscriptions/S`.
    #[arg(long)]
    subscription: String,
    /// Streaming pulls to open.
    #[arg(long, default_value_t = 1)]
    streams: usize,
    /// Stop after this many messages (0: only the idle exit stops it).
    #[arg(long, default_value_t = 0)]
    messages: u64,
    /// Flow control per stream, as a gluefleet worker's
    /// `pubsub.max_outstanding_messages`.
    #[arg(long, default_value_t = 1000)]
    max_outstanding: i64,
    /// Stop after this long without a message (0: never).
    #[arg(long, default_value = "2s")]
    idle_exit: humantime::Duration,
    /// POST each message here (plain http) before acking it.
    #[arg(long)]
    post_to: Option<String>,
    /// Requests in flight at most, with `--post-to`.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
}

/// The HTTP side of `--post-to`: one pooled client, a bound on requests in
/// flight.
#[derive(Debug, Clone)]
struct Poster {
    client: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<bytes::Bytes>,
    >,
    base: Arc<str>,
    permits: Arc<tokio::sync::Semaphore>,
}

impl Poster {
    fn new(base: &str, concurrency: usize) -> Self {
        let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
        http.set_nodelay(true);
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(http);
        Self {
            client,
            base: base.trim_end_matches('/').into(),
            permits: Arc::new(tokio::sync::Semaphore::new(concurrency.max(1))),
        }
    }

    /// POSTs `data` and reads the answer; `false` when there was none or
    /// it was not 2xx.
    async fn post(&self, id: &str, data: bytes::Bytes) -> bool {
        use http_body_util::BodyExt;
        let request = http::Request::post(format!("{}/accounts/{id}", self.base))
            .header(http::header::CONTENT_TYPE, "application/json")
            .header("idempotency-key", id)
            .body(http_body_util::Full::new(data));
        let Ok(request) = request else { return false };
        match self.client.request(request).await {
            Ok(r) => {
                let ok = r.status().is_success();
                r.into_body().collect().await.is_ok() && ok
            }
            Err(_) => false,
        }
    }
}

/// CPU time (`getrusage`) and peak RSS (`VmHWM`) of this process: the same
/// sources as gluefleet's `usage` module. Not called from gluefleet-runtime,
/// because linking that crate would also bring in gluefleet's allocator and
/// the yardstick must be the bare client.
fn usage() -> (Duration, u64) {
    let cpu = rusage::cpu(nix::sys::resource::UsageWho::RUSAGE_SELF);
    let hwm = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0);
    (cpu, hwm)
}

/// Shared by the stream tasks.
#[derive(Debug)]
struct Tally {
    epoch: Instant,
    acked: AtomicU64,
    bad_json: AtomicU64,
    /// `--post-to` requests that got no 2xx answer (acked all the same).
    failed_posts: AtomicU64,
    first: OnceLock<(Duration, Duration)>,
    last_us: AtomicU64,
    done: tokio::sync::Notify,
}

impl Tally {
    /// One more message acked, of `target`.
    fn settled(&self, target: u64) {
        let us = u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.last_us.fetch_max(us, Ordering::Relaxed);
        let n = self.acked.fetch_add(1, Ordering::Relaxed) + 1;
        if n == target {
            self.done.notify_one();
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("raw-subscriber: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("raw-subscriber: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Why the yardstick could not run: its Pub/Sub client did not build (the
/// one step that can fail; a bad message only counts as `bad_json`).
#[derive(Debug)]
struct ClientError(Box<dyn std::error::Error + Send + Sync>);

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "subscriber client: {}", self.0)
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.0.as_ref())
    }
}

async fn run(args: Args) -> Result<(), ClientError> {
    let epoch = Instant::now();
    let mut builder = Subscriber::builder();
    if let Ok(host) = std::env::var("PUBSUB_EMULATOR_HOST") {
        builder = builder
            .with_endpoint(format!("http://{host}"))
            .with_credentials(google_cloud_auth::credentials::anonymous::Builder::new().build());
    }
    let client = builder
        .build()
        .await
        .map_err(|e| ClientError(Box::new(e)))?;
    let tally = Arc::new(Tally {
        epoch,
        acked: AtomicU64::new(0),
        bad_json: AtomicU64::new(0),
        failed_posts: AtomicU64::new(0),
        first: OnceLock::new(),
        last_us: AtomicU64::new(0),
        done: tokio::sync::Notify::new(),
    });
    let poster = args
        .post_to
        .as_deref()
        .map(|url| Poster::new(url, args.concurrency));
    let mut tokens = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..args.streams {
        let mut stream = client
            .subscribe(args.subscription.clone())
            .set_max_outstanding_messages(args.max_outstanding)
            .build();
        tokens.push(stream.shutdown_token());
        let tally = tally.clone();
        let target = args.messages;
        let poster = poster.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(next) = stream.next().await {
                let Ok((m, h)) = next else { continue };
                tally
                    .first
                    .get_or_init(|| (tally.epoch.elapsed(), usage().0));
                if serde_json::from_slice::<serde_json::Value>(&m.data).is_err() {
                    tally.bad_json.fetch_add(1, Ordering::Relaxed);
                }
                let Some(poster) = &poster else {
                    h.ack();
                    tally.settled(target);
                    continue;
                };
                let Ok(permit) = poster.permits.clone().acquire_owned().await else {
                    break;
                };
                let (poster, tally) = (poster.clone(), tally.clone());
                tokio::spawn(async move {
                    if !poster.post(&m.message_id, m.data).await {
                        tally.failed_posts.fetch_add(1, Ordering::Relaxed);
                    }
                    drop(permit);
                    h.ack();
                    tally.settled(target);
                });
            }
        }));
    }
    let idle = Duration::from(args.idle_exit);
    let mut seen = 0;
    let mut quiet_since = Instant::now();
    loop {
        tokio::select! {
            () = tally.done.notified() => break,
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        let n = tally.acked.load(Ordering::Relaxed);
        if n != seen {
            seen = n;
            quiet_since = Instant::now();
        } else if !idle.is_zero() && quiet_since.elapsed() >= idle {
            break;
        }
    }
    for token in tokens {
        token.shutdown().await;
    }
    for task in tasks {
        task.abort();
    }
    let (cpu, peak) = usage();
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let (first_at, first_cpu) = tally.first.get().copied().unwrap_or_default();
    let last = Duration::from_micros(tally.last_us.load(Ordering::Relaxed));
    let summary = serde_json::json!({"summary": {
        "acked": tally.acked.load(Ordering::Relaxed),
        "bad_json": tally.bad_json.load(Ordering::Relaxed),
        "failed_posts": tally.failed_posts.load(Ordering::Relaxed),
        "resources": {
            "cpu_ms": ms(cpu),
            "busy_cpu_ms": ms(cpu.saturating_sub(first_cpu)),
            "busy_ms": ms(last.saturating_sub(first_at)),
            "first_message_ms": ms(first_at),
            "peak_rss_kib": peak,
        }
    }});
    println!("{summary}");
    Ok(())
}
