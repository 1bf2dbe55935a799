//! The RFC 5322 message a `gmail_send` route sends, built from its
//! templates, as Gmail's `raw` wants it (base64url of the whole message).
//!
//! Header values come from events, so each is checked: a CR or LF would
//! let an event add headers (a `Bcc:`) or start the body early, and is
//! refused. Non-ASCII header text is RFC 2047 encoded; bodies are UTF-8 in
//! base64, wrapped at 76 columns (RFC 2045), so any text travels intact.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

/// What a message is made of, already rendered for one event.
#[derive(Debug, Default)]
pub struct Parts<'a> {
    /// `From` (the acting user), if known.
    pub from: Option<&'a str>,
    /// `To`.
    pub to: &'a str,
    /// `Cc`.
    pub cc: Option<&'a str>,
    /// `Subject`.
    pub subject: &'a str,
    /// `Message-ID`, with angle brackets.
    pub message_id: &'a str,
    /// `Date`, RFC 5322 form.
    pub date: &'a str,
    /// Plain-text body.
    pub text: Option<&'a str>,
    /// HTML body.
    pub html: Option<&'a str>,
    /// More headers.
    pub headers: &'a [(String, String)],
}

/// Refuses a header value that could break out of its header line.
fn header_value<'v>(name: &str, value: &'v str) -> Result<&'v str, String> {
    if value.chars().any(|c| c == '\r' || c == '\n' || c == '\0') {
        return Err(format!(
            "header {name}: the value holds a line break, which would add headers or start the body"
        ));
    }
    Ok(value)
}

/// RFC 2047 `=?UTF-8?B?...?=` for text that is not plain ASCII.
fn encoded_word(text: &str) -> String {
    if text.is_ascii() {
        text.to_owned()
    } else {
        format!("=?UTF-8?B?{}?=", STANDARD.encode(text.as_bytes()))
    }
}

/// Base64 wrapped at 76 columns, CRLF line ends.
fn body_base64(text: &str) -> String {
    let encoded = STANDARD.encode(text.as_bytes());
    let mut out = String::with_capacity(encoded.len() + encoded.len() / 38 + 2);
    for chunk in encoded.as_bytes().chunks(76) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push_str("\r\n");
    }
    out
}

fn part(content_type: &str, text: &str) -> String {
    format!(
        "Content-Type: {content_type}; charset=UTF-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{}",
        body_base64(text)
    )
}

/// The message, as bytes on the wire.
pub fn build(p: &Parts<'_>) -> Result<String, String> {
    let mut m = String::with_capacity(512);
    let mut line = |name: &str, value: &str, encode: bool| -> Result<(), String> {
        let value = header_value(name, value)?;
        m.push_str(name);
        m.push_str(": ");
        if encode {
            m.push_str(&encoded_word(value));
        } else {
            m.push_str(value);
        }
        m.push_str("\r\n");
        Ok(())
    };
    if let Some(from) = p.from {
        line("From", from, false)?;
    }
    if p.to.trim().is_empty() {
        return Err("the To header is empty".into());
    }
    line("To", p.to, false)?;
    if let Some(cc) = p.cc.filter(|c| !c.trim().is_empty()) {
        line("Cc", cc, false)?;
    }
    line("Subject", p.subject, true)?;
    line("Message-ID", p.message_id, false)?;
    line("Date", p.date, false)?;
    for (name, value) in p.headers {
        line(name, value, true)?;
    }
    line("MIME-Version", "1.0", false)?;
    match (p.text, p.html) {
        (Some(text), Some(html)) => {
            let boundary = format!(
                "gluefleet-{}",
                p.message_id.trim_matches(|c| c == '<' || c == '>')
            );
            m.push_str(&format!(
                "Content-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\r\n"
            ));
            m.push_str(&format!("--{boundary}\r\n{}", part("text/plain", text)));
            m.push_str(&format!("--{boundary}\r\n{}", part("text/html", html)));
            m.push_str(&format!("--{boundary}--\r\n"));
        }
        (Some(text), None) => m.push_str(&part("text/plain", text)),
        (None, Some(html)) => m.push_str(&part("text/html", html)),
        (None, None) => return Err("the message has no body".into()),
    }
    Ok(m)
}

/// Gmail's `raw`: base64url of the message.
pub fn raw(message: &str) -> String {
    URL_SAFE_NO_PAD.encode(message.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts<'a>() -> Parts<'a> {
        Parts {
            from: Some("alice@example.com"),
            to: "bob@example.com",
            subject: "Order A1 shipped",
            message_id: "<abc@gluefleet>",
            date: "Thu, 03 Dec 2026 16:00:00 GMT",
            text: Some("Your order is on its way."),
            ..Parts::default()
        }
    }

    #[test]
    fn a_text_message_has_its_headers_and_a_base64_body() {
        let m = build(&parts()).expect("builds");
        let (head, body) = m.split_once("\r\n\r\n").expect("a blank line");
        for want in [
            "From: alice@example.com",
            "To: bob@example.com",
            "Subject: Order A1 shipped",
            "Message-ID: <abc@gluefleet>",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=UTF-8",
        ] {
            assert!(head.lines().any(|l| l == want), "{want} in {head}");
        }
        let decoded = STANDARD.decode(body.replace("\r\n", "")).expect("base64");
        assert_eq!(decoded, b"Your order is on its way.");
    }

    #[test]
    fn an_event_cannot_add_headers_through_a_value() {
        let mut p = parts();
        p.subject = "Hi\r\nBcc: everyone@example.com";
        let e = build(&p).expect_err("refused");
        assert!(e.contains("Subject") && e.contains("line break"), "{e}");
        let mut p = parts();
        p.to = "bob@example.com\nBcc: x@example.com";
        assert!(build(&p).is_err());
    }

    #[test]
    fn non_ascii_subjects_are_encoded_and_both_bodies_go_as_alternatives() {
        let mut p = parts();
        p.subject = "Bestellung größer";
        p.html = Some("<p>On its way</p>");
        let m = build(&p).expect("builds");
        assert!(m.contains("Subject: =?UTF-8?B?"), "{m}");
        assert!(m.contains("multipart/alternative"), "{m}");
        assert!(m.contains("text/html") && m.contains("text/plain"));
        assert!(m.trim_end().ends_with("--gluefleet-abc@gluefleet--"), "{m}");
        let r = raw(&m);
        assert!(!r.contains('+') && !r.contains('/') && !r.contains('='));
        assert_eq!(URL_SAFE_NO_PAD.decode(r).expect("base64url"), m.as_bytes());
    }
}
