//! W3C trace context: joining the publisher's trace.
//!
//! A publisher that traces puts its span in the message: the W3C
//! `traceparent` attribute, or `googclient_traceparent`, where Google's
//! client libraries put it when they publish with OpenTelemetry on. The
//! worker's handling of the message is a span of its own, a child of the
//! publisher's: [`TraceContext`] keeps the trace id and the publisher's span
//! id and picks a fresh span id for the worker, which its log lines carry
//! and which the target sees as the parent in the `traceparent` header a
//! connector sends ([`TraceContext::traceparent`]). So publisher, worker and
//! target share one trace id, and each hop names the one before it.
//!
//! Malformed values (wrong lengths, upper-case or non-hex digits, all-zero
//! ids, version `ff`) are ignored, as the W3C spec says a receiver must:
//! the message then starts no trace rather than a wrong one.

use std::collections::BTreeMap;
use std::fmt;

/// The message attributes that may carry a `traceparent`, in the order read.
pub const TRACEPARENT_ATTRIBUTES: [&str; 2] = ["traceparent", "googclient_traceparent"];

/// The trace a message belongs to, and the worker's span in it.
#[derive(Clone, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: [u8; 32],
    parent_id: [u8; 16],
    span_id: [u8; 16],
    sampled: bool,
}

impl TraceContext {
    /// The context of a message with these attributes, with a fresh span id
    /// for the worker; `None` when no attribute holds a valid `traceparent`.
    pub fn from_attributes(attributes: &BTreeMap<String, String>) -> Option<Self> {
        TRACEPARENT_ATTRIBUTES
            .iter()
            .filter_map(|name| attributes.get(*name))
            .find_map(|value| Self::child_of(value))
    }

    /// A child span of the `traceparent` header value `value`.
    pub fn child_of(value: &str) -> Option<Self> {
        let mut parts = value.trim().split('-');
        let version = parts.next()?;
        let trace = parts.next()?;
        let parent = parts.next()?;
        let flags = parts.next()?;
        let rest = parts.next();
        // Version 00 has exactly four parts; a later version may add some.
        if version.len() != 2
            || !is_lower_hex(version)
            || version == "ff"
            || (version == "00" && rest.is_some())
            || flags.len() != 2
            || !is_lower_hex(flags)
        {
            return None;
        }
        let trace_id: [u8; 32] = hex_id(trace)?;
        let parent_id: [u8; 16] = hex_id(parent)?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        Some(Self {
            trace_id,
            parent_id,
            span_id: new_span_id(),
            sampled: flags & 1 == 1,
        })
    }

    /// The same trace with `span_id` as the worker's span: the id the span
    /// exporter picked, so the span it sends, the log lines and the target's
    /// `traceparent` name one span. Handed back unchanged (`Err`) unless `span_id`
    /// is 16 lower-case hex digits, not all zeros.
    pub fn with_span_id(mut self, span_id: &str) -> Result<Self, Self> {
        match hex_id(span_id) {
            Some(id) => {
                self.span_id = id;
                Ok(self)
            }
            None => Err(self),
        }
    }

    /// The trace id, 32 lower-case hex digits.
    pub fn trace_id(&self) -> &str {
        as_str(&self.trace_id)
    }

    /// The publisher's span id (the parent of the worker's).
    pub fn parent_id(&self) -> &str {
        as_str(&self.parent_id)
    }

    /// The worker's span id, 16 lower-case hex digits.
    pub fn span_id(&self) -> &str {
        as_str(&self.span_id)
    }

    /// Whether the publisher sampled the trace (flag `01`).
    pub fn sampled(&self) -> bool {
        self.sampled
    }

    /// The `traceparent` header for a call the worker makes: this trace,
    /// the worker's span as the parent, the publisher's sampling decision.
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{}",
            self.trace_id(),
            self.span_id(),
            if self.sampled { "01" } else { "00" }
        )
    }
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceContext")
            .field("trace_id", &self.trace_id())
            .field("parent_id", &self.parent_id())
            .field("span_id", &self.span_id())
            .field("sampled", &self.sampled)
            .finish()
    }
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `s` as an id of exactly `N` lower-case hex digits, not all zeros.
fn hex_id<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != N || !is_lower_hex(s) || s.bytes().all(|b| b == b'0') {
        return None;
    }
    s.as_bytes().try_into().ok()
}

fn as_str(id: &[u8]) -> &str {
    // Only ever filled with ASCII hex digits.
    std::str::from_utf8(id).unwrap_or_default()
}

fn new_span_id() -> [u8; 16] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    // Never all zeros: the spec's invalid id.
    let n = fastrand::u64(1..);
    let mut id = [b'0'; 16];
    for (i, d) in id.iter_mut().enumerate() {
        *d = HEX[usize::try_from((n >> (60 - 4 * i)) & 0xf).unwrap_or(0)];
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUBLISHED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn an_exporters_span_id_replaces_the_workers_only_when_valid() {
        let t = TraceContext::child_of(PUBLISHED).expect("valid");
        let t = t.with_span_id("b7ad6b7169203331").expect("a valid id");
        assert_eq!(t.span_id(), "b7ad6b7169203331");
        assert_eq!(t.parent_id(), "00f067aa0ba902b7", "the parent stays");
        assert!(t.traceparent().contains("-b7ad6b7169203331-"));
        for bad in [
            "0000000000000000",
            "B7AD6B7169203331",
            "b7ad",
            "b7ad6b7169203331ff",
        ] {
            let back = t.clone().with_span_id(bad).expect_err(bad);
            assert_eq!(back.span_id(), "b7ad6b7169203331", "{bad} changes nothing");
        }
    }

    #[test]
    fn the_worker_is_a_child_of_the_publishers_span() {
        let t = TraceContext::child_of(PUBLISHED).expect("valid");
        assert_eq!(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.parent_id(), "00f067aa0ba902b7");
        assert_eq!(t.span_id().len(), 16);
        assert_ne!(t.span_id(), t.parent_id());
        assert!(t.sampled());
        let sent = t.traceparent();
        assert_eq!(
            sent,
            format!("00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01", t.span_id())
        );
        // What the target receives parses back to the same trace, with the
        // worker's span as its parent.
        let target = TraceContext::child_of(&sent).expect("valid");
        assert_eq!(target.trace_id(), t.trace_id());
        assert_eq!(target.parent_id(), t.span_id());
        let other = TraceContext::child_of(PUBLISHED).expect("valid");
        assert_ne!(other.span_id(), t.span_id(), "a fresh span per message");
    }

    #[test]
    fn malformed_values_start_no_trace() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
        ] {
            assert_eq!(TraceContext::child_of(bad), None, "{bad:?}");
        }
        // A later version may add fields; its first four are still read.
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-more";
        let t = TraceContext::child_of(later).expect("future version");
        assert!(!t.sampled());
    }

    #[test]
    fn googles_client_attribute_is_read_when_traceparent_is_absent() {
        let mut attrs = BTreeMap::new();
        assert_eq!(TraceContext::from_attributes(&attrs), None);
        attrs.insert("googclient_traceparent".to_owned(), PUBLISHED.to_owned());
        let t = TraceContext::from_attributes(&attrs).expect("read");
        assert_eq!(t.parent_id(), "00f067aa0ba902b7");
        // A valid W3C attribute wins; an invalid one falls through.
        attrs.insert(
            "traceparent".to_owned(),
            "00-11111111111111111111111111111111-2222222222222222-00".to_owned(),
        );
        let t = TraceContext::from_attributes(&attrs).expect("read");
        assert_eq!(t.trace_id(), "11111111111111111111111111111111");
        attrs.insert("traceparent".to_owned(), "garbage".to_owned());
        let t = TraceContext::from_attributes(&attrs).expect("read");
        assert_eq!(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
    }
}
