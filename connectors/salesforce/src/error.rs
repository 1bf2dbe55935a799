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
use gluefleet_core::http::Answer;
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

/// The codes whose meaning is not their HTTP status's; `None` for the rest.
fn by_code(code: &str, text: &str) -> Option<ConnectorError> {
    Some(match code {
        "INVALID_SESSION_ID" => ConnectorError::unauthorized(text),
        "REQUEST_LIMIT_EXCEEDED" => ConnectorError::rate_limited(text, None),
        "UNABLE_TO_LOCK_ROW" => ConnectorError::transient(text),
        _ => return None,
    })
}

/// A failed call: its status and its error array. The codes above decide;
/// otherwise the shared status table does, with Salesforce's code, message
/// and fields as the detail.
pub fn from_call(answer: &Answer) -> ConnectorError {
    let body = answer.json();
    let Some(first) = body.as_array().and_then(|a| a.first()) else {
        return answer.error();
    };
    let (code, text) = describe(first, "errorCode");
    let status = answer.status;
    match by_code(&code, &format!("{} answered {status}: {text}", answer.what)) {
        Some(e) if e.is_rate_limited() => {
            ConnectorError::rate_limited(e.message().to_owned(), answer.retry_after())
                .with_http_status(status)
        }
        Some(e) => e.with_http_status(status),
        None => answer.error_with(&text),
    }
}

/// A failed record of a Collections call.
pub fn from_record(result: &Value, what: &str) -> ConnectorError {
    match result["errors"].as_array().and_then(|a| a.first()) {
        Some(first) => {
            let (code, text) = describe(first, "statusCode");
            by_code(&code, &format!("{what}: {text}"))
                .unwrap_or_else(|| ConnectorError::permanent(format!("{what}: {text}")))
        }
        None => ConnectorError::permanent(format!("{what}: failed without an error")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(status: u16, body: &Value, headers: &[(&'static str, &str)]) -> Answer {
        let mut map = http::HeaderMap::new();
        for (k, v) in headers {
            map.insert(*k, http::HeaderValue::from_str(v).expect("header"));
        }
        Answer {
            what: "PATCH /sobjects/Account/Ext__c/A-1".into(),
            status,
            headers: map,
            body: if body.is_null() {
                String::new()
            } else {
                body.to_string()
            },
        }
    }

    #[test]
    fn calls_and_records_classify_by_code() {
        let e = from_call(&answer(
            401,
            &json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]),
            &[],
        ));
        assert!(e.is_unauthorized());
        let e = from_call(&answer(
            403,
            &json!([{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]),
            &[],
        ));
        assert!(e.is_rate_limited() && e.http_status() == Some(403));
        let e = from_call(&answer(
            400,
            &json!([{"message": "Required fields are missing: [Name]", "errorCode": "REQUIRED_FIELD_MISSING", "fields": ["Name"]}]),
            &[],
        ));
        assert!(
            e.is_permanent()
                && e.message().contains("REQUIRED_FIELD_MISSING")
                && e.message().contains("fields: Name")
                && e.http_status() == Some(400),
            "{e}"
        );
        assert!(from_call(&answer(503, &json!(null), &[])).is_transient());
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

    #[test]
    fn a_429_keeps_its_retry_after_with_or_without_an_error_code() {
        let e = from_call(&answer(429, &json!(null), &[("retry-after", "7")]));
        assert!(e.is_rate_limited() && e.http_status() == Some(429), "{e}");
        assert_eq!(e.retry_after(), Some(std::time::Duration::from_secs(7)));
        let e = from_call(&answer(
            429,
            &json!([{"message": "slow down", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]),
            &[("retry-after", "7")],
        ));
        assert!(e.is_rate_limited() && e.http_status() == Some(429), "{e}");
        assert_eq!(e.retry_after(), Some(std::time::Duration::from_secs(7)));
        assert!(
            e.message().contains("REQUEST_LIMIT_EXCEEDED: slow down"),
            "{e}"
        );
    }
}
