//! SAP's error bodies, read once into the dead-letter text.
//!
//! - V2 (Gateway): `{"error":{"code","message":{"value"},"innererror":{"errordetails":[{"code","message"}]}}}`
//! - V4: `{"error":{"code","message","details":[{"code","message"}]}}`
//!
//! The class comes from the HTTP status (the shared table); the operation
//! decides what 404, 409 and 412 mean before this is called.

use gluefleet_core::ConnectorError;
use gluefleet_core::http::Answer;
use serde_json::Value;

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("value").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

/// "CODE: message (details: CODE2: message2; ...)" from either version's body.
pub fn describe(body: &Value) -> Option<String> {
    let e = body.get("error")?;
    let code = e.get("code").and_then(Value::as_str).unwrap_or("");
    let message = e.get("message").and_then(text_of).unwrap_or_default();
    let details = e
        .get("details")
        .or_else(|| e.get("innererror").and_then(|i| i.get("errordetails")))
        .and_then(Value::as_array)
        .map(|d| {
            d.iter()
                .filter_map(|x| {
                    let m = x.get("message").and_then(text_of)?;
                    let c = x.get("code").and_then(Value::as_str).unwrap_or("");
                    (m != message).then(|| format!("{c}: {m}"))
                })
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    // CAP puts the HTTP status in `code` for protocol errors ("412"): leave
    // it out then, the status is named already.
    let numeric = !code.is_empty() && code.chars().all(|c| c.is_ascii_digit());
    let mut s = if code.is_empty() || numeric {
        message
    } else {
        format!("{code}: {message}")
    };
    if !details.is_empty() {
        s.push_str(&format!(" (details: {})", details.join("; ")));
    }
    Some(s)
}

/// A failed answer as a classified error naming the request: the shared
/// status table, SAP's error body as the detail.
pub fn from_answer(answer: &Answer) -> ConnectorError {
    let detail = describe(&answer.json()).unwrap_or_else(|| answer.snippet());
    answer.error_with(&detail)
}

/// A failed part of a `$batch` answer, as [`from_answer`] (a part has no
/// headers of its own to read).
pub fn from_part(status: u16, body: &Value, what: &str) -> ConnectorError {
    let detail = describe(body).unwrap_or_default();
    ConnectorError::from_status(status, format!("{what} answered {status}: {detail}"), None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn both_versions_read() {
        let v2 = json!({"error":{"code":"ENTITY_ALREADY_EXISTS","message":{"lang":"en","value":"Entity already exists"},
                        "innererror":{"errordetails":[{"code":"/IWBEP/CX","message":{"value":"Partner locked"}}]}}});
        assert_eq!(
            describe(&v2).as_deref(),
            Some(
                "ENTITY_ALREADY_EXISTS: Entity already exists (details: /IWBEP/CX: Partner locked)"
            )
        );
        let v4 = json!({"error":{"code":"ASSERT_DATA_TYPE","message":"Value X is not a valid String(10)","target":"ID"}});
        assert_eq!(
            describe(&v4).as_deref(),
            Some("ASSERT_DATA_TYPE: Value X is not a valid String(10)")
        );
        let e = from_part(400, &v4, "POST BusinessPartners");
        assert!(e.is_permanent() && e.message().contains("String(10)"));
        let answer = |status, headers: &[(&'static str, &str)], body: &str| Answer {
            what: "POST BusinessPartners".into(),
            status,
            headers: headers
                .iter()
                .map(|(k, v)| {
                    let v = http::HeaderValue::from_str(v).expect("header");
                    (http::HeaderName::from_static(k), v)
                })
                .collect(),
            body: body.into(),
        };
        let e = from_answer(&answer(400, &[], &v4.to_string()));
        assert!(e.is_permanent() && e.http_status() == Some(400), "{e}");
        assert_eq!(
            e.message(),
            "POST BusinessPartners answered 400: ASSERT_DATA_TYPE: Value X is not a valid String(10)"
        );
        let e = from_answer(&answer(503, &[], "busy"));
        assert!(
            e.is_transient() && e.message().ends_with("503: busy"),
            "{e}"
        );
        let e = from_answer(&answer(429, &[("retry-after", "4")], ""));
        assert!(e.is_rate_limited(), "{e}");
        assert_eq!(e.retry_after(), Some(std::time::Duration::from_secs(4)));
    }
}
