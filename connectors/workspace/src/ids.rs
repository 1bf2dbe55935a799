//! Ids the connector chooses itself, derived from an event's key, so that a
//! repeat of the event names the same object and the vendor can tell.
//!
//! - A Calendar event id: lowercase base32hex (`0-9a-v`), 5 to 1024 chars,
//!   unique per calendar (Calendar's rule for client-chosen ids). A second
//!   insert of the same id answers 409, also after the event was deleted.
//! - A Gmail `Message-ID`: Gmail takes no client id for de-duplication, but
//!   a sent message can be found by `rfc822msgid:`, so a resend looks first.

use sha2::{Digest, Sha256};

/// RFC 4648 base32hex, lowercase, no padding.
fn base32hex(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// The Calendar event id for an event key: base32hex of its SHA-256, 52
/// chars. A hash, not the key itself, so any key (any length, any
/// characters) gives a valid id, and one key always the same.
pub fn calendar_event_id(key: &str) -> String {
    base32hex(&Sha256::digest(key.as_bytes()))
}

/// The `Message-ID` (with angle brackets) of the mail an event sends.
pub fn message_id(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    format!("<{}@gluefleet>", base32hex(&digest[..20]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32hex_follows_rfc_4648() {
        // RFC 4648 §10 test vectors, lowercased, padding dropped.
        for (input, want) in [
            ("", ""),
            ("f", "co"),
            ("fo", "cpng"),
            ("foo", "cpnmu"),
            ("foob", "cpnmuog"),
            ("fooba", "cpnmuoj1"),
            ("foobar", "cpnmuoj1e8"),
        ] {
            assert_eq!(base32hex(input.as_bytes()), want, "{input:?}");
        }
    }

    #[test]
    fn event_ids_keep_calendars_rule_and_one_key_gives_one_id() {
        for key in ["a", "key:workspace/meeting/booked/M-1", &"x".repeat(5000)] {
            let id = calendar_event_id(key);
            assert!((5..=1024).contains(&id.len()), "{id}");
            assert!(
                id.chars().all(|c| matches!(c, '0'..='9' | 'a'..='v')),
                "{id}"
            );
            assert_eq!(id, calendar_event_id(key));
        }
        assert_ne!(calendar_event_id("M-1"), calendar_event_id("M-2"));
    }

    #[test]
    fn message_ids_are_stable_and_distinct() {
        let a = message_id("ce:/crm/1");
        assert!(a.starts_with('<') && a.ends_with("@gluefleet>"), "{a}");
        assert_eq!(a, message_id("ce:/crm/1"));
        assert_ne!(a, message_id("ce:/crm/2"));
    }
}
