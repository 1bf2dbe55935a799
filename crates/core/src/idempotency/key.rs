//! How an event's idempotency key is spelled.
//!
//! A key must name one effect, and two different effects must never share
//! one: the store would ack the second as a duplicate and the target, given
//! the same key, would drop it too. So the encoding is injective:
//!
//! | Key | Parts |
//! | --- | --- |
//! | `key:<connector>/<route>/<type>/<value>` | a route's `idempotency_key`, scoped to what it is the key *of* |
//! | `ce:<source>/<id>` | a CloudEvent |
//! | `ev:<source>/<id>` | an envelope with its own `id` |
//! | `msg:<message id>` | anything else |
//!
//! Every part is percent-escaped: `%`, space, control characters and
//! non-ASCII always, and `/` in every part except a `source` (which is a
//! URI reference and reads best as written). The `/` after a source is
//! therefore the last one of the key, and each part decodes back on its
//! own: two different inputs never give the same key. The escaped key is
//! plain visible ASCII, so it is a valid HTTP header value as it is.
//!
//! A key longer than [`MAX_KEY_LEN`] bytes is cut to its first
//! [`KEPT_PREFIX`] bytes followed by `%h` and the SHA-256 of the whole key in
//! hex: still readable at the front, bounded, and distinct from every
//! unhashed key (which never holds `%h`: each `%` of an escaped part is
//! followed by two hex digits).

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use sha2::{Digest, Sha256};
use std::fmt::Write as _;

/// The longest key handed on as it is; longer keys are hashed. Small enough
/// for any header limit a target may have, large enough that real keys
/// (a UUID, a CloudEvents source and id) stay readable.
pub const MAX_KEY_LEN: usize = 200;

/// How much of a long key is kept in front of its hash.
const KEPT_PREFIX: usize = 128;

/// What a `source` escapes: enough to keep keys plain ASCII and `%` unambiguous.
const SOURCE: &AsciiSet = &CONTROLS.add(b' ').add(b'%');

/// What every other part escapes: the same and `/`, the separator.
const PART: &AsciiSet = &SOURCE.add(b'/');

/// `key:<connector>/<route>/<type>/<value>`: a configured key, scoped so that
/// the same field value on another route, event type or connector is
/// another effect (`order.created` and `order.paid` of one order are two).
pub fn configured(connector: &str, route: &str, event_type: &str, value: &str) -> String {
    let mut k = String::from("key:");
    for (i, part) in [connector, route, event_type, value]
        .into_iter()
        .enumerate()
    {
        if i > 0 {
            k.push('/');
        }
        k.extend(utf8_percent_encode(part, PART));
    }
    bounded(k)
}

/// `ce:<source>/<id>`: a CloudEvent, unique by `source` + `id` by definition.
pub fn cloudevent(source: &str, id: &str) -> String {
    sourced("ce:", source, id)
}

/// `ev:<source>/<id>`: an envelope that carries its own `id`.
pub fn envelope(source: &str, id: &str) -> String {
    sourced("ev:", source, id)
}

/// `msg:<message id>`: only a redelivery of the same message is a duplicate.
pub fn message(message_id: &str) -> String {
    let mut k = String::from("msg:");
    k.extend(utf8_percent_encode(message_id, PART));
    bounded(k)
}

fn sourced(tag: &str, source: &str, id: &str) -> String {
    let mut k = String::from(tag);
    k.extend(utf8_percent_encode(source, SOURCE));
    k.push('/');
    k.extend(utf8_percent_encode(id, PART));
    bounded(k)
}

/// `k` as it is, or its first bytes + `%h` + its SHA-256 when too long.
fn bounded(k: String) -> String {
    if k.len() <= MAX_KEY_LEN {
        return k;
    }
    // The escaped key is ASCII, so any byte offset is a char boundary; do
    // not cut an escape in half, for readability.
    let mut cut = KEPT_PREFIX;
    if let Some(p) = k[cut - 2..cut].rfind('%') {
        cut = cut - 2 + p;
    }
    let mut out = String::with_capacity(cut + 2 + 64);
    out.push_str(&k[..cut]);
    out.push_str("%h");
    for b in Sha256::digest(k.as_bytes()) {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn common_keys_read_as_written() {
        assert_eq!(
            cloudevent("//erp/orders", "evt-1001"),
            "ce://erp/orders/evt-1001"
        );
        assert_eq!(envelope("billing", "42"), "ev:billing/42");
        assert_eq!(message("1234567"), "msg:1234567");
        assert_eq!(
            configured("legacy-rest", "order-other", "order.paid", "A1"),
            "key:legacy-rest/order-other/order.paid/A1"
        );
    }

    #[test]
    fn a_slash_in_an_id_cannot_pose_as_the_source_separator() {
        let a = cloudevent("//erp", "orders/1");
        let b = cloudevent("//erp/orders", "1");
        assert_ne!(a, b);
        assert_eq!(a, "ce://erp/orders%2F1");
        assert_eq!(b, "ce://erp/orders/1");
        assert_ne!(
            configured("c", "r/x", "t", "v"),
            configured("c", "r", "x/t", "v")
        );
    }

    #[test]
    fn keys_are_visible_ascii_and_bounded() {
        let k = configured("c", "r", "t", "Zürich \u{7}\r\n%");
        assert_eq!(k, "key:c/r/t/Z%C3%BCrich%20%07%0D%0A%25");
        assert!(http::HeaderValue::from_str(&k).is_ok(), "{k}");

        let long = "x".repeat(1000);
        let k = cloudevent("//erp", &long);
        assert!(k.len() <= MAX_KEY_LEN, "{} bytes", k.len());
        assert!(k.starts_with("ce://erp/xxxx"), "{k}");
        assert!(k.contains("%h"), "{k}");
        assert_ne!(k, cloudevent("//erp", &"x".repeat(1001)));
        assert_eq!(
            k,
            cloudevent("//erp", &long),
            "the same input gives the same key"
        );
        // An escape is never cut in half in front of the hash.
        let k = message(&"/".repeat(100));
        let front = k.split("%h").next().unwrap_or_default();
        assert!(front.ends_with("%2F"), "{k}");
    }

    /// Any text, with a good share of the characters the encoding treats
    /// specially, so collisions would be found if they existed.
    fn part() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just('/'),
                Just('%'),
                Just('h'),
                Just('2'),
                Just('F'),
                Just(':'),
                Just(' '),
                any::<char>()
            ],
            0..12,
        )
        .prop_map(|c| c.into_iter().collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn different_sources_and_ids_never_share_a_key(
            s1 in part(), i1 in part(), s2 in part(), i2 in part(),
        ) {
            prop_assume!((&s1, &i1) != (&s2, &i2));
            prop_assert_ne!(cloudevent(&s1, &i1), cloudevent(&s2, &i2));
            prop_assert_ne!(envelope(&s1, &i1), envelope(&s2, &i2));
            prop_assert_ne!(cloudevent(&s1, &i1), envelope(&s2, &i2));
            prop_assert_ne!(message(&i1), cloudevent(&s2, &i2));
        }

        #[test]
        fn different_scopes_or_values_never_share_a_key(
            a in proptest::collection::vec(part(), 4),
            b in proptest::collection::vec(part(), 4),
        ) {
            prop_assume!(a != b);
            prop_assert_ne!(
                configured(&a[0], &a[1], &a[2], &a[3]),
                configured(&b[0], &b[1], &b[2], &b[3])
            );
            prop_assert_ne!(configured(&a[0], &a[1], &a[2], &a[3]), message(&b[3]));
        }

        #[test]
        fn long_keys_stay_bounded_and_distinct(
            s in part(), i1 in "[a-z/%]{150,400}", i2 in "[a-z/%]{150,400}",
        ) {
            prop_assume!(i1 != i2);
            let (k1, k2) = (cloudevent(&s, &i1), cloudevent(&s, &i2));
            prop_assert!(k1.len() <= MAX_KEY_LEN && k2.len() <= MAX_KEY_LEN);
            prop_assert_ne!(k1, k2);
        }

        #[test]
        fn every_key_is_a_header_value(s in part(), i in part()) {
            let k = cloudevent(&s, &i);
            prop_assert!(k.bytes().all(|b| b.is_ascii_graphic()), "{}", k);
        }
    }
}
