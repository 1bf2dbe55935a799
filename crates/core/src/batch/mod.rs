//! Batching: events waiting at the same moment go out as one request.
//!
//! A connector whose vendor takes many writes per call (Firestore
//! `batchWrite`, Salesforce Collections, OData `$batch`) submits each event's
//! write to a [`Batcher`] from inside [`Connector::call`](crate::Connector::call)
//! and awaits that write's own result. So retries, rate limits and
//! idempotency stay per event, in the pipeline, while the vendor sees few calls.
//!
//! How a batch forms: the first write waits at most `linger` for company;
//! everything queued by then goes, up to `max_items` and `max_bytes`. While
//! `max_in_flight` batches are out, writes keep queueing, so batches grow with
//! load on their own. Writes with the same key (a document, a record) never
//! share a batch or overlap in flight: a second write waits for the next
//! batch, in order.

use crate::error::ConnectorError;
use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore, mpsc, oneshot, watch};
/// The clock of write deadlines ([`Request::deadline`](crate::Request::deadline)).
pub use tokio::time::Instant;

mod config;
pub use config::{BatchConfig, MIN_BATCH_BYTES, VendorLimits};

/// Batch limits. Defaults: 500 items, 9 MiB, 5 ms linger, 2 batches in flight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchSettings {
    /// Most writes in one request.
    pub max_items: usize,
    /// Most payload bytes in one request.
    pub max_bytes: usize,
    /// How long the first write of a batch waits for company.
    pub linger: Duration,
    /// Requests out at once.
    pub max_in_flight: usize,
}

impl Default for BatchSettings {
    fn default() -> Self {
        Self {
            max_items: 500,
            max_bytes: 9 * 1024 * 1024,
            linger: Duration::from_millis(5),
            max_in_flight: 2,
        }
    }
}

/// Why a batcher died, for whoever must stop because of it.
///
/// A batcher whose task panicked can send nothing any more: every write
/// submitted to it would fail and its message be nacked, forever. The worker
/// watches the fault (through [`Connector::broken`](crate::Connector::broken))
/// and stops instead. Several batchers may share one fault.
#[derive(Clone, Debug)]
pub struct Fault {
    tx: Arc<watch::Sender<Option<String>>>,
}

impl Default for Fault {
    fn default() -> Self {
        Self {
            tx: Arc::new(watch::channel(None).0),
        }
    }
}

impl Fault {
    /// A fault not yet set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records why the batcher died; the first reason stays.
    pub fn set(&self, reason: impl Into<String>) {
        let reason = reason.into();
        self.tx.send_if_modified(|v| {
            if v.is_some() {
                return false;
            }
            *v = Some(reason);
            true
        });
    }

    /// The reason, once set.
    pub fn get(&self) -> Option<String> {
        self.tx.borrow().clone()
    }

    /// Waits until the fault is set and returns the reason.
    pub async fn wait(&self) -> String {
        let mut rx = self.tx.subscribe();
        let reason = rx.wait_for(Option::is_some).await.map(|v| v.clone());
        match reason {
            Ok(v) => v.unwrap_or_default(),
            // The sender lives in `self`: never reached.
            Err(_) => std::future::pending().await,
        }
    }
}

/// Where a write is: waiting in the queue, taken into a batch, or given up.
/// The submitter and the batching task race for it with compare-and-swap,
/// so a write past its deadline is either never sent or its caller learns
/// that it was.
const QUEUED: u8 = 0;
const TAKEN: u8 = 1;
const ABANDONED: u8 = 2;

/// One write waiting for a batch.
#[derive(Debug)]
struct Job<I, O> {
    item: I,
    key: Option<String>,
    size: usize,
    reply: oneshot::Sender<Result<O, ConnectorError>>,
    since: Instant,
    deadline: Instant,
    state: Arc<AtomicU8>,
}

impl<I, O> Job<I, O> {
    /// Claims the write for a batch; false when its caller gave up on it.
    fn take(&self) -> bool {
        !self.reply.is_closed()
            && self
                .state
                .compare_exchange(QUEUED, TAKEN, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }
}

/// Marks a write given up when its caller stops waiting before it was taken
/// (the attempt's future dropped).
struct Abandon(Arc<AtomicU8>);

impl Abandon {
    fn abandon(&self) -> bool {
        self.0
            .compare_exchange(QUEUED, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

impl Drop for Abandon {
    fn drop(&mut self) {
        self.abandon();
    }
}

/// What a flush gives back: one result per item, in order, or one error for
/// the whole request (then every item gets a copy).
pub type FlushResult<O> = Result<Vec<Result<O, ConnectorError>>, ConnectorError>;

/// Collects writes into batches and hands each write its own result.
#[derive(Debug)]
pub struct Batcher<I, O> {
    tx: mpsc::UnboundedSender<Job<I, O>>,
    fault: Fault,
}

impl<I, O> Clone for Batcher<I, O> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            fault: self.fault.clone(),
        }
    }
}

/// The text of a panic, for the fault.
fn panic_text(e: tokio::task::JoinError) -> String {
    if !e.is_panic() {
        return e.to_string();
    }
    let p = e.into_panic();
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

impl<I: Send + 'static, O: Send + 'static> Batcher<I, O> {
    /// Starts the batching task; `flush` sends one batch. Needs a tokio runtime.
    pub fn spawn<F, Fut>(settings: BatchSettings, flush: F) -> Self
    where
        F: Fn(Vec<I>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = FlushResult<O>> + Send + 'static,
    {
        Self::spawn_with_fault(settings, Fault::new(), flush)
    }

    /// As [`spawn`](Self::spawn), reporting a death to `fault` (shared by a
    /// connector's batchers, so it watches one thing).
    pub fn spawn_with_fault<F, Fut>(settings: BatchSettings, fault: Fault, flush: F) -> Self
    where
        F: Fn(Vec<I>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = FlushResult<O>> + Send + 'static,
    {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(settings, Arc::new(flush), rx, fault.clone()));
        let watch = fault.clone();
        tokio::spawn(async move {
            // Ends normally once every handle is dropped; anything else is a death.
            if let Err(e) = task.await
                && e.is_panic()
            {
                watch.set(format!("the batcher's task panicked: {}", panic_text(e)));
            }
        });
        Self { tx, fault }
    }

    /// The batcher's fault: set once it died.
    pub fn fault(&self) -> &Fault {
        &self.fault
    }

    fn stopped(&self) -> ConnectorError {
        match self.fault.get() {
            Some(reason) => ConnectorError::transient(format!("the batcher has stopped: {reason}")),
            None => ConnectorError::transient("the batcher has stopped"),
        }
    }

    /// Queues `item` (of `size` bytes, touching `key`) and waits for its
    /// result, until `deadline` (the attempt's).
    ///
    /// - Still queued at the deadline: the write is never sent and the error
    ///   is transient; sending it again is safe.
    /// - Already sent: its request's deadline is the earliest of its writes',
    ///   so at most ours; the batcher cancels it then, and every write in it
    ///   gets a transient error marked
    ///   [outcome unknown](ConnectorError::is_outcome_unknown).
    ///
    /// Either way the request is over before the caller can retry.
    pub async fn submit(
        &self,
        item: I,
        key: Option<String>,
        size: usize,
        deadline: Instant,
    ) -> Result<O, ConnectorError> {
        if self.fault.get().is_some() {
            return Err(self.stopped());
        }
        let (reply, mut rx) = oneshot::channel();
        let state = Arc::new(AtomicU8::new(QUEUED));
        self.tx
            .send(Job {
                item,
                key,
                size,
                since: Instant::now(),
                deadline,
                reply,
                state: state.clone(),
            })
            .map_err(|_| self.stopped())?;
        let queued = Abandon(state);
        let answer = tokio::select! {
            biased;
            r = &mut rx => r,
            () = tokio::time::sleep_until(deadline) => {
                if queued.abandon() {
                    return Err(ConnectorError::transient(
                        "not sent: the write was still waiting for a batch at the attempt's deadline",
                    ));
                }
                rx.await
            }
        };
        answer.map_err(|_| {
            // The batch's task died with this write in it (or the batcher
            // with it queued).
            let e = match self.fault.get() {
                Some(_) => self.stopped(),
                None => ConnectorError::transient("the batch carrying this write was dropped"),
            };
            if queued.0.load(Ordering::Acquire) == TAKEN {
                e.with_outcome_unknown()
            } else {
                e
            }
        })?
    }
}

async fn run<I, O, F, Fut>(
    settings: BatchSettings,
    flush: Arc<F>,
    mut rx: mpsc::UnboundedReceiver<Job<I, O>>,
    fault: Fault,
) where
    I: Send + 'static,
    O: Send + 'static,
    F: Fn(Vec<I>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = FlushResult<O>> + Send + 'static,
{
    let max_items = settings.max_items.max(1);
    let permits = Arc::new(Semaphore::new(settings.max_in_flight.max(1)));
    let busy: Arc<Mutex<HashSet<String>>> = Arc::default();
    let finished = Arc::new(Notify::new());
    let mut queue: VecDeque<Job<I, O>> = VecDeque::new();
    loop {
        if queue.is_empty() {
            let Some(first) = rx.recv().await else { return };
            queue.push_back(first);
        }
        // The oldest waiting write waits at most `linger` for company, and
        // never past its own deadline (a linger too long to add to a clock
        // reading waits for the deadline).
        if let Some(oldest) = queue.front() {
            let until = oldest
                .since
                .checked_add(settings.linger)
                .map_or(oldest.deadline, |t| t.min(oldest.deadline));
            while queue.len() < max_items {
                match tokio::time::timeout_at(until, rx.recv()).await {
                    Ok(Some(j)) => queue.push_back(j),
                    _ => break,
                }
            }
        }
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        while let Ok(j) = rx.try_recv() {
            queue.push_back(j);
        }
        let (batch, rest) = take_batch(
            std::mem::take(&mut queue),
            &settings,
            max_items,
            &lock(&busy),
            Instant::now(),
        );
        queue = rest;
        if batch.is_empty() {
            // Everything waits on keys still in flight: wake on a finished
            // batch or on new work.
            drop(permit);
            tokio::select! {
                _ = finished.notified() => {}
                j = rx.recv() => match j {
                    Some(j) => queue.push_back(j),
                    None if queue.is_empty() => return,
                    None => finished.notified().await,
                },
            }
            continue;
        }
        let keys: Vec<String> = batch.iter().filter_map(|j| j.key.clone()).collect();
        lock(&busy).extend(keys.iter().cloned());
        // The request may run only as long as its most hurried write.
        let deadline = batch
            .iter()
            .map(|j| j.deadline)
            .min()
            .unwrap_or_else(Instant::now);
        let (items, replies): (Vec<I>, Vec<_>) =
            batch.into_iter().map(|j| (j.item, j.reply)).unzip();
        let flush = flush.clone();
        let busy = busy.clone();
        let finished = finished.clone();
        let fault = fault.clone();
        tokio::spawn(async move {
            let n = items.len();
            // Its own task, so that a panic in the connector's flush is seen
            // here (and stops the worker) instead of silently dropping the
            // replies.
            let sent = tokio::spawn(tokio::time::timeout_at(deadline, flush(items))).await;
            let whole = |replies: Vec<oneshot::Sender<_>>, e: ConnectorError| {
                for reply in replies {
                    let _ = reply.send(Err(e.replicate()));
                }
            };
            match sent {
                Ok(Ok(Ok(results))) if results.len() == n => {
                    for (reply, r) in replies.into_iter().zip(results) {
                        let _ = reply.send(r);
                    }
                }
                Ok(Ok(Ok(results))) => whole(replies, ConnectorError::transient(format!(
                    "the batch answered {} results for {n} writes",
                    results.len()
                ))),
                Ok(Ok(Err(e))) => whole(replies, e),
                // Dropping the flush cancelled its request; whether the
                // vendor applied it is not known.
                Ok(Err(_)) => whole(
                    replies,
                    ConnectorError::transient(
                        "the batch request was cut off at the deadline of its earliest write; it may or may not have taken effect",
                    )
                    .with_outcome_unknown(),
                ),
                Err(e) => {
                    let reason = format!("a batch request panicked: {}", panic_text(e));
                    whole(
                        replies,
                        ConnectorError::transient(format!("the batcher has stopped: {reason}"))
                            .with_outcome_unknown(),
                    );
                    fault.set(reason);
                }
            }
            {
                let mut b = lock(&busy);
                for k in &keys {
                    b.remove(k);
                }
            }
            drop(permit);
            finished.notify_one();
        });
    }
}

/// A batch to send now, and the writes that wait.
type Split<I, O> = (Vec<Job<I, O>>, VecDeque<Job<I, O>>);

/// Splits `queue` into what goes now and what waits, keeping order among
/// the writes that wait.
fn take_batch<I, O>(
    mut queue: VecDeque<Job<I, O>>,
    settings: &BatchSettings,
    max_items: usize,
    busy: &HashSet<String>,
    now: Instant,
) -> Split<I, O> {
    let mut batch = Vec::new();
    let mut keys = HashSet::new();
    let mut bytes = 0usize;
    let mut rest = VecDeque::new();
    while let Some(j) = queue.pop_front() {
        if j.reply.is_closed() || j.state.load(Ordering::Acquire) == ABANDONED {
            // Its caller gave up (the attempt timed out): sending it now would
            // race the retry that follows.
            continue;
        }
        if j.deadline <= now {
            // Its attempt is over: never send it (its caller is told so).
            if j.state
                .compare_exchange(QUEUED, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                let _ = j.reply.send(Err(ConnectorError::transient(
                    "not sent: the write was still waiting for a batch at the attempt's deadline",
                )));
            }
            continue;
        }
        if batch.len() == max_items || (!batch.is_empty() && bytes + j.size > settings.max_bytes) {
            rest.push_back(j);
            rest.extend(queue);
            break;
        }
        if let Some(k) = &j.key
            && (busy.contains(k) || keys.contains(k))
        {
            rest.push_back(j);
            continue;
        }
        if !j.take() {
            continue;
        }
        if let Some(k) = &j.key {
            keys.insert(k.clone());
        }
        bytes += j.size;
        batch.push(j);
    }
    (batch, rest)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Only plain inserts and removes happen under this lock.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    type Calls = Arc<Mutex<Vec<Vec<(String, u32)>>>>;

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    fn batcher(settings: BatchSettings, calls: Calls) -> Batcher<(String, u32), u32> {
        Batcher::spawn(settings, move |items: Vec<(String, u32)>| {
            let calls = calls.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                lock(&calls).push(items.clone());
                Ok(items
                    .into_iter()
                    .map(|(_, n)| {
                        if n == 13 {
                            Err(ConnectorError::permanent("unlucky"))
                        } else {
                            Ok(n * 2)
                        }
                    })
                    .collect())
            }
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_splits_into_full_batches_and_each_gets_its_own_result() {
        let calls: Calls = Arc::default();
        let b = batcher(
            BatchSettings {
                max_items: 500,
                ..BatchSettings::default()
            },
            calls.clone(),
        );
        let mut tasks = Vec::new();
        for n in 0..1001u32 {
            let b = b.clone();
            tasks.push(tokio::spawn(async move {
                b.submit((format!("doc-{n}"), n), Some(format!("doc-{n}")), 10, far())
                    .await
            }));
        }
        for (n, t) in tasks.into_iter().enumerate() {
            let r = t.await.expect("task");
            if n == 13 {
                assert!(r.expect_err("bad write fails alone").is_permanent());
            } else {
                assert_eq!(r.expect("good write"), u32::try_from(n).expect("small") * 2);
            }
        }
        let sizes: Vec<usize> = lock(&calls).iter().map(Vec::len).collect();
        assert_eq!(sizes, [500, 500, 1]);
    }

    #[tokio::test(start_paused = true)]
    async fn same_key_waits_for_the_next_batch_in_order() {
        let calls: Calls = Arc::default();
        let b = batcher(
            BatchSettings {
                max_in_flight: 4,
                ..BatchSettings::default()
            },
            calls.clone(),
        );
        let mut tasks = Vec::new();
        for (key, n) in [("a", 1), ("b", 2), ("a", 3), ("a", 4), ("c", 5)] {
            let b = b.clone();
            tasks.push(tokio::spawn(async move {
                b.submit((key.to_owned(), n), Some(key.to_owned()), 1, far())
                    .await
            }));
        }
        for t in tasks {
            assert!(t.await.expect("task").is_ok());
        }
        let calls = lock(&calls).clone();
        let order_of_a: Vec<u32> = calls
            .iter()
            .flatten()
            .filter(|(k, _)| k == "a")
            .map(|(_, n)| *n)
            .collect();
        assert_eq!(order_of_a, [1, 3, 4], "writes to one key keep their order");
        for batch in &calls {
            let keys: HashSet<_> = batch.iter().map(|(k, _)| k).collect();
            assert_eq!(
                keys.len(),
                batch.len(),
                "one write per key per batch: {batch:?}"
            );
        }
        assert_eq!(calls.len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn byte_limit_and_whole_batch_errors() {
        let sent = Arc::new(AtomicUsize::new(0));
        let s = sent.clone();
        let b: Batcher<u32, ()> = Batcher::spawn(
            BatchSettings {
                max_bytes: 25,
                ..BatchSettings::default()
            },
            move |items: Vec<u32>| {
                s.fetch_add(1, Ordering::SeqCst);
                async move {
                    let _ = items;
                    Err(ConnectorError::from_status(503, "down", None))
                }
            },
        );
        let mut tasks = Vec::new();
        for n in 0..5 {
            let b = b.clone();
            tasks.push(tokio::spawn(
                async move { b.submit(n, None, 10, far()).await },
            ));
        }
        for t in tasks {
            let e = t.await.expect("task").expect_err("whole batch failed");
            assert!(e.is_transient() && e.http_status() == Some(503));
        }
        assert_eq!(
            sent.load(Ordering::SeqCst),
            3,
            "25 bytes fit two 10-byte writes"
        );
    }

    /// What a slow flush went through: started, finished, or dropped
    /// (cancelled) before it finished.
    #[derive(Clone, Debug, Default)]
    struct Log(Arc<Mutex<Vec<String>>>);

    impl Log {
        fn push(&self, what: String) {
            lock(&self.0).push(what);
        }
        fn all(&self) -> Vec<String> {
            lock(&self.0).clone()
        }
    }

    /// Pushes "dropped <name>" unless disarmed: the flush future was cancelled.
    struct OnDrop(Log, String, bool);

    impl Drop for OnDrop {
        fn drop(&mut self) {
            if !self.2 {
                self.0.push(format!("dropped {}", self.1));
            }
        }
    }

    /// A flush that takes `took` per batch, logging what happens to it.
    fn slow(settings: BatchSettings, took: Duration, log: Log) -> Batcher<String, ()> {
        Batcher::spawn(settings, move |items: Vec<String>| {
            let log = log.clone();
            async move {
                let name = items.join("+");
                log.push(format!("sent {name}"));
                let mut guard = OnDrop(log.clone(), name.clone(), false);
                tokio::time::sleep(took).await;
                guard.2 = true;
                log.push(format!("done {name}"));
                Ok(items.iter().map(|_| Ok(())).collect())
            }
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_is_cut_off_at_its_earliest_deadline_before_the_retry_is_sent() {
        let log = Log::default();
        let b = slow(
            BatchSettings::default(),
            Duration::from_secs(12),
            log.clone(),
        );
        let t0 = Instant::now();
        let soon = {
            let b = b.clone();
            tokio::spawn(async move {
                b.submit("a".into(), Some("a".into()), 1, t0 + Duration::from_secs(2))
                    .await
            })
        };
        let later = {
            let b = b.clone();
            tokio::spawn(async move {
                b.submit(
                    "b".into(),
                    Some("b".into()),
                    1,
                    t0 + Duration::from_secs(10),
                )
                .await
            })
        };
        let e = soon.await.expect("task").expect_err("cut off");
        assert!(e.is_transient() && e.is_outcome_unknown(), "{e}");
        assert_eq!(
            t0.elapsed(),
            Duration::from_secs(2),
            "cut at the earliest deadline"
        );
        let e = later
            .await
            .expect("task")
            .expect_err("shares the batch's fate");
        assert!(e.is_outcome_unknown(), "{e}");
        // The retry of "a" goes out only after the first request is gone.
        b.submit("a".into(), Some("a".into()), 1, far())
            .await
            .expect("the retry is sent and answered");
        assert_eq!(log.all(), ["sent a+b", "dropped a+b", "sent a", "done a"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_still_queued_at_its_deadline_is_never_sent() {
        let log = Log::default();
        let b = slow(
            BatchSettings {
                max_in_flight: 1,
                ..BatchSettings::default()
            },
            Duration::from_secs(5),
            log.clone(),
        );
        let first = {
            let b = b.clone();
            tokio::spawn(async move { b.submit("first".into(), None, 1, far()).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        let t0 = Instant::now();
        // The only request slot is taken: this one waits, past its deadline.
        let e = b
            .submit("second".into(), None, 1, t0 + Duration::from_secs(1))
            .await
            .expect_err("deadline passed while queued");
        assert!(e.is_transient() && !e.is_outcome_unknown(), "{e}");
        assert_eq!(t0.elapsed(), Duration::from_secs(1));
        first.await.expect("task").expect("first answered");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(log.all(), ["sent first", "done first"], "second never sent");
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_flush_stops_the_batcher_and_says_why() {
        let b: Batcher<u32, ()> =
            Batcher::spawn(BatchSettings::default(), |items: Vec<u32>| async move {
                assert!(items.is_empty(), "the vendor's answer made no sense");
                Ok(Vec::new())
            });
        let e = b
            .submit(1, None, 1, far())
            .await
            .expect_err("its batch died");
        assert!(e.is_outcome_unknown(), "it was sent: {e}");
        let reason = tokio::time::timeout(Duration::from_secs(1), b.fault().wait())
            .await
            .expect("the fault is set");
        assert!(
            reason.contains("the vendor's answer made no sense"),
            "{reason}"
        );
        let e = b.submit(2, None, 1, far()).await.expect_err("stopped");
        assert!(e.to_string().contains("the batcher has stopped"), "{e}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_linger_past_the_clock_waits_for_the_deadline_instead_of_panicking() {
        let log = Log::default();
        let b = slow(
            BatchSettings {
                linger: Duration::MAX,
                ..BatchSettings::default()
            },
            Duration::from_millis(1),
            log.clone(),
        );
        let e = b
            .submit("x".into(), None, 1, Instant::now() + Duration::from_secs(1))
            .await
            .expect_err("never sent");
        assert!(
            !e.is_outcome_unknown() && e.to_string().contains("not sent"),
            "{e}"
        );
        assert!(b.fault().get().is_none(), "the batcher is alive");
        assert!(log.all().is_empty());
    }
}
