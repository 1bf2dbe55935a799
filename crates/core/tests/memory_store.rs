//! What the in-memory idempotency store costs per key, and that a full store
//! stays at `max_keys` however many keys go through it. The figure is what
//! docs/ARCHITECTURE.md and deploy/README.md size with.

use gluefleet_core::idempotency::{Claim, IdempotencyStore, MemoryStore};
use std::time::Duration;

const KEYS: usize = 200_000;
const TTL: Duration = Duration::from_secs(24 * 3600);
const LEASE: Duration = Duration::from_secs(120);

async fn deliver(store: &MemoryStore, key: &str) {
    match store.claim(key, LEASE).await {
        Ok(Claim::Acquired(t)) => store.complete(key, &t, TTL, None).await.expect("complete"),
        other => panic!("{key}: {other:?}"),
    }
}

/// The process's resident memory, for the record (Linux).
fn rss_kib() -> Option<i64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test(start_paused = true)]
async fn a_full_store_costs_at_most_80_bytes_per_key_and_stays_full() {
    let store = MemoryStore::with_max_keys(KEYS);
    let rss_before = rss_kib();
    let round = |r: usize| {
        let store = &store;
        async move {
            for i in 0..KEYS {
                // Realistic keys: a CloudEvents source and a UUID-sized id.
                // Their length does not matter: the store keeps a digest.
                deliver(store, &format!("ce://erp/orders/{r:04}-{i:032}")).await;
            }
        }
    };
    round(0).await;
    let filling = store.approx_bytes() / KEYS;
    assert_eq!(store.len(), KEYS);
    assert_eq!(store.evictions(), 0);

    // As many keys again: each one evicts the oldest done key and its slot
    // is reused; the index and the done queue grow a little past what they
    // needed while filling (deleted index buckets are reused only after a
    // rehash). That is the steady state of a busy worker and what sizing
    // must assume.
    round(1).await;
    let full = store.approx_bytes();
    let per_key = full / KEYS;
    let rss = rss_before
        .zip(rss_kib())
        .map(|(b, a)| (a - b) * 1024 / KEYS as i64);
    println!(
        "in-memory idempotency store: {filling} bytes per key while filling, \
         {per_key} per key when full and evicting (RSS grew {rss:?} bytes per key)"
    );
    assert!(
        (40..=80).contains(&per_key),
        "{per_key} bytes per key: update the sizing in docs/ARCHITECTURE.md and deploy/README.md"
    );
    assert_eq!(store.len(), KEYS, "never more than max_keys");
    assert_eq!(store.evictions(), KEYS as u64);
    assert!(
        matches!(
            store
                .claim(&format!("ce://erp/orders/0000-{:032}", 0), LEASE)
                .await,
            Ok(Claim::Acquired(_))
        ),
        "the oldest keys were the ones evicted"
    );

    // And again, with that one claim held all along: no further growth
    // beyond the claim queue's slack (stale items are compacted away).
    round(2).await;
    assert!(
        store.approx_bytes() <= full + full / 50,
        "a full store does not keep growing: {} bytes, {full} a round earlier",
        store.approx_bytes()
    );
}
