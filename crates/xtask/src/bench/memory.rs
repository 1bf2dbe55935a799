//! `cargo xtask bench memory`: how much memory one large event costs the
//! release gluefleet-legacy-rest, accepted or refused by
//! `delivery.max_event_bytes`.
//!
//! A JSON event takes several times its size once parsed, so the limit is
//! what keeps one large message from taking an instance down; these numbers
//! are the ones docs/CONFIGURATION.md quotes for it. Each case is one run
//! of the worker on the file source with one event of the worst shape for
//! its size (a structured CloudEvent whose `data` is an array of small
//! numbers), delivered to the zero-latency HTTP sink, which never holds a
//! body. The peak is the worker's own `VmHWM` at its end (`resources` in its
//! summary), so it covers start-up, reading the file, the parse and the
//! request, or the dead letter of a refused event.

use super::{
    Result, SinkProcess, block_on, build_release, machine, mib, summary_at_exit, write_benchmarks,
};
use gluefleet_testkit::TempDir;
use gluefleet_testkit::bin::Worker;
use gluefleet_testkit::file_source;
use gluefleet_testkit::pubsub::OutgoingMessage;
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

/// `delivery.max_event_bytes` by default (the core's
/// `DEFAULT_MAX_EVENT_BYTES`).
const DEFAULT_MAX: usize = 1024 * 1024;
/// The largest message Pub/Sub accepts, and the largest limit gluefleet does.
const PUBSUB_MAX: usize = 10_000_000;
/// What the event's envelope looks like around its `data` array.
const HEAD: &str =
    r#"{"specversion":"1.0","id":"mem-1","source":"//bench","type":"bench.big","data":["#;
const TAIL: &str = "]}";

pub(crate) const TITLE: &str = "Peak memory for one large event (`cargo xtask bench memory`)";

/// One measured event.
#[derive(Clone, Copy, Debug)]
struct Case {
    /// The message's size (its body: file-source lines have no attributes).
    bytes: usize,
    /// `delivery.max_event_bytes`; `None` leaves the default.
    limit: Option<usize>,
}

impl Case {
    const ALL: [Case; 4] = [
        // At the default limit exactly: the largest event it accepts.
        Case {
            bytes: DEFAULT_MAX,
            limit: None,
        },
        Case {
            bytes: DEFAULT_MAX + 1,
            limit: None,
        },
        // Pub/Sub's largest, with the limit raised to match.
        Case {
            bytes: PUBSUB_MAX,
            limit: Some(PUBSUB_MAX),
        },
        Case {
            bytes: PUBSUB_MAX,
            limit: None,
        },
    ];

    fn accepted(self) -> bool {
        self.bytes <= self.limit.unwrap_or(DEFAULT_MAX)
    }

    fn limit_text(self) -> String {
        match self.limit {
            Some(n) => format!("{} (`max_event_bytes = {n}`)", thousands(n)),
            None => format!("{} (default)", thousands(DEFAULT_MAX)),
        }
    }
}

/// One case's result.
#[derive(Debug)]
struct Measured {
    case: Case,
    peak_rss_kib: u64,
}

/// Runs the memory benchmark alone and writes its section.
pub(crate) fn run() -> ExitCode {
    block_on(async {
        let section = measure().await?;
        println!("{section}");
        write_benchmarks(TITLE, &section)
    })
}

/// Measures every case; the report's section.
pub(crate) async fn measure() -> Result<String> {
    let binary = build_release("gluefleet-legacy-rest", "gluefleet-legacy-rest")?;
    let sink = SinkProcess::start().await?;
    let url = sink.url();
    let dir = TempDir::new("bench-memory")?;
    let mut results = Vec::new();
    for case in Case::ALL {
        let measured = one(&binary, &dir, url, case).await?;
        eprintln!(
            "  {} bytes, limit {}: {}, peak {:.0} MiB",
            thousands(case.bytes),
            case.limit_text(),
            if case.accepted() {
                "delivered"
            } else {
                "refused"
            },
            mib(measured.peak_rss_kib)
        );
        results.push(measured);
    }
    drop(sink);
    Ok(report(&results))
}

/// One run of the worker on one event of `case.bytes`.
async fn one(binary: &Path, dir: &TempDir, url: &str, case: Case) -> Result<Measured> {
    let limit = case
        .limit
        .map(|n| format!("\n[delivery]\nmax_event_bytes = {n}\n"))
        .unwrap_or_default();
    let config = dir.write(
        "memory.toml",
        format!(
            r#"[target]
base_url = "{url}"
allow_insecure_http = true
{limit}
[[routes]]
type = "bench.big"
action = {{ path = "/big" }}
"#
        ),
    )?;
    let message = OutgoingMessage {
        data: event_of(case.bytes)?,
        ..OutgoingMessage::default()
    };
    let (jsonl, _) = file_source::events_jsonl(&[message]);
    let source = dir.write("events.jsonl", jsonl)?;
    let dead = dir.path().join("dead.jsonl");
    let _ = std::fs::remove_file(&dead);
    let args = [
        "run".to_owned(),
        "--config".to_owned(),
        config.display().to_string(),
        "--source".to_owned(),
        format!("file:{}", source.display()),
        "--dead-letters".to_owned(),
        dead.display().to_string(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let env = [
        ("PORT", gluefleet_testkit::free_port().to_string()),
        ("RUST_LOG", "warn".to_owned()),
    ];
    let worker = Worker::spawn(binary, &args, &env).await?;
    let what = format!("the worker on a {}-byte event", case.bytes);
    let summary = summary_at_exit(worker, &what).await?;
    check_outcome(case, &summary, &file_source::read_dead_letters(&dead)?)?;
    let peak_rss_kib = summary["resources"]["peak_rss_kib"]
        .as_u64()
        .filter(|kib| *kib > 0)
        .ok_or_else(|| format!("{what}: no resources.peak_rss_kib in {summary}"))?;
    Ok(Measured { case, peak_rss_kib })
}

/// A measurement only counts if the event went where the limit says: acked
/// (delivered), or dead-lettered as poison naming its size.
fn check_outcome(
    case: Case,
    summary: &Value,
    dead_letters: &[file_source::FileMessage],
) -> Result<()> {
    let n = |k: &str| summary[k].as_u64().unwrap_or(0);
    let ok = if case.accepted() {
        n("acked") == 1 && dead_letters.is_empty()
    } else {
        n("dead_lettered") == 1
            && dead_letters.iter().any(|d| {
                d.attributes
                    .get("gluefleet-error-class")
                    .map(String::as_str)
                    == Some("poison")
            })
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "a {}-byte event with limit {} should have been {}; summary {summary}, {} dead \
             letter(s)",
            case.bytes,
            case.limit_text(),
            if case.accepted() {
                "delivered"
            } else {
                "dead-lettered as poison"
            },
            dead_letters.len()
        )
        .into())
    }
}

/// A structured CloudEvent of exactly `bytes` bytes whose data is a JSON
/// array of small numbers, the shape that costs the most memory per byte
/// once parsed.
fn event_of(bytes: usize) -> Result<Vec<u8>> {
    let room = bytes
        .checked_sub(HEAD.len() + TAIL.len() + 1)
        .ok_or_else(|| format!("an event of {bytes} bytes is too small for its envelope"))?
        + 1;
    // `7,7,…,7` takes 2k-1 bytes for k items; an even room gets one `77`.
    let items = room.div_ceil(2);
    let mut event = String::with_capacity(bytes);
    event.push_str(HEAD);
    for i in 0..items {
        if i > 0 {
            event.push(',');
        }
        event.push('7');
    }
    if room.is_multiple_of(2) {
        event.push('7');
    }
    event.push_str(TAIL);
    Ok(event.into_bytes())
}

/// `1048576` as `1,048,576`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn report(results: &[Measured]) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "## {TITLE}\n");
    let _ = writeln!(t, "{}\n", machine());
    let _ = writeln!(
        t,
        "The release `gluefleet-legacy-rest` in `run` mode on the file source, one event per \
         run: a structured CloudEvent whose `data` is a JSON array of small numbers (the \
         shape that takes the most memory per byte once parsed), delivered to a local \
         HTTP sink in a process of its own (`http-sink`) that answers 200 at once. Peak RSS \
         is the worker's own `VmHWM` at its end (`resources.peak_rss_kib` in its summary), \
         start-up included.\n"
    );
    let _ = writeln!(
        t,
        "| event bytes | max_event_bytes | outcome | peak RSS MiB |"
    );
    let _ = writeln!(t, "|---|---|---|---|");
    for m in results {
        let _ = writeln!(
            t,
            "| {} | {} | {} | {:.0} |",
            thousands(m.case.bytes),
            m.case.limit_text(),
            if m.case.accepted() {
                "delivered"
            } else {
                "refused: dead-lettered as `poison`, not parsed"
            },
            mib(m.peak_rss_kib)
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_have_the_exact_size_and_parse() {
        for bytes in [200, 201, DEFAULT_MAX, DEFAULT_MAX + 1] {
            let event = event_of(bytes).expect("large enough");
            assert_eq!(event.len(), bytes);
            let v: Value = serde_json::from_slice(&event).expect("JSON");
            assert!(
                v["data"].as_array().is_some_and(|a| a.len() > 10),
                "{bytes}"
            );
        }
        assert!(event_of(10).is_err());
    }

    #[test]
    fn only_events_over_the_limit_are_refused() {
        let [at, over, raised, refused] = Case::ALL;
        assert!(at.accepted() && raised.accepted());
        assert!(!over.accepted() && !refused.accepted());
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(1_048_576), "1,048,576");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(10_000_000), "10,000,000");
    }
}
