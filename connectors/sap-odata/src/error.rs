//! SAP's error bodies, read once into the dead-letter text.
//!
//! - V2 (Gateway): `{"error":{"code","message":{"value"},"innererror":{"errordetails":[{"code","message"}]}}}`
//! - V4: `{"error":{"code","message","details":[{"code","message"}]}}`
//!
//! The class comes from the HTTP status (the shared table); the operation
//! decides what 404, 409 and 412 mean before this is called.

use gluefleet_core::ConnectorError;
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

/// A failed answer as a classified error naming the request.
pub fn from_answer(status: u16, body: &Value, raw: &str, what: &str) -> ConnectorError {
    let detail = describe(body).unwrap_or_else(|| raw.chars().take(300).collect());
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
        let e = from_answer(400, &v4, "", "POST BusinessPartners");
        assert!(e.is_permanent() && e.message().contains("String(10)"));
        assert!(from_answer(503, &Value::Null, "busy", "x").is_transient());
    }
}
