//! Loading a connector's config: one TOML file, `${VAR}` interpolation for
//! secrets, then env overrides for deploy-time settings.
//!
//! Precedence: the file, then `GOOGLE_CLOUD_PROJECT`, `GLUEFLEET_SUBSCRIPTION`,
//! `GLUEFLEET_DEAD_LETTER_TOPIC`, `PORT`, `PUBSUB_EMULATOR_HOST`,
//! `GLUEFLEET_PUSH_AUDIENCE`, `GLUEFLEET_PUSH_SERVICE_ACCOUNT`. Every error
//! names the field and says what is wrong; `main` exits 64 on any of them.

use crate::auth::AuthSettings;
use gluefleet_core::DeliverySettings;
use gluefleet_core::rate_limit::RateLimitConfig;
use gluefleet_core::route::RouteConfig;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;
use toml::de::{DeTable, DeValue};

/// A config problem; the text names the field (the core's type, shared by
/// every layer that reads config).
pub use gluefleet_core::ConfigError;

/// The whole config file of a connector.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(
    deny_unknown_fields,
    bound(deserialize = "T: Deserialize<'de>, A: Deserialize<'de>")
)]
pub struct Config<T, A> {
    /// `[pubsub]`: where messages come from and dead letters go.
    #[serde(default)]
    pub pubsub: PubsubSettings,
    /// `[server]`: the health port.
    #[serde(default)]
    pub server: ServerSettings,
    /// `[push]`: the `serve` mode's endpoint and its authentication.
    #[serde(default)]
    pub push: crate::push::PushSettings,
    /// `[telemetry]`: `/metrics` and the line logged per settled message.
    #[serde(default)]
    pub telemetry: TelemetrySettings,
    /// `[delivery]`: retries, idempotency, unroutable events.
    #[serde(default)]
    pub delivery: DeliverySettings,
    /// `[rate_limits.NAME]`: buckets routes can spend.
    #[serde(default)]
    pub rate_limits: BTreeMap<String, RateLimitConfig>,
    /// `[auth]`: the target's credential.
    #[serde(default)]
    pub auth: Option<AuthSettings>,
    /// `[target]`: the connector's own settings.
    pub target: T,
    /// `[[routes]]`: event type → action.
    #[serde(default)]
    pub routes: Vec<RouteConfig<A>>,
}

/// `[pubsub]`.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PubsubSettings {
    /// Project id (env `GOOGLE_CLOUD_PROJECT`).
    pub project: Option<String>,
    /// Subscription id or `projects/P/subscriptions/S` (env `GLUEFLEET_SUBSCRIPTION`).
    pub subscription: Option<String>,
    /// Dead-letter topic id or `projects/P/topics/T` (env `GLUEFLEET_DEAD_LETTER_TOPIC`).
    pub dead_letter_topic: Option<String>,
    /// `host:port` of the Pub/Sub emulator (env `PUBSUB_EMULATOR_HOST`).
    pub emulator_host: Option<String>,
    /// Streaming pulls to open (default 1; one stream carries about 10 MB/s).
    pub streams: usize,
    /// Flow control: messages held at once per stream (default 1,000).
    pub max_outstanding_messages: i64,
    /// Flow control: bytes held at once per stream (default 100 MiB).
    pub max_outstanding_bytes: i64,
    /// Messages processed at once, all streams together (default 64).
    pub concurrency: usize,
    /// How far each lease extension reaches (default 60 s, 10 s to 600 s).
    /// If the worker dies, its messages return to the subscription after at
    /// most this long.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub lease_extension: Duration,
    /// How long a delayed nack may hold a message before nacking (default
    /// 600 s, the longest subscription retry backoff).
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub max_nack_hold: Duration,
}

impl Default for PubsubSettings {
    fn default() -> Self {
        Self {
            project: None,
            subscription: None,
            dead_letter_topic: None,
            emulator_host: None,
            streams: 1,
            max_outstanding_messages: 1000,
            max_outstanding_bytes: 100 * 1024 * 1024,
            concurrency: 64,
            lease_extension: Duration::from_secs(60),
            max_nack_hold: Duration::from_secs(600),
        }
    }
}

/// The most messages one process may work on at once.
const MAX_CONCURRENCY: usize = 10_000;

/// `[server]`.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Port of `/healthz` and `/readyz` (env `PORT`, default 8080).
    pub port: u16,
}

/// `[telemetry]`.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySettings {
    /// Serve `/metrics` on the probes' port and count for it (default true).
    /// Off, nothing is counted: the bench's baseline.
    pub metrics: bool,
    /// The level of the line logged per acked message: `info` (default),
    /// `debug`, or `off`. Dead letters always log a warning, nacks an info
    /// line, failed dead-letter publishes an error.
    pub settled_log: SettledLog,
    /// An OpenTelemetry collector's OTLP/HTTP URL (`http://localhost:4318`,
    /// the Cloud Run sidecar's): each traced message's span is sent there
    /// (crate::spans). Unset, the standard `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
    /// or `OTEL_EXPORTER_OTLP_ENDPOINT` is used; with neither, no spans.
    pub otlp_endpoint: Option<String>,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            metrics: true,
            settled_log: SettledLog::Info,
            otlp_endpoint: None,
        }
    }
}

/// [`TelemetrySettings::settled_log`].
#[derive(Clone, Copy, Debug, Default, Deserialize, schemars::JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SettledLog {
    /// Not logged.
    Off,
    /// At debug level.
    Debug,
    /// At info level.
    #[default]
    Info,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self { port: 8080 }
    }
}

impl PubsubSettings {
    /// `value` as `projects/P/{kind}/NAME`: a full name is checked, a bare
    /// id gets `pubsub.project`. `field` names the setting in errors.
    fn full_name(&self, kind: &str, value: &str, field: &str) -> Result<String, ConfigError> {
        if value.starts_with("projects/") {
            let parts: Vec<&str> = value.split('/').collect();
            if parts.len() != 4 || parts[2] != kind || parts.iter().any(|p| p.is_empty()) {
                return Err(ConfigError::new(format!(
                    "{field}: {value:?} is not projects/PROJECT/{kind}/NAME"
                )));
            }
            return Ok(value.to_owned());
        }
        if value.len() < 3 || value.contains('/') {
            return Err(ConfigError::new(format!(
                "{field}: {value:?} is not a valid id (3 or more characters, no slash)"
            )));
        }
        let project = self.project.as_deref().ok_or_else(|| {
            ConfigError::new(format!(
                "pubsub.project is not set (needed for {field} {value:?}; set it or GOOGLE_CLOUD_PROJECT)"
            ))
        })?;
        Ok(format!("projects/{project}/{kind}/{value}"))
    }

    /// `projects/P/subscriptions/S` for `name` (a short name in the
    /// project, or a full path), given on the command line as `field`.
    pub fn subscription_named(&self, name: &str, field: &str) -> Result<String, ConfigError> {
        self.full_name("subscriptions", name, field)
    }

    /// `projects/P/subscriptions/S`.
    pub fn subscription_path(&self) -> Result<String, ConfigError> {
        let s = self.subscription.as_deref().ok_or_else(|| {
            ConfigError::new(
                "pubsub.subscription is not set (set it in the config or GLUEFLEET_SUBSCRIPTION)",
            )
        })?;
        self.full_name("subscriptions", s, "pubsub.subscription")
    }

    /// `projects/P/topics/T`.
    pub fn dead_letter_topic_path(&self) -> Result<String, ConfigError> {
        let t = self.dead_letter_topic.as_deref().ok_or_else(|| {
            ConfigError::new(
                "pubsub.dead_letter_topic is not set (set it or GLUEFLEET_DEAD_LETTER_TOPIC); without it a bad message could only be retried forever",
            )
        })?;
        self.full_name("topics", t, "pubsub.dead_letter_topic")
    }

    /// A route's results topic as `projects/P/topics/T`; `field` names the
    /// setting in errors (`routes[create-customer].results`).
    pub fn topic_path(&self, topic: &str, field: &str) -> Result<String, ConfigError> {
        self.full_name("topics", topic, field)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        use gluefleet_core::bounds::within;
        let checks = [
            within("pubsub.streams", self.streams, 1..=32),
            within("pubsub.concurrency", self.concurrency, 1..=MAX_CONCURRENCY),
            within(
                "pubsub.max_outstanding_messages",
                self.max_outstanding_messages,
                1..=1_000_000,
            ),
            within(
                "pubsub.max_outstanding_bytes",
                self.max_outstanding_bytes,
                1024..=64 << 30,
            ),
        ];
        for c in checks {
            c?;
        }
        if self.lease_extension < Duration::from_secs(10)
            || self.lease_extension > Duration::from_secs(600)
        {
            return Err(ConfigError::new(format!(
                "pubsub.lease_extension is {}: it must be between 10s and 600s (Pub/Sub's ack deadline limits)",
                humantime::format_duration(self.lease_extension)
            )));
        }
        if self.max_nack_hold > Duration::from_secs(3600) {
            return Err(ConfigError::new(format!(
                "pubsub.max_nack_hold is {}: at most 1h",
                humantime::format_duration(self.max_nack_hold)
            )));
        }
        Ok(())
    }
}

/// Replaces `${NAME}` in one string value with the environment variable
/// `NAME`; `$${` is a literal `${`. An unset variable is an error naming it,
/// so a missing secret stops the worker at start instead of sending an empty
/// credential. The value goes in as it is: it is never TOML text, so no
/// character of it needs escaping or can break the config.
pub fn interpolate(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        if i > 0 && rest.as_bytes()[i - 1] == b'$' {
            out.push_str(&rest[..i - 1]);
            out.push_str("${");
            rest = &rest[i + 2..];
            continue;
        }
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| ConfigError::new("config: ${ without a closing }"))?;
        let name = &after[..end];
        let value = env(name).ok_or_else(|| {
            ConfigError::new(format!(
                "config: environment variable {name} is not set (the config refers to ${{{name}}})"
            ))
        })?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A string value that interpolation changed: its text in the file and what
/// it became, so an error can name the first and never show the second.
struct Filled {
    written: String,
    value: String,
}

/// Interpolates every string value of the parsed document (not keys, not
/// comments, not other TOML text: a secret can never change the structure).
fn fill(
    value: &mut toml::Spanned<DeValue<'_>>,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    filled: &mut Vec<Filled>,
) -> Result<(), ConfigError> {
    let span = value.span();
    match value.get_mut() {
        DeValue::String(s) if s.contains("${") => {
            let out = interpolate(s, env).map_err(|e| {
                let (line, _) = line_of(text, span.start);
                ConfigError::new(format!("{} at line {line}", e.message()))
            })?;
            if out != **s {
                filled.push(Filled {
                    written: s.to_string(),
                    value: out.clone(),
                });
            }
            *s = Cow::Owned(out);
        }
        DeValue::Array(items) => {
            for item in items.iter_mut() {
                fill(item, text, env, filled)?;
            }
        }
        DeValue::Table(table) => {
            for (_, item) in table.iter_mut() {
                fill(item, text, env, filled)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// 1-based line and the line's text at byte `at`.
fn line_of(text: &str, at: usize) -> (usize, &str) {
    let at = at.min(text.len());
    let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].split('\n').next().unwrap_or_default();
    (text[..start].matches('\n').count() + 1, line)
}

/// A TOML error, shown against the file as written (with its `${NAME}`
/// references), its message cleared of every interpolated value: serde's
/// messages quote the value they refuse (`invalid type: string "..."`).
fn toml_error(mut e: toml::de::Error, text: &str, filled: &[Filled]) -> ConfigError {
    e.set_input(Some(text));
    let mut shown = e.to_string();
    for f in filled.iter().filter(|f| !f.value.is_empty()) {
        for (value, written) in [
            (format!("{:?}", f.value), format!("{:?}", f.written)),
            (format!("`{}`", f.value), format!("`{}`", f.written)),
        ] {
            shown = shown.replace(&value, &written);
        }
        // Anything else that quotes it; short values are left, as they would
        // match ordinary words of the message.
        if f.value.chars().count() >= 6 {
            shown = shown.replace(&f.value, &f.written);
        }
    }
    let hint = e
        .span()
        .map(|span| line_of(text, span.start).1)
        .filter(|line| line.contains("${") && !line.contains('"') && !line.contains('\''))
        .map_or(
            "",
            |_| "\n(${NAME} is filled in only inside a string value: write \"${NAME}\")",
        );
    ConfigError::new(format!("config: {}{hint}", shown.trim_end()))
}

/// Every variable [`Config::parse`] reads as a setting of its own (not
/// through a `${NAME}` reference): `lint` never stands in for these.
pub const ENV_SETTINGS: [&str; 7] = [
    "GOOGLE_CLOUD_PROJECT",
    "GLUEFLEET_SUBSCRIPTION",
    "GLUEFLEET_DEAD_LETTER_TOPIC",
    "PUBSUB_EMULATOR_HOST",
    "GLUEFLEET_PUSH_AUDIENCE",
    "GLUEFLEET_PUSH_SERVICE_ACCOUNT",
    "PORT",
];

impl<T: DeserializeOwned, A: DeserializeOwned> Config<T, A> {
    /// Parses `text` (after interpolation) and applies env overrides.
    pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        // Parse first, then fill in string values: the parser and its errors
        // only ever see the file as written, never a secret.
        let mut root = DeTable::parse(text).map_err(|e| toml_error(e, text, &[]))?;
        let mut filled = Vec::new();
        for (_, value) in root.get_mut().iter_mut() {
            fill(value, text, env, &mut filled)?;
        }
        let mut config = Self::deserialize(toml::de::Deserializer::from(root))
            .map_err(|e| toml_error(e, text, &filled))?;
        let p = &mut config.pubsub;
        // Keep in step with ENV_SETTINGS.
        for (var, slot) in [
            ("GOOGLE_CLOUD_PROJECT", &mut p.project),
            ("GLUEFLEET_SUBSCRIPTION", &mut p.subscription),
            ("GLUEFLEET_DEAD_LETTER_TOPIC", &mut p.dead_letter_topic),
            ("PUBSUB_EMULATOR_HOST", &mut p.emulator_host),
            // Deploy-time facts of push mode: Terraform and the manifests
            // know the audience and the push account; the config need not.
            ("GLUEFLEET_PUSH_AUDIENCE", &mut config.push.audience),
            (
                "GLUEFLEET_PUSH_SERVICE_ACCOUNT",
                &mut config.push.service_account,
            ),
        ] {
            if let Some(v) = env(var).filter(|v| !v.is_empty()) {
                *slot = Some(v);
            }
        }
        if let Some(port) = env("PORT").filter(|v| !v.is_empty()) {
            config.server.port = port
                .parse()
                .map_err(|_| ConfigError::new(format!("PORT: {port:?} is not a port number")))?;
        }
        config.pubsub.validate()?;
        config
            .delivery
            .retry
            .validate()
            .map_err(|e| ConfigError::new(format!("delivery.retry: {e}")))?;
        let idem = &config.delivery.idempotency;
        if idem.lease > Duration::from_secs(24 * 3600)
            || idem.ttl > Duration::from_secs(400 * 24 * 3600)
        {
            return Err(ConfigError::new(
                "delivery.idempotency: lease must be at most 24h and ttl at most 400 days",
            ));
        }
        gluefleet_core::bounds::within(
            "delivery.max_event_bytes",
            config.delivery.max_event_bytes,
            1024..=gluefleet_core::bounds::PUBSUB_MAX_MESSAGE_BYTES,
        )?;
        // Pub/Sub's own dead-letter policy counts at most 100 attempts.
        gluefleet_core::bounds::within(
            "delivery.max_delivery_attempts",
            config.delivery.max_delivery_attempts,
            1..=100,
        )?;
        if config.routes.is_empty() {
            return Err(ConfigError::new(
                "routes: no [[routes]] configured; nothing would be delivered",
            ));
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Target {
        base_url: String,
        token: String,
    }

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const BASE: &str = r#"
        [pubsub]
        project = "p1"
        subscription = "orders-sub"
        [target]
        base_url = "https://erp.example"
        token = "${ERP_TOKEN}"
        [[routes]]
        type = "order.*"
        action = {}
    "#;

    #[test]
    fn durations_out_of_range_are_refused_naming_the_setting() {
        let with = |extra: &str, section: &str| {
            let text = BASE.replacen(section, &format!("{section}\n{extra}"), 1);
            Config::<Target, toml::Value>::parse(&text, &env(&[("ERP_TOKEN", "t")])).err()
        };
        let e = with("lease_extension = \"5s\"", "[pubsub]").expect("5 s refused");
        assert!(e.message().contains("pubsub.lease_extension"), "{e}");
        let e = with("lease_extension = \"11m\"", "[pubsub]").expect("11 min refused");
        assert!(e.message().contains("pubsub.lease_extension"), "{e}");
        assert!(with("lease_extension = \"10m\"", "[pubsub]").is_none());
        let e = with("max_nack_hold = \"2h\"", "[pubsub]").expect("2 h refused");
        assert!(e.message().contains("pubsub.max_nack_hold"), "{e}");
        let text = format!("{BASE}\n[delivery.retry]\nbudget = \"300000000000y\"\n");
        let e = Config::<Target, toml::Value>::parse(&text, &env(&[("ERP_TOKEN", "t")]))
            .expect_err("a budget of ages refused");
        assert!(
            e.message().contains("delivery.retry") && e.message().contains("budget"),
            "{e}"
        );
        let text = format!("{BASE}\n[delivery.idempotency]\nlease = \"2d\"\n");
        let e = Config::<Target, toml::Value>::parse(&text, &env(&[("ERP_TOKEN", "t")]))
            .expect_err("a 2-day lease refused");
        assert!(e.message().contains("delivery.idempotency"), "{e}");
    }

    #[test]
    fn interpolates_and_overrides() -> Result<(), ConfigError> {
        let c: Config<Target, toml::Value> = Config::parse(
            BASE,
            &env(&[
                ("ERP_TOKEN", "t\"k"),
                ("GLUEFLEET_SUBSCRIPTION", "projects/p2/subscriptions/s9"),
                ("PORT", "9090"),
                ("GLUEFLEET_PUSH_AUDIENCE", "https://push.example/gluefleet"),
                (
                    "GLUEFLEET_PUSH_SERVICE_ACCOUNT",
                    "push@p2.iam.gserviceaccount.com",
                ),
            ]),
        )?;
        assert_eq!(
            c.push.audience.as_deref(),
            Some("https://push.example/gluefleet")
        );
        assert_eq!(
            c.push.service_account.as_deref(),
            Some("push@p2.iam.gserviceaccount.com")
        );
        assert_eq!(c.target.token, "t\"k");
        assert_eq!(c.target.base_url, "https://erp.example");
        assert_eq!(
            c.pubsub.subscription_path()?,
            "projects/p2/subscriptions/s9"
        );
        assert_eq!(c.server.port, 9090);
        assert_eq!(c.pubsub.streams, 1);
        Ok(())
    }

    #[test]
    fn errors_name_the_field() {
        let e = |text: &str, vars: &[(&str, &str)]| {
            Config::<Target, toml::Value>::parse(text, &env(vars))
                .expect_err("invalid")
                .to_string()
        };
        assert!(e(BASE, &[]).contains("ERP_TOKEN"));
        let typo = BASE.replace("[pubsub]", "[pubsub]\nstreems = 2");
        assert!(e(&typo, &[("ERP_TOKEN", "x")]).contains("streems"));
        let bad = BASE.replace("[pubsub]", "[pubsub]\nstreams = 0");
        assert!(e(&bad, &[("ERP_TOKEN", "x")]).contains("pubsub.streams"));
        let no_routes = BASE
            .split("[[routes]]")
            .next()
            .unwrap_or_default()
            .to_owned();
        assert!(e(&no_routes, &[("ERP_TOKEN", "x")]).contains("routes"));
        assert!(e(BASE, &[("ERP_TOKEN", "x"), ("PORT", "http")]).contains("PORT"));
    }

    #[test]
    fn names_resolve_against_the_project() -> Result<(), ConfigError> {
        let mut p = PubsubSettings {
            project: Some("p".into()),
            subscription: Some("sub".into()),
            ..Default::default()
        };
        assert_eq!(p.subscription_path()?, "projects/p/subscriptions/sub");
        p.dead_letter_topic = Some("projects/p/subscriptions/x".into());
        assert!(p.dead_letter_topic_path().is_err());
        p.dead_letter_topic = None;
        assert!(
            p.dead_letter_topic_path()
                .expect_err("unset")
                .to_string()
                .contains("GLUEFLEET_DEAD_LETTER_TOPIC")
        );
        Ok(())
    }

    #[test]
    fn dollar_escape_comments_and_newlines() -> Result<(), ConfigError> {
        assert_eq!(interpolate("a $${X} b", &env(&[]))?, "a ${X} b");
        assert_eq!(interpolate("${V}", &env(&[("V", "a\nb\"c")]))?, "a\nb\"c");
        // Comments are never filled in, on their own line or after a value.
        let text = BASE
            .replace("[pubsub]", "# set ${UNSET} first\n        [pubsub]")
            .replace("\"${ERP_TOKEN}\"", "\"${ERP_TOKEN}\" # or ${ALSO_UNSET}");
        let c = Config::<Target, toml::Value>::parse(&text, &env(&[("ERP_TOKEN", "t")]))?;
        assert_eq!(c.target.token, "t");
        // Every string form is filled in, with the value exactly as set.
        let value = "a\\b\n'\"c";
        for written in [
            "'${ERP_TOKEN}'",
            r#""""${ERP_TOKEN}""""#,
            "'''${ERP_TOKEN}'''",
        ] {
            let text = BASE.replace("\"${ERP_TOKEN}\"", written);
            let c = Config::<Target, toml::Value>::parse(&text, &env(&[("ERP_TOKEN", value)]))?;
            assert_eq!(c.target.token, value, "{written}");
        }
        Ok(())
    }

    const SECRET: &str = "hunter2-\u{1}-s3cr3t";

    #[test]
    fn a_secret_with_a_control_character_is_carried_exactly() -> Result<(), ConfigError> {
        // A TOML basic string cannot hold U+0001 as it is; the value is
        // never TOML text, so it needs no escaping.
        let c = Config::<Target, toml::Value>::parse(BASE, &env(&[("ERP_TOKEN", SECRET)]))?;
        assert_eq!(c.target.token, SECRET);
        Ok(())
    }

    #[test]
    fn errors_show_the_reference_never_the_secret() {
        let refused = |text: &str| {
            Config::<Target, toml::Value>::parse(
                text,
                &env(&[("ERP_TOKEN", SECRET), ("PORT_SECRET", "hunter2-port")]),
            )
            .expect_err("a broken config")
            .to_string()
        };
        // A stray comma after the reference: a TOML syntax error on its line.
        let e = refused(&BASE.replace("\"${ERP_TOKEN}\"", "\"${ERP_TOKEN}\","));
        assert!(
            e.contains("line 7") && e.contains("token = \"${ERP_TOKEN}\","),
            "{e}"
        );
        assert!(!e.contains("hunter2"), "{e}");
        // A secret where the type is wrong: serde quotes the value it refuses.
        let e = refused(&BASE.replace(
            "[pubsub]",
            "[server]\n        port = \"${PORT_SECRET}\"\n        [pubsub]",
        ));
        assert!(
            e.contains("${PORT_SECRET}") && !e.contains("hunter2"),
            "{e}"
        );
        let e = refused(&BASE.replace(
            "base_url = \"https://erp.example\"",
            "base_url = [\"${ERP_TOKEN}\"]",
        ));
        assert!(e.contains("base_url") && !e.contains("hunter2"), "{e}");
        // A reference outside a string is TOML text, never filled in.
        let e = refused(&BASE.replace("[pubsub]", "[pubsub]\n        streams = ${ERP_TOKEN}"));
        assert!(
            e.contains("streams = ${ERP_TOKEN}") && e.contains("inside a string"),
            "{e}"
        );
        assert!(!e.contains("hunter2"), "{e}");
        // An unset variable is named, with its line.
        let e = Config::<Target, toml::Value>::parse(BASE, &env(&[]))
            .expect_err("unset")
            .to_string();
        assert!(
            e.contains("ERP_TOKEN is not set") && e.contains("line 7"),
            "{e}"
        );
    }
}
