//! The idempotency window: an event id published within it is answered
//! with its first message id and not published again. Two requests with
//! the same id at once publish once: the second waits for the first.
//! A failed publish leaves no trace, so the caller's retry publishes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

#[derive(Debug)]
enum Slot {
    InFlight(Arc<Notify>),
    Done { message_id: String, at: Instant },
}

/// Per instance, in memory.
#[derive(Debug)]
pub struct Window {
    span: Duration,
    slots: Mutex<Slots>,
}

/// The ids, and the size at which expired ones are next swept out.
#[derive(Debug)]
struct Slots {
    map: HashMap<String, Slot>,
    sweep_at: usize,
}

/// The smallest map worth sweeping.
const SWEEP_FLOOR: usize = 10_000;

/// What a request should do.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// Publish, then [`Window::finish`] with the outcome.
    Publish,
    /// Already published: answer with this message id.
    Replay(String),
}

impl Window {
    /// Remembers ids for `span`.
    pub fn new(span: Duration) -> Self {
        Self {
            span,
            slots: Mutex::new(Slots {
                map: HashMap::new(),
                sweep_at: SWEEP_FLOOR,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        // A panic while holding the lock leaves a usable map.
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Claims `key`, waiting while another request publishes it.
    pub async fn claim(&self, key: &str) -> Claim {
        loop {
            let wait = {
                let mut guard = self.lock();
                let now = Instant::now();
                // Expired ids are swept when the map has doubled since the
                // last sweep: amortised O(1) per request, never a scan of a
                // large live window on every post.
                if guard.map.len() >= guard.sweep_at {
                    let span = self.span;
                    guard.map.retain(|_, s| {
                        !matches!(s, Slot::Done { at, .. } if now.duration_since(*at) > span)
                    });
                    guard.sweep_at = (guard.map.len() * 2).max(SWEEP_FLOOR);
                }
                let slots = &mut guard.map;
                match slots.get(key) {
                    Some(Slot::Done { message_id, at }) if now.duration_since(*at) <= self.span => {
                        return Claim::Replay(message_id.clone());
                    }
                    Some(Slot::InFlight(n)) => Arc::clone(n),
                    _ => {
                        slots.insert(key.to_owned(), Slot::InFlight(Arc::new(Notify::new())));
                        return Claim::Publish;
                    }
                }
            };
            let notified = wait.notified();
            // Re-check: the publisher may have finished before `notified`.
            if !matches!(self.lock().map.get(key), Some(Slot::InFlight(_))) {
                continue;
            }
            notified.await;
        }
    }

    /// Records the outcome of a [`Claim::Publish`]: the message id, or
    /// `None` when the publish failed (the id is forgotten).
    pub fn finish(&self, key: &str, message_id: Option<String>) {
        let mut guard = self.lock();
        let slots = &mut guard.map;
        let previous = match message_id {
            Some(message_id) => slots.insert(
                key.to_owned(),
                Slot::Done {
                    message_id,
                    at: Instant::now(),
                },
            ),
            None => slots.remove(key),
        };
        if let Some(Slot::InFlight(n)) = previous {
            n.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_repeat_replays_until_the_window_ends() {
        let w = Window::new(Duration::from_secs(60));
        assert!(matches!(w.claim("e-1").await, Claim::Publish));
        w.finish("e-1", Some("m-1".into()));
        assert!(matches!(w.claim("e-1").await, Claim::Replay(id) if id == "m-1"));
        // The window runs on std's clock: a zero window shows expiry.
        let short = Window::new(Duration::ZERO);
        assert!(matches!(short.claim("e-2").await, Claim::Publish));
        short.finish("e-2", Some("m-2".into()));
        std::thread::sleep(Duration::from_millis(2));
        assert!(matches!(short.claim("e-2").await, Claim::Publish));
    }

    #[tokio::test]
    async fn a_concurrent_repeat_waits_and_a_failure_lets_the_retry_publish() {
        let w = Arc::new(Window::new(Duration::from_secs(60)));
        assert!(matches!(w.claim("e").await, Claim::Publish));
        let waiter = {
            let w = Arc::clone(&w);
            tokio::spawn(async move { w.claim("e").await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "waits while the first publishes");
        w.finish("e", None);
        assert!(
            matches!(waiter.await.expect("joins"), Claim::Publish),
            "the first failed: publish again"
        );
        w.finish("e", Some("m".into()));
        assert!(matches!(w.claim("e").await, Claim::Replay(id) if id == "m"));
    }

    #[tokio::test]
    async fn expired_ids_are_swept_once_the_map_doubles() {
        let w = Window::new(Duration::ZERO);
        for i in 0..SWEEP_FLOOR {
            let key = format!("e-{i}");
            assert_eq!(w.claim(&key).await, Claim::Publish);
            w.finish(&key, Some(format!("m-{i}")));
        }
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(w.claim("last").await, Claim::Publish);
        let slots = w.lock();
        assert_eq!(
            slots.map.len(),
            1,
            "every expired id swept, the new claim kept"
        );
        assert_eq!(slots.sweep_at, SWEEP_FLOOR);
    }
}
