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

use crate::dead_letter::{DeadLetterSink, Origin};
use crate::source::{Acker, Delivery};
use crate::usage::Usage;
use gluefleet_core::outcome::{AckReason, Outcome};
use gluefleet_core::{Connector, Pipeline};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

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
        }
    }
}

/// The message engine shared by every source task.
#[derive(Debug)]
pub struct Engine<C: Connector> {
    pipeline: Arc<Pipeline<C>>,
    dead_letters: DeadLetterSink,
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
}

impl<C: Connector> Engine<C> {
    /// An engine running `pipeline` with `concurrency` messages at once.
    pub fn new(
        pipeline: Arc<Pipeline<C>>,
        dead_letters: DeadLetterSink,
        origin: Origin,
        concurrency: usize,
        max_nack_hold: Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            pipeline,
            dead_letters,
            origin,
            max_nack_hold,
            permits: Arc::new(Semaphore::new(concurrency)),
            tasks: TaskTracker::new(),
            stopping: CancellationToken::new(),
            hard_stop: CancellationToken::new(),
            stats: Stats::default(),
            last_received: std::sync::Mutex::new(tokio::time::Instant::now()),
            epoch: std::time::Instant::now(),
        })
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
        Stats::add(&self.stats.received);
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
            return;
        };
        self.stats.in_flight.fetch_add(1, Ordering::Relaxed);
        let engine = self.clone();
        self.tasks.spawn(async move {
            engine.run_one(delivery, permit).await;
            engine.settled();
            engine.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
        });
    }

    async fn run_one(&self, delivery: Delivery, permit: OwnedSemaphorePermit) {
        let Delivery {
            raw,
            acker,
            answer_by,
        } = delivery;
        let outcome = tokio::select! {
            o = self.pipeline.process_by(&raw, answer_by) => o,
            _ = self.hard_stop.cancelled() => {
                Stats::add(&self.stats.released);
                acker.nack();
                return;
            }
        };
        drop(permit);
        let trace = raw
            .attributes
            .get("traceparent")
            .and_then(|t| t.split('-').nth(1))
            .unwrap_or_default();
        match outcome {
            Outcome::Ack(reason) => {
                acker.ack().await;
                if reason == AckReason::Duplicate {
                    Stats::add(&self.stats.duplicates);
                } else {
                    Stats::add(&self.stats.acked);
                }
                tracing::debug!(message_id = %raw.message_id, ?reason, trace, "Acked.");
            }
            Outcome::DeadLetter(dl) => {
                match self.dead_letters.publish(&raw, &dl, &self.origin).await {
                    Ok(()) => {
                        acker.ack().await;
                        Stats::add(&self.stats.dead_lettered);
                        tracing::warn!(message_id = %raw.message_id, class = %dl.class, route = %dl.route, http_status = dl.http_status, error = %dl.error, trace, "Dead-lettered.");
                    }
                    Err(e) => {
                        Stats::add(&self.stats.dead_letter_failed);
                        tracing::error!(message_id = %raw.message_id, error = %e, trace, "Could not dead-letter; message nacked so it is not lost.");
                        self.hold_then_nack(acker, Duration::from_secs(10)).await;
                    }
                }
            }
            Outcome::Nack { delay, reason } => {
                tracing::info!(message_id = %raw.message_id, ?reason, delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX), trace, "Nacked with a delay.");
                self.hold_then_nack(acker, delay).await;
            }
            other => {
                // An outcome added later: hand it back rather than guess.
                tracing::error!(message_id = %raw.message_id, outcome = ?other, "Unknown outcome; nacked.");
                acker.nack();
                Stats::add(&self.stats.nacked);
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
        tokio::select! {
            _ = tokio::time::sleep(delay.min(self.max_nack_hold)) => {}
            _ = self.stopping.cancelled() => {}
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
}
