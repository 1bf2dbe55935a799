//! Config errors: what is wrong with a setting, named so that the message
//! alone tells the operator which line to fix.
//!
//! A config error never reaches a message's outcome: the worker refuses to
//! start (exit 64). Callers still get a type, not a `String`, so that a test
//! (or a caller that collects every problem) can ask which setting it was.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

/// A setting that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConfigError {
    setting: Option<String>,
    message: String,
}

impl ConfigError {
    /// An error about `setting` (`target.max_batch`, `routes[2].action`);
    /// `message` is the whole sentence and names the setting itself.
    pub fn setting(setting: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            setting: Some(setting.into()),
            message: message.into(),
        }
    }

    /// An error about the config as a whole (a file that does not parse).
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            setting: None,
            message: message.into(),
        }
    }

    /// The setting at fault, when there is one.
    pub fn setting_name(&self) -> Option<&str> {
        self.setting.as_deref()
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The same error with `context` in front (`routes[1]: ...`).
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }
}

impl From<String> for ConfigError {
    fn from(message: String) -> Self {
        Self::new(message)
    }
}

impl From<&str> for ConfigError {
    fn from(message: &str) -> Self {
        Self::new(message)
    }
}

impl From<ConfigError> for String {
    fn from(e: ConfigError) -> Self {
        e.message
    }
}

/// The settings of a table that no field took, for a table that has to use
/// `#[serde(flatten)]` (shared settings such as [`BatchConfig`](crate::batch::BatchConfig)
/// sit beside the vendor's own) and so cannot use `deny_unknown_fields`.
/// [`check`](Self::check) refuses them, so a typo is still an error at load.
///
/// ```
/// use gluefleet_core::config::Unknown;
/// #[derive(serde::Deserialize)]
/// struct Target {
///     base_url: String,
///     #[serde(flatten)]
///     unknown: Unknown,
/// }
/// let t: Target = serde_json::from_str(r#"{"base_url": "https://x", "max_bach": 5}"#).unwrap();
/// let e = t.unknown.check("target").unwrap_err();
/// assert_eq!(e.setting_name(), Some("target.max_bach"));
/// ```
#[derive(Debug, Default, Deserialize)]
#[serde(transparent)]
pub struct Unknown(BTreeMap<String, serde::de::IgnoredAny>);

impl Unknown {
    /// Ok when every setting of `table` was taken by a field.
    pub fn check(&self, table: &str) -> Result<(), ConfigError> {
        let Some(first) = self.0.keys().next() else {
            return Ok(());
        };
        let names: Vec<&str> = self.0.keys().map(String::as_str).collect();
        Err(ConfigError::setting(
            format!("{table}.{first}"),
            format!(
                "[{table}] has unknown setting(s) {}: check the spelling against the connector's README",
                names.join(", ")
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_setting_error_names_its_setting_and_reads_as_its_message() {
        let e = ConfigError::setting("target.linger", "target.linger is 1y: too long");
        assert_eq!(e.setting_name(), Some("target.linger"));
        assert_eq!(e.to_string(), "target.linger is 1y: too long");
        assert_eq!(
            e.context("connector").message(),
            "connector: target.linger is 1y: too long"
        );
    }

    #[test]
    fn unknown_settings_are_refused_and_known_ones_pass() {
        #[derive(Deserialize)]
        struct T {
            #[serde(default)]
            _a: u8,
            #[serde(flatten)]
            unknown: Unknown,
        }
        let ok: T = serde_json::from_str(r#"{"_a": 1}"#).expect("parses");
        assert!(ok.unknown.check("target").is_ok());
        let bad: T = serde_json::from_str(r#"{"_a": 1, "zz": 2, "lingr": "5ms"}"#).expect("parses");
        let e = bad.unknown.check("target").expect_err("refused");
        assert_eq!(e.setting_name(), Some("target.lingr"));
        assert!(e.message().contains("lingr, zz"), "{e}");
    }
}
