//! Salesforce's error shapes, classified once.
//!
//! - A failed call answers an array `[{"message","errorCode","fields"}]`.
//! - A record inside a Collections answer carries `{"statusCode","message","fields"}`.
//!
//! | code                      | class                                  |
//! |---------------------------|----------------------------------------|
//! | `INVALID_SESSION_ID`      | unauthorized (refresh once, retry once)|
//! | `REQUEST_LIMIT_EXCEEDED`  | rate limited (the org's daily limit)   |
//! | `UNABLE_TO_LOCK_ROW`      | transient (another write holds the row)|
//! | anything else             | by HTTP status: 5xx transient, 4xx permanent; in a record: permanent (`DUPLICATE_VALUE`, `INVALID_FIELD`, `REQUIRED_FIELD_MISSING`, `FIELD_CUSTOM_VALIDATION_EXCEPTION`, ...) |

use gluefleet_core::ConnectorError;
use serde_json::Value;

fn describe(e: &Value, code_key: &str) -> (String, String) {
    let code = e[code_key].as_str().unwrap_or("UNKNOWN").to_owned();
    let message = e["message"].as_str().unwrap_or_default();
    let fields: Vec<&str> = e["fields"]
        .as_array()
        .map(|f| f.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let text = if fields.is_empty() {
        format!("{code}: {message}")
    } else {
        format!("{code}: {message} (fields: {})", fields.join(", "))
    };
    (code, text)
}

fn by_code(code: &str, text: String, status: Option<u16>) -> ConnectorError {
    let err = match code {
        "INVALID_SESSION_ID" => ConnectorError::unauthorized(text),
        "REQUEST_LIMIT_EXCEEDED" => ConnectorError::rate_limited(text, None),
        "UNABLE_TO_LOCK_ROW" => ConnectorError::transient(text),
        _ => match status {
            Some(s) => return ConnectorError::from_status(s, text, None),
            None => ConnectorError::permanent(text),
        },
    };
    match status {
        Some(s) => err.with_http_status(s),
        None => err,
    }
}

/// A failed call: `status` and its error array.
pub fn from_call(status: u16, body: &Value, what: &str) -> ConnectorError {
    match body.as_array().and_then(|a| a.first()) {
        Some(first) => {
            let (code, text) = describe(first, "errorCode");
            by_code(&code, format!("{what}: {text}"), Some(status))
        }
        None => ConnectorError::from_status(status, format!("{what} answered {status}"), None),
    }
}

/// A failed record of a Collections call.
pub fn from_record(result: &Value, what: &str) -> ConnectorError {
    match result["errors"].as_array().and_then(|a| a.first()) {
        Some(first) => {
            let (code, text) = describe(first, "statusCode");
            by_code(&code, format!("{what}: {text}"), None)
        }
        None => ConnectorError::permanent(format!("{what}: failed without an error")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn calls_and_records_classify_by_code() {
        let e = from_call(
            401,
            &json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]),
            "PATCH x",
        );
        assert!(e.is_unauthorized());
        let e = from_call(
            403,
            &json!([{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]),
            "x",
        );
        assert!(e.is_rate_limited() && e.http_status() == Some(403));
        let e = from_call(
            400,
            &json!([{"message": "Required fields are missing: [Name]", "errorCode": "REQUIRED_FIELD_MISSING", "fields": ["Name"]}]),
            "x",
        );
        assert!(
            e.is_permanent()
                && e.message().contains("REQUIRED_FIELD_MISSING")
                && e.message().contains("fields: Name")
        );
        assert!(from_call(503, &json!(null), "x").is_transient());
        let r = json!({"success": false, "errors": [{"statusCode": "UNABLE_TO_LOCK_ROW", "message": "locked", "fields": []}]});
        assert!(from_record(&r, "x").is_transient());
        let r = json!({"success": false, "errors": [{"statusCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION", "message": "bad", "fields": ["Amount"]}]});
        let e = from_record(&r, "Account E-1");
        assert!(
            e.is_permanent()
                && e.message()
                    .contains("FIELD_CUSTOM_VALIDATION_EXCEPTION: bad (fields: Amount)"),
            "{e}"
        );
    }
}
