//! What the process has spent: CPU time and peak resident memory, from
//! `getrusage`. A job's summary reports both, split at the first message, so
//! an operator sees what delivering cost apart from starting up, and the
//! fleet benchmark reads the same figures for every worker it compares.

use std::time::Duration;

/// CPU and memory used by this process so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// User plus system CPU time.
    pub cpu: Duration,
    /// Peak resident set size, KiB.
    pub peak_rss_kib: u64,
}

impl Usage {
    /// Now; zeros where the OS will not say (the summary then shows 0).
    pub fn now() -> Self {
        use nix::sys::resource::{UsageWho, getrusage};
        let Ok(u) = getrusage(UsageWho::RUSAGE_SELF) else {
            return Self::default();
        };
        let micros = |t: nix::sys::time::TimeVal| {
            let us = i128::from(t.tv_sec()) * 1_000_000 + i128::from(t.tv_usec());
            u64::try_from(us).unwrap_or(0)
        };
        Self {
            cpu: Duration::from_micros(micros(u.user_time()) + micros(u.system_time())),
            peak_rss_kib: peak_rss_kib()
                // Linux reports ru_maxrss in KiB.
                .unwrap_or_else(|| u64::try_from(u.max_rss()).unwrap_or(0)),
        }
    }
}

/// `VmHWM` of this process. Preferred to `ru_maxrss`, which survives
/// `execve`: a worker started by a big parent would report the parent's
/// peak as its own.
fn peak_rss_kib() -> Option<u64> {
    status_kib("self", "VmHWM")
}

/// A `kB` field of `/proc/<pid>/status` (`pid` may be `self`), e.g. `VmRSS`.
pub fn status_kib(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_process_has_spent_cpu_and_memory() {
        // Burn a little CPU so the clock has something to show.
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert_ne!(x, 1);
        let u = Usage::now();
        assert!(u.peak_rss_kib > 0, "{u:?}");
        assert!(u.cpu > Duration::ZERO, "{u:?}");
        assert!(Usage::now().cpu >= u.cpu);
        let rss = status_kib("self", "VmRSS").expect("Linux has VmRSS");
        assert!(rss > 0, "{rss}");
        assert_eq!(status_kib("self", "NoSuchField"), None);
    }
}
