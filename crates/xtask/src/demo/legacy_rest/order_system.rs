//! The pretend legacy order system the worker delivers to: a local
//! [`HttpTarget`] with a few rules, behaving as such systems do.
//!
//! - `POST /erp/orders/{id}` creates an order, `POST /erp/orders/{id}/payments`
//!   records a payment; both answer `201 {"ok":true}`.
//! - An order whose `total` is not a number is refused: `400`.
//! - The first call for order A-1003 finds the system busy: `503`.
//! - It remembers the `Idempotency-Key` of every call it applied, and answers
//!   a repeat with `409 Conflict` instead of applying it twice.

use gluefleet_testkit::TestkitError;
use gluefleet_testkit::http_target::{HttpTarget, LoggedRequest, Reply};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Where the system's API lives below its address: the worker's `base_url`
/// ends with it, and every path the system sees starts with it.
pub(crate) const BASE_PATH: &str = "/erp";

/// The order a `POST /erp/orders/{id}` creates, if `request` is one.
fn created_order(request: &LoggedRequest) -> Option<&str> {
    let id = request
        .path
        .strip_prefix(BASE_PATH)?
        .strip_prefix("/orders/")?;
    (request.method == "POST" && !id.is_empty() && !id.contains(['/', '?'])).then_some(id)
}

/// Starts the order system on a free port of 127.0.0.1.
pub(crate) async fn start() -> Result<HttpTarget, TestkitError> {
    let target = HttpTarget::start().await?;
    let applied: Arc<Mutex<HashSet<String>>> = Arc::default();

    // Rules are consulted in the order added; the first answer wins.
    // 1. A key it already applied: say so rather than do it again.
    let seen = applied.clone();
    target.rule(move |request| {
        let key = request.idempotency_key()?;
        let seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.contains(key)
            .then(|| Reply::status(409).body(r#"{"error":"already applied"}"#))
    });

    // 2. Validation: an order's total must be a number.
    target.rule(|request| {
        created_order(request)?;
        let total_is_number = request
            .json()
            .and_then(|body| body.get("total").map(serde_json::Value::is_number))
            .unwrap_or(false);
        (!total_is_number).then(|| Reply::status(400).body(r#"{"error":"total must be a number"}"#))
    });

    // 3. Busy once: the first call for A-1003 gets a 503, later ones go through.
    let busy = AtomicBool::new(true);
    target.rule(move |request| {
        (created_order(request) == Some("A-1003") && busy.swap(false, Ordering::SeqCst))
            .then(|| Reply::status(503).body(r#"{"error":"order service busy, try again"}"#))
    });

    // 4. Apply it and remember the key. Two calls racing with one key: only
    //    the first to get here applies.
    target.rule(move |request| {
        let key = request.idempotency_key()?;
        let fresh = applied
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.to_owned());
        Some(if fresh {
            Reply::status(201).body(r#"{"ok":true}"#)
        } else {
            Reply::status(409).body(r#"{"error":"already applied"}"#)
        })
    });
    // Calls without an Idempotency-Key fall through to the default 201; the
    // report flags them.
    Ok(target)
}
