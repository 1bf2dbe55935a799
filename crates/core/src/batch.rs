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
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore, mpsc, oneshot};

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

/// One write waiting for a batch.
#[derive(Debug)]
struct Job<I, O> {
    item: I,
    key: Option<String>,
    size: usize,
    reply: oneshot::Sender<Result<O, ConnectorError>>,
    since: tokio::time::Instant,
}

/// What a flush gives back: one result per item, in order, or one error for
/// the whole request (then every item gets a copy).
pub type FlushResult<O> = Result<Vec<Result<O, ConnectorError>>, ConnectorError>;

/// Collects writes into batches and hands each write its own result.
#[derive(Debug)]
pub struct Batcher<I, O> {
    tx: mpsc::UnboundedSender<Job<I, O>>,
}

impl<I, O> Clone for Batcher<I, O> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
        }
    }
}

impl<I: Send + 'static, O: Send + 'static> Batcher<I, O> {
    /// Starts the batching task; `flush` sends one batch. Needs a tokio runtime.
    pub fn spawn<F, Fut>(settings: BatchSettings, flush: F) -> Self
    where
        F: Fn(Vec<I>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = FlushResult<O>> + Send + 'static,
    {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(settings, Arc::new(flush), rx));
        Self { tx }
    }

    /// Queues `item` (of `size` bytes, touching `key`) and waits for its result.
    pub async fn submit(
        &self,
        item: I,
        key: Option<String>,
        size: usize,
    ) -> Result<O, ConnectorError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job {
                item,
                key,
                size,
                since: tokio::time::Instant::now(),
                reply,
            })
            .map_err(|_| ConnectorError::transient("the batcher has stopped"))?;
        rx.await
            .map_err(|_| ConnectorError::transient("the batch carrying this write was dropped"))?
    }
}

async fn run<I, O, F, Fut>(
    settings: BatchSettings,
    flush: Arc<F>,
    mut rx: mpsc::UnboundedReceiver<Job<I, O>>,
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
        // The oldest waiting write waits at most `linger` for company.
        if let Some(oldest) = queue.front() {
            let until = oldest.since + settings.linger;
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
        let (items, replies): (Vec<I>, Vec<_>) =
            batch.into_iter().map(|j| (j.item, j.reply)).unzip();
        let flush = flush.clone();
        let busy = busy.clone();
        let finished = finished.clone();
        tokio::spawn(async move {
            let n = items.len();
            match flush(items).await {
                Ok(results) if results.len() == n => {
                    for (reply, r) in replies.into_iter().zip(results) {
                        let _ = reply.send(r);
                    }
                }
                Ok(results) => {
                    let e = ConnectorError::transient(format!(
                        "the batch answered {} results for {n} writes",
                        results.len()
                    ));
                    for reply in replies {
                        let _ = reply.send(Err(e.replicate()));
                    }
                }
                Err(e) => {
                    for reply in replies {
                        let _ = reply.send(Err(e.replicate()));
                    }
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
) -> Split<I, O> {
    let mut batch = Vec::new();
    let mut keys = HashSet::new();
    let mut bytes = 0usize;
    let mut rest = VecDeque::new();
    while let Some(j) = queue.pop_front() {
        if j.reply.is_closed() {
            // Its caller gave up (the attempt timed out): sending it now would
            // race the retry that follows.
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
                b.submit((format!("doc-{n}"), n), Some(format!("doc-{n}")), 10)
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
                b.submit((key.to_owned(), n), Some(key.to_owned()), 1).await
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
            tasks.push(tokio::spawn(async move { b.submit(n, None, 10).await }));
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
}
