//! Google's error bodies, in the two shapes its APIs send.
//!
//! The legacy shape carries `errors[]` with `domain` and `reason` (Calendar,
//! Gmail, Directory); the AIP-193 shape carries `status` and `details`
//! (Sheets and newer APIs). Many answers carry both, so a client must read
//! either; the double sends each where Google does.

use serde_json::{Value, json};

use crate::http_target::Reply;

/// The `status` Google pairs with an HTTP code.
pub(crate) fn status_name(code: u16) -> &'static str {
    match code {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ALREADY_EXISTS",
        412 => "FAILED_PRECONDITION",
        429 => "RESOURCE_EXHAUSTED",
        500 => "INTERNAL",
        503 => "UNAVAILABLE",
        _ => "UNKNOWN",
    }
}

/// A JSON reply.
pub(crate) fn json_reply(code: u16, body: &Value) -> Reply {
    Reply::status(code)
        .header("content-type", "application/json; charset=UTF-8")
        .body(body.to_string())
}

/// The legacy shape only: `{"error":{"errors":[{domain, reason,
/// message}],"code","message"}}`.
pub(crate) fn legacy(code: u16, domain: &str, reason: &str, message: &str) -> Reply {
    json_reply(
        code,
        &json!({"error": {
            "errors": [{"domain": domain, "reason": reason, "message": message}],
            "code": code,
            "message": message,
        }}),
    )
}

/// Both shapes in one body: `errors[]` (domain `global`) and `status`.
pub(crate) fn both(code: u16, reason: &str, message: &str) -> Reply {
    json_reply(
        code,
        &json!({"error": {
            "code": code,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason}],
            "status": status_name(code),
        }}),
    )
}

/// The AIP-193 shape only: `{"error":{"code","message","status"}}`.
pub(crate) fn aip(code: u16, message: &str) -> Reply {
    json_reply(
        code,
        &json!({"error": {"code": code, "message": message, "status": status_name(code)}}),
    )
}

/// `401` for a missing, unknown, expired or revoked token.
pub(crate) fn invalid_credentials() -> Reply {
    json_reply(
        401,
        &json!({"error": {
            "code": 401,
            "message": "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
            "errors": [{
                "message": "Invalid Credentials",
                "domain": "global",
                "reason": "authError",
                "location": "Authorization",
                "locationType": "header",
            }],
            "status": "UNAUTHENTICATED",
        }}),
    )
}

/// `403` for a token without any of the method's scopes.
pub(crate) fn insufficient_scopes(service: &str, method_id: &str) -> Reply {
    json_reply(
        403,
        &json!({"error": {
            "code": 403,
            "message": "Request had insufficient authentication scopes.",
            "errors": [{
                "message": "Insufficient Permission",
                "domain": "global",
                "reason": "insufficientPermissions",
            }],
            "status": "PERMISSION_DENIED",
            "details": [{
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
                "domain": "googleapis.com",
                "metadata": {"service": service, "method": method_id},
            }],
        }}),
    )
}

/// An OAuth token endpoint error: `{"error","error_description"}`.
pub(crate) fn oauth(code: u16, error: &str, description: &str) -> Reply {
    json_reply(
        code,
        &json!({"error": error, "error_description": description}),
    )
}
