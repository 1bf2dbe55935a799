//! Fuzzes config loading, what every worker does at start: interpolation,
//! TOML parsing into the legacy REST connector's real `[target]` and route
//! `action` types, env overrides and validation, then what the runtime
//! builds from the result (the route table with each action compiled, the
//! rate-limit buckets, the Pub/Sub names). A bad config must end in an error
//! naming the field (exit 64), never in a panic.

#![no_main]

use gluefleet_core::rate_limit::RateLimits;
use gluefleet_core::route::RouteTable;
use gluefleet_legacy_rest::{RawAction, Target};
use gluefleet_runtime::config::{Config, interpolate};
use libfuzzer_sys::fuzz_target;

/// A fixed environment: a secret with every character interpolation must
/// escape, a project, and an empty variable.
fn env(name: &str) -> Option<String> {
    match name {
        "LEGACY_REST_CLIENT_SECRET" | "TOKEN" => Some("s3\"c\\r\net\t${X}".to_owned()),
        "GOOGLE_CLOUD_PROJECT" => Some("fuzz-project".to_owned()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    if let Err(e) = interpolate(text, &env) {
        assert!(!e.to_string().is_empty());
    }
    let config = match Config::<Target, RawAction>::parse(text, &env) {
        Ok(c) => c,
        Err(e) => {
            assert!(!e.to_string().is_empty(), "a config error names the field");
            return;
        }
    };
    let p = &config.pubsub;
    assert!((1..=32).contains(&p.streams));
    assert!(p.concurrency >= 1);
    assert!(p.max_outstanding_messages >= 1 && p.max_outstanding_bytes >= 1024);
    assert!(config.delivery.max_delivery_attempts >= 1);
    assert!(config.delivery.retry.validate().is_ok());
    assert!(!config.routes.is_empty());
    let _ = p.subscription_path();
    let _ = p.dead_letter_topic_path();
    let _ = RateLimits::new(&config.rate_limits);
    let _ = RouteTable::build(config.routes, &config.delivery.retry, RawAction::compile);
});
