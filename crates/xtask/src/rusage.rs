//! CPU time out of `getrusage`, shared by the benchmark harness (its reaped
//! workers) and the raw subscriber (itself). A module included by path, not a
//! library: the raw subscriber is the yardstick and links nothing of
//! gluefleet's.

use nix::sys::resource::{UsageWho, getrusage};
use std::time::Duration;

/// User plus system CPU of `who`, or zero if the kernel will not say (the
/// benchmark then reports zero rather than failing the run).
pub(crate) fn cpu(who: UsageWho) -> Duration {
    let Ok(u) = getrusage(who) else {
        return Duration::ZERO;
    };
    let us = |t: nix::sys::time::TimeVal| {
        u64::try_from(i128::from(t.tv_sec()) * 1_000_000 + i128::from(t.tv_usec())).unwrap_or(0)
    };
    Duration::from_micros(us(u.user_time()) + us(u.system_time()))
}
