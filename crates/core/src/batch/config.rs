//! The batching settings every batching connector reads from `[target]`,
//! each held to its vendor's limits.
//!
//! One type, so the four settings mean the same in every connector and are
//! checked the same way; the vendor supplies its caps and its defaults
//! ([`VendorLimits`]), the operator may lower them.

use super::BatchSettings;
use crate::bounds;
use crate::config::ConfigError;
use serde::Deserialize;
use std::time::Duration;

/// What a vendor allows in one batch request, and the defaults that suit it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VendorLimits {
    /// The vendor's cap on items per request (Firestore 500, Salesforce
    /// Collections 200, ...); also the highest `max_batch` accepted.
    pub max_items: usize,
    /// The vendor's cap on one request's body, less room for the envelope;
    /// also the highest `max_bytes` accepted.
    pub max_bytes: usize,
    /// `max_batch` when unset.
    pub default_items: usize,
    /// `linger` when unset.
    pub default_linger: Duration,
    /// `max_in_flight` when unset.
    pub default_in_flight: usize,
}

/// The smallest `max_bytes` accepted: below this no real write fits.
pub const MIN_BATCH_BYTES: usize = 1024;

/// The batching settings as written under `[target]`, flattened beside the
/// connector's own (so the TOML stays `[target] max_batch = 100`):
///
/// | setting | meaning | default | range |
/// |---|---|---|---|
/// | `max_batch` | most items per request | the vendor's | 1 to the vendor's cap |
/// | `max_bytes` | most body bytes per request | the vendor's cap | 1 KiB to the vendor's cap |
/// | `linger` | how long the first item waits for company | the vendor's | 0 to 10 s |
/// | `max_in_flight` | batch requests out at once | the vendor's | 1 to 64 |
///
/// ```
/// use gluefleet_core::batch::{BatchConfig, VendorLimits};
/// use std::time::Duration;
/// const LIMITS: VendorLimits = VendorLimits {
///     max_items: 500, max_bytes: 9 << 20,
///     default_items: 500, default_linger: Duration::from_millis(5), default_in_flight: 2,
/// };
/// let written: BatchConfig = serde_json::from_str(r#"{"max_batch": 50}"#).unwrap();
/// let settings = written.settings(&LIMITS).unwrap();
/// assert_eq!((settings.max_items, settings.max_bytes, settings.max_in_flight), (50, 9 << 20, 2));
/// let too_many: BatchConfig = serde_json::from_str(r#"{"max_batch": 501}"#).unwrap();
/// assert!(too_many.settings(&LIMITS).is_err());
/// ```
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema, PartialEq, Eq)]
pub struct BatchConfig {
    /// Most items per request.
    #[serde(default)]
    pub max_batch: Option<usize>,
    /// Most body bytes per request.
    #[serde(default)]
    pub max_bytes: Option<usize>,
    /// How long the first item of a batch waits for company.
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub linger: Option<Duration>,
    /// Batch requests out at once.
    #[serde(default)]
    pub max_in_flight: Option<usize>,
}

impl BatchConfig {
    /// The settings with the vendor's defaults filled in, each checked
    /// against its range; an error names the setting, its value and range.
    pub fn settings(&self, limits: &VendorLimits) -> Result<BatchSettings, ConfigError> {
        let max_items = self.max_batch.unwrap_or(limits.default_items);
        let max_bytes = self.max_bytes.unwrap_or(limits.max_bytes);
        let linger = self.linger.unwrap_or(limits.default_linger);
        let max_in_flight = self.max_in_flight.unwrap_or(limits.default_in_flight);
        bounds::within("target.max_batch", max_items, 1..=limits.max_items)?;
        bounds::within(
            "target.max_bytes",
            max_bytes,
            MIN_BATCH_BYTES.min(limits.max_bytes)..=limits.max_bytes,
        )?;
        bounds::duration_within("target.linger", linger, Duration::ZERO..=bounds::MAX_LINGER)?;
        bounds::within("target.max_in_flight", max_in_flight, 1..=64)?;
        Ok(BatchSettings {
            max_items,
            max_bytes,
            linger,
            max_in_flight,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: VendorLimits = VendorLimits {
        max_items: 200,
        max_bytes: 8 << 20,
        default_items: 200,
        default_linger: Duration::from_secs(1),
        default_in_flight: 2,
    };

    fn parse(json: &str) -> BatchConfig {
        serde_json::from_str(json).expect("parses")
    }

    #[test]
    fn unset_settings_take_the_vendors_defaults() {
        let s = BatchConfig::default().settings(&LIMITS).expect("valid");
        assert_eq!(s.max_items, 200);
        assert_eq!(s.max_bytes, 8 << 20);
        assert_eq!(s.linger, Duration::from_secs(1));
        assert_eq!(s.max_in_flight, 2);
    }

    #[test]
    fn written_settings_win_and_durations_read_as_the_config_writes_them() {
        let s =
            parse(r#"{"max_batch": 10, "max_bytes": 4096, "linger": "20ms", "max_in_flight": 4}"#)
                .settings(&LIMITS)
                .expect("valid");
        assert_eq!(
            (s.max_items, s.max_bytes, s.linger, s.max_in_flight),
            (10, 4096, Duration::from_millis(20), 4)
        );
    }

    #[test]
    fn each_setting_is_held_to_its_range_and_named() {
        for (json, setting) in [
            (r#"{"max_batch": 201}"#, "target.max_batch"),
            (r#"{"max_batch": 0}"#, "target.max_batch"),
            (r#"{"max_bytes": 9000000}"#, "target.max_bytes"),
            (r#"{"max_bytes": 10}"#, "target.max_bytes"),
            (r#"{"linger": "11s"}"#, "target.linger"),
            (r#"{"max_in_flight": 0}"#, "target.max_in_flight"),
            (r#"{"max_in_flight": 65}"#, "target.max_in_flight"),
        ] {
            let e = parse(json).settings(&LIMITS).expect_err(json);
            assert_eq!(e.setting_name(), Some(setting), "{json}: {e}");
        }
    }
}
