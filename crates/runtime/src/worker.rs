//! Carrying out outcomes: one task per message, bounded by a semaphore.
//!
//! - Ack: after the pipeline says the effect is done.
//! - Dead letter: publish, then ack; if the publish fails, nack (never lose).
//! - Delayed nack: the official client's handler can only ack or nack, and
//!   the ack-deadline RPC is not exposed for a leased message. So a delayed
//!   nack keeps the lease (the client extends it) for the delay, without a
//!   concurrency permit, then nacks. This behaves the same on the emulator
//!   and in production; the subscription's retry policy (deploy/) adds a
//!   floor for nacks we could not hold (shutdown, crash).
//! - Shutdown: held messages are nacked at once; in-flight work finishes
//!   within the drain timeout or is nacked.

use crate::config::SettledLog;
use crate::dead_letter::{DeadLetterSink, Origin};
use crate::metrics::Metrics;
use crate::results::ResultSink;
use crate::source::{Acker, Delivery};
use crate::spans::{self, Spans};
use crate::usage::Usage;
use gluefleet_core::outcome::{AckReason, Outcome};
use gluefleet_core::trace::TraceContext;
use gluefleet_core::{Connector, Pipeline};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

/// Counters for the job summary and logs.
#[derive(Debug, Default)]
pub struct Stats {
    /// Messages received.
    pub received: AtomicU64,
    /// Acked after delivery (or the target said already done).
    pub acked: AtomicU64,
    /// Acked as duplicates without a call.
    pub duplicates: AtomicU64,
    /// Nacked with a delay for redelivery (retries that did not fit, in-flight duplicates).
    pub nacked: AtomicU64,
    /// Nacked at once because the worker was stopping (never started, or cut off).
    pub released: AtomicU64,
    /// Published to the dead-letter topic and acked.
    pub dead_lettered: AtomicU64,
    /// Dead-letter publishes that failed (the message was nacked instead).
    pub dead_letter_failed: AtomicU64,
    /// Result events published (routes with `results`).
    pub results: AtomicU64,
    /// Result publishes that failed (the message was nacked instead).
    pub result_failed: AtomicU64,
    /// Messages being processed or held right now.
    pub in_flight: AtomicU64,
    /// When the first message arrived and what the process had spent by then.
    first: OnceLock<(Duration, Usage)>,
    /// When the last message was settled (acked, nacked or dead-lettered), µs.
    last_settled_us: AtomicU64,
}

/// What delivering cost, apart from starting up: from the first message on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Resources {
    /// CPU time of the whole process, start-up included, ms.
    pub cpu_ms: u64,
    /// CPU time since the first message arrived, ms (start-up excluded).
    pub busy_cpu_ms: u64,
    /// From the first message arriving to the last one settled, ms.
    pub busy_ms: u64,
    /// From the worker starting to the first message, ms.
    pub first_message_ms: u64,
    /// Peak resident memory of the process, KiB.
    pub peak_rss_kib: u64,
}

/// A snapshot of [`Stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    /// Messages received.
    pub received: u64,
    /// Acked after delivery.
    pub acked: u64,
    /// Acked as duplicates.
    pub duplicates: u64,
    /// Nacked with a delay (will be retried by redelivery).
    pub retried: u64,
    /// Nacked at shutdown, for another worker to take.
    pub nacked: u64,
    /// Dead-lettered.
    pub dead_lettered: u64,
    /// Dead-letter publishes that failed.
    pub dead_letter_failed: u64,
    /// Result events published (left out when none).
    #[serde(skip_serializing_if = "is_zero")]
    pub results: u64,
    /// Result publishes that failed (left out when none).
    #[serde(skip_serializing_if = "is_zero")]
    pub result_failed: u64,
}

#[expect(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's skip_serializing_if passes a reference"
)]
fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Stats {
    fn add(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn summary(&self) -> Summary {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Summary {
            received: g(&self.received),
            acked: g(&self.acked),
            duplicates: g(&self.duplicates),
            retried: g(&self.nacked),
            nacked: g(&self.released),
            dead_lettered: g(&self.dead_lettered),
            dead_letter_failed: g(&self.dead_letter_failed),
            results: g(&self.results),
            result_failed: g(&self.result_failed),
        }
    }
}

/// What the engine reports besides its [`Stats`].
#[derive(Clone, Debug, Default)]
pub struct Telemetry {
    /// Counted for `/metrics`; `None` when `[telemetry] metrics = false`.
    pub metrics: Option<Arc<Metrics>>,
    /// The level of the line per acked message.
    pub settled_log: SettledLog,
    /// Spans by OTLP; `None` unless an endpoint is configured.
    pub spans: Option<Arc<Spans>>,
}

/// One settled message, as [`Engine::report`] counts and logs it.
struct Settled<'a> {
    message_id: &'a str,
    route: &'a str,
    /// `acked`, `dead-lettered`, `dead-letter-failed`, `nacked`, `released`.
    outcome: &'static str,
    /// The ack reason, dead-letter class or nack reason.
    reason: &'a str,
    attempts: u32,
    received: tokio::time::Instant,
    http_status: Option<u16>,
    error: &'a str,
    delay_ms: u64,
}

impl<'a> Settled<'a> {
    /// Handed back unprocessed (or cut off) because the worker is stopping.
    fn released(message_id: &'a str, received: tokio::time::Instant) -> Self {
        Settled {
            message_id,
            route: "",
            outcome: "released",
            reason: "shutdown",
            attempts: 0,
            received,
            http_status: None,
            error: "",
            delay_ms: 0,
        }
    }
}

/// The message engine shared by every source task.
#[derive(Debug)]
pub struct Engine<C: Connector> {
    pipeline: Arc<Pipeline<C>>,
    dead_letters: DeadLetterSink,
    results: ResultSink,
    origin: Origin,
    max_nack_hold: Duration,
    permits: Arc<Semaphore>,
    tasks: TaskTracker,
    /// SIGTERM: stop taking messages, nack held ones.
    pub stopping: CancellationToken,
    /// Drain timeout passed: nack what is still in flight.
    pub hard_stop: CancellationToken,
    /// Counters.
    pub stats: Stats,
    last_received: std::sync::Mutex<tokio::time::Instant>,
    /// The engine's start, the zero of [`Stats`]' timestamps.
    epoch: std::time::Instant,
    telemetry: Telemetry,
}

impl<C: Connector> Engine<C> {
    /// An engine running `pipeline` with `concurrency` messages at once.
    pub fn new(
        pipeline: Arc<Pipeline<C>>,
        dead_letters: DeadLetterSink,
        results: ResultSink,
        origin: Origin,
        concurrency: usize,
        max_nack_hold: Duration,
        telemetry: Telemetry,
    ) -> Arc<Self> {
        Arc::new(Self {
            pipeline,
            dead_letters,
            results,
            origin,
            max_nack_hold,
            permits: Arc::new(Semaphore::new(concurrency)),
            tasks: TaskTracker::new(),
            stopping: CancellationToken::new(),
            hard_stop: CancellationToken::new(),
            stats: Stats::default(),
            last_received: std::sync::Mutex::new(tokio::time::Instant::now()),
            epoch: std::time::Instant::now(),
            telemetry,
        })
    }

    /// The metrics, when they are on.
    pub fn metrics(&self) -> Option<&Arc<Metrics>> {
        self.telemetry.metrics.as_ref()
    }

    /// Counts and logs a settled message: one line per message, with the
    /// route, outcome, reason, time since receipt and calls made.
    fn report(&self, s: &Settled<'_>) {
        let elapsed = s.received.elapsed();
        if self.telemetry.spans.is_some() {
            spans::end_current(s.route, s.outcome, s.reason, s.attempts, s.http_status);
        }
        if let Some(m) = &self.telemetry.metrics {
            m.settled(s.route, s.outcome, s.reason, elapsed);
        }
        let latency_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        let (route, outcome, reason, attempts, id) =
            (s.route, s.outcome, s.reason, s.attempts, s.message_id);
        match s.outcome {
            "acked" => match self.telemetry.settled_log {
                SettledLog::Info => tracing::info!(
                    message_id = id,
                    route,
                    outcome,
                    reason,
                    latency_ms,
                    attempts,
                    "Acked."
                ),
                SettledLog::Debug => tracing::debug!(
                    message_id = id,
                    route,
                    outcome,
                    reason,
                    latency_ms,
                    attempts,
                    "Acked."
                ),
                SettledLog::Off => {}
            },
            "dead-lettered" => tracing::warn!(
                message_id = id,
                route,
                outcome,
                class = reason,
                latency_ms,
                attempts,
                http_status = s.http_status,
                error = s.error,
                "Dead-lettered."
            ),
            "result-failed" => tracing::error!(
                message_id = id,
                route,
                outcome,
                reason,
                latency_ms,
                attempts,
                error = s.error,
                "Could not publish the result event; message nacked so neither is lost."
            ),
            "dead-letter-failed" => tracing::error!(
                message_id = id,
                route,
                outcome,
                class = reason,
                latency_ms,
                attempts,
                error = s.error,
                "Could not dead-letter; message nacked so it is not lost."
            ),
            "nacked" => tracing::info!(
                message_id = id,
                route,
                outcome,
                reason,
                latency_ms,
                attempts,
                delay_ms = s.delay_ms,
                "Nacked with a delay."
            ),
            _ => tracing::info!(
                message_id = id,
                route,
                outcome,
                reason,
                latency_ms,
                attempts,
                "Released."
            ),
        }
    }

    /// What the process has spent so far, split at the first message.
    pub fn resources(&self) -> Resources {
        let now = Usage::now();
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let mut r = Resources {
            cpu_ms: ms(now.cpu),
            peak_rss_kib: now.peak_rss_kib,
            ..Resources::default()
        };
        if let Some((at, usage)) = self.stats.first.get() {
            r.first_message_ms = ms(*at);
            r.busy_cpu_ms = ms(now.cpu.saturating_sub(usage.cpu));
            let last = Duration::from_micros(self.stats.last_settled_us.load(Ordering::Relaxed));
            r.busy_ms = ms(last.saturating_sub(*at));
        }
        r
    }

    /// Records that a message was settled, for [`Resources::busy_ms`].
    fn settled(&self) {
        let us = u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.stats.last_settled_us.fetch_max(us, Ordering::Relaxed);
    }

    /// How long since the last message arrived.
    pub fn idle_for(&self) -> Duration {
        self.last_received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
    }

    /// Resolves, with the reason, once the connector can no longer deliver
    /// (its batcher died): the worker must stop rather than nack every
    /// message from then on.
    pub fn broken(&self) -> impl std::future::Future<Output = String> + Send + '_ {
        self.pipeline.connector().broken()
    }

    /// The connector's own counters.
    pub fn connector_stats(&self) -> Vec<(&'static str, u64)> {
        self.pipeline.connector().stats()
    }

    /// The idempotency store's counters (keys held, evictions).
    pub fn store_stats(&self) -> Vec<(&'static str, u64)> {
        self.pipeline.store_stats()
    }

    /// Messages being processed or held.
    pub fn in_flight(&self) -> u64 {
        self.stats.in_flight.load(Ordering::Relaxed)
    }

    /// Takes one message: waits for a permit (or nacks it at once if the
    /// worker is stopping), then processes it on its own task.
    pub async fn dispatch(self: &Arc<Self>, delivery: Delivery) {
        let received = tokio::time::Instant::now();
        Stats::add(&self.stats.received);
        if let Some(m) = &self.telemetry.metrics {
            m.received();
        }
        // One getrusage call, on the first message only.
        self.stats
            .first
            .get_or_init(|| (self.epoch.elapsed(), Usage::now()));
        *self.last_received.lock().unwrap_or_else(|p| p.into_inner()) = tokio::time::Instant::now();
        let permit = tokio::select! {
            biased;
            _ = self.stopping.cancelled() => None,
            p = self.permits.clone().acquire_owned() => p.ok(),
        };
        let Some(permit) = permit else {
            // Not started: release it for another worker right away.
            Stats::add(&self.stats.released);
            delivery.acker.nack();
            self.report(&Settled::released(&delivery.raw.message_id, received));
            return;
        };
        self.stats.in_flight.fetch_add(1, Ordering::Relaxed);
        if let Some(m) = &self.telemetry.metrics {
            m.in_flight().inc();
        }
        let engine = self.clone();
        self.tasks.spawn(async move {
            // The publisher's trace, continued: every line logged while this
            // message is handled carries it (logging.rs reads the span), and
            // the connector sends it on to the target.
            let trace = TraceContext::from_attributes(&delivery.raw.attributes);
            // With OTLP on, the exported span's id becomes the worker's.
            let (exported, trace) = match (trace, &engine.telemetry.spans) {
                (Some(t), Some(spans)) => {
                    let (span, t) =
                        spans.start(t, &engine.origin.subscription, &delivery.raw.message_id);
                    (Some(span), Some(t))
                }
                (trace, _) => (None, trace),
            };
            // Boxed once: the task itself stays small, so the runtime's
            // copies of it on spawn and on completion cost nothing.
            let run = Box::pin(engine.run_one(delivery, permit, received, trace.as_ref()));
            match &trace {
                Some(t) => {
                    let span = tracing::info_span!(
                        "message",
                        trace = t.trace_id(),
                        span_id = t.span_id(),
                        trace_sampled = t.sampled()
                    );
                    spans::scope(exported, run).instrument(span).await;
                }
                None => run.await,
            }
            engine.settled();
            engine.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
            if let Some(m) = &engine.telemetry.metrics {
                m.in_flight().dec();
            }
        });
    }

    async fn run_one(
        &self,
        delivery: Delivery,
        permit: OwnedSemaphorePermit,
        received: tokio::time::Instant,
        trace: Option<&TraceContext>,
    ) {
        let Delivery {
            raw,
            acker,
            answer_by,
        } = delivery;
        let processed = tokio::select! {
            p = self.pipeline.process_reported(&raw, answer_by, trace) => p,
            _ = self.hard_stop.cancelled() => {
                Stats::add(&self.stats.released);
                acker.nack();
                self.report(&Settled::released(&raw.message_id, received));
                return;
            }
        };
        drop(permit);
        let mut settled = Settled {
            message_id: &raw.message_id,
            route: processed.route,
            outcome: "acked",
            reason: "",
            attempts: processed.attempts,
            received,
            http_status: None,
            error: "",
            delay_ms: 0,
        };
        let result = async {
            match &processed.result {
                Some(facts) => {
                    // Boxed, as every path off the common one below: the
                    // message's future keeps only the size of what it
                    // awaits, and each of these runs to kilobytes.
                    let published = Box::pin(self.results.publish(
                        facts,
                        &processed.outcome,
                        processed.attempts,
                    ))
                    .await;
                    Stats::add(if published.is_ok() {
                        &self.stats.results
                    } else {
                        &self.stats.result_failed
                    });
                    published
                }
                None => Ok(()),
            }
        };
        match &processed.outcome {
            Outcome::Ack(reason) => {
                settled.reason = reason.as_str();
                // The result first: the ack waits for it, so no result is
                // lost, and the redelivery of a failed one republishes it
                // from the idempotency store without calling the target.
                if let Err(e) = result.await {
                    settled.outcome = "result-failed";
                    settled.error = &e;
                    self.report(&settled);
                    Box::pin(self.hold_then_nack(acker, Duration::from_secs(10))).await;
                    return;
                }
                acker.ack().await;
                if *reason == AckReason::Duplicate {
                    Stats::add(&self.stats.duplicates);
                } else {
                    Stats::add(&self.stats.acked);
                }
                self.report(&settled);
            }
            Outcome::DeadLetter(dl) => {
                settled.reason = &dl.class;
                settled.http_status = dl.http_status;
                let (dead, result) = Box::pin(async {
                    tokio::join!(self.dead_letters.publish(&raw, dl, &self.origin), result)
                })
                .await;
                if let (Ok(()), Err(e)) = (&dead, &result) {
                    // Dead-lettered, but nobody would hear of it: nacked, and
                    // the redelivery dead-letters (and reports) it again.
                    settled.outcome = "result-failed";
                    settled.error = e;
                    self.report(&settled);
                    Box::pin(self.hold_then_nack(acker, Duration::from_secs(10))).await;
                    return;
                }
                match dead {
                    Ok(()) => {
                        acker.ack().await;
                        Stats::add(&self.stats.dead_lettered);
                        settled.outcome = "dead-lettered";
                        settled.error = &dl.error;
                        self.report(&settled);
                    }
                    Err(e) => {
                        Stats::add(&self.stats.dead_letter_failed);
                        settled.outcome = "dead-letter-failed";
                        let error = e.to_string();
                        settled.error = &error;
                        self.report(&settled);
                        Box::pin(self.hold_then_nack(acker, Duration::from_secs(10))).await;
                    }
                }
            }
            Outcome::Nack { delay, reason } => {
                settled.outcome = "nacked";
                settled.reason = reason.as_str();
                settled.delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
                self.report(&settled);
                Box::pin(self.hold_then_nack(acker, *delay)).await;
            }
            other => {
                // An outcome added later: hand it back rather than guess.
                tracing::error!(message_id = %raw.message_id, outcome = ?other, "Unknown outcome; nacked.");
                acker.nack();
                Stats::add(&self.stats.nacked);
                settled.outcome = "nacked";
                settled.reason = "unknown-outcome";
                if let Some(m) = &self.telemetry.metrics {
                    m.settled(settled.route, "nacked", settled.reason, received.elapsed());
                }
            }
        }
    }

    /// Keeps the lease for `delay` (capped), then nacks. Stopping nacks at once.
    async fn hold_then_nack(&self, acker: Acker, delay: Duration) {
        if !acker.holds() {
            Stats::add(&self.stats.nacked);
            acker.nack();
            return;
        }
        let held = self.telemetry.metrics.as_ref().map(|m| m.held());
        if let Some(g) = held {
            g.inc();
        }
        tokio::select! {
            _ = tokio::time::sleep(delay.min(self.max_nack_hold)) => {}
            _ = self.stopping.cancelled() => {}
        }
        if let Some(g) = held {
            g.dec();
        }
        Stats::add(&self.stats.nacked);
        acker.nack();
    }

    /// Stops taking messages and waits for in-flight ones, at most `drain`;
    /// what is still running then is nacked.
    pub async fn drain(&self, drain: Duration) -> bool {
        self.stopping.cancel();
        self.tasks.close();
        if tokio::time::timeout(drain, self.tasks.wait()).await.is_ok() {
            return true;
        }
        self.hard_stop.cancel();
        // Nacks are immediate; give the tasks a moment to send them.
        let _ = tokio::time::timeout(Duration::from_millis(500), self.tasks.wait()).await;
        false
    }

    /// Sends the spans still batched (at most 1 s), after [`Engine::drain`].
    pub async fn flush_spans(&self) {
        if let Some(spans) = self.telemetry.spans.clone() {
            // The SDK's shutdown blocks: off the async threads.
            let _ = tokio::task::spawn_blocking(move || spans.shutdown()).await;
        }
    }
}
