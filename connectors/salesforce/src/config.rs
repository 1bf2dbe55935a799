//! `[target]` and each route's `action` for the Salesforce connector.
//! Credentials are the core's `[auth]` (`jwt_bearer` or
//! `oauth2_client_credentials`); calls go to the token's `instance_url`.

use gluefleet_core::ConfigError;
use gluefleet_core::ConnectorError;
use gluefleet_core::batch::{BatchConfig, VendorLimits};
use gluefleet_core::config::Unknown;
use gluefleet_core::http::{Insecure, checked_url};
use gluefleet_core::mapping::Mapping;
use gluefleet_core::template::Template;
use serde::Deserialize;
use std::time::Duration;

/// sObject Collections: at most 200 records per call; a REST request body
/// may hold about 8 MiB. Every call counts against the org's daily limit,
/// so the first record waits a second for company by default.
pub const LIMITS: VendorLimits = VendorLimits {
    max_items: 200,
    max_bytes: 8 * 1024 * 1024,
    default_items: 200,
    default_linger: Duration::from_secs(1),
    default_in_flight: 2,
};

/// `[target]`. Unknown keys are refused by [`Target::validate`] (the
/// batching settings are flattened in, which rules out
/// `deny_unknown_fields`).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Target {
    /// REST API version (default `v62.0`).
    #[serde(default = "api_version")]
    pub api_version: String,
    /// Where API calls go when the token response has no `instance_url`.
    #[serde(default)]
    pub instance_url: Option<String>,
    /// Share of the daily API limit above which calls slow down (default 0.80).
    #[serde(default = "soft")]
    pub soft_limit: f64,
    /// Share above which calls stop and events wait (default 0.95).
    #[serde(default = "hard")]
    pub hard_limit: f64,
    /// Pause before each call above the soft limit (default 250 ms).
    #[serde(default = "soft_delay", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub soft_delay: Duration,
    /// How long events wait once the hard limit or `REQUEST_LIMIT_EXCEEDED`
    /// is reached before one call looks again (default 5 min).
    #[serde(default = "limit_backoff", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub limit_backoff: Duration,
    /// `max_batch`, `max_bytes`, `linger`, `max_in_flight` of the
    /// Collections calls, within [`LIMITS`] (the defaults are there too).
    #[serde(flatten)]
    pub batch: BatchConfig,
    /// Domains a token's `instance_url` may name (the host or any name below
    /// it). Default Salesforce's: [`INSTANCE_DOMAINS`]. Every call carries the
    /// token to that host, so a token endpoint naming another one is refused.
    #[serde(default = "instance_domains")]
    pub instance_domains: Vec<String>,
    /// Any other key: refused.
    #[serde(flatten)]
    #[schemars(skip)]
    pub unknown: Unknown,
}

/// Where Salesforce serves the REST API: `salesforce.com` (My Domain hosts,
/// `*.my.salesforce.com`, with their sandbox, developer and other partitions
/// below it, and the older instance hosts such as `na1.salesforce.com`),
/// `force.com` and `cloudforce.com` (older My Domain and instance hosts),
/// `salesforce.mil` (Government Cloud Plus Defense, `*.my.salesforce.mil`).
pub const INSTANCE_DOMAINS: &[&str] = &[
    "salesforce.com",
    "force.com",
    "cloudforce.com",
    "salesforce.mil",
];

fn instance_domains() -> Vec<String> {
    INSTANCE_DOMAINS.iter().map(|d| (*d).to_owned()).collect()
}

/// True when `host` is `domain` or a name below it.
fn within(host: &str, domain: &str) -> bool {
    host == domain
        || host
            .strip_suffix(domain)
            .is_some_and(|rest| rest.ends_with('.'))
}

/// Checks a token's `instance_url` against `domains` before any call goes
/// there: https (the core already refused anything else outside this
/// machine), a host within one of the domains, or this machine (the test
/// double). The error (permanent: the token says so, no retry changes it)
/// names the setting to change.
pub fn check_instance(url: &str, domains: &[String]) -> Result<(), ConnectorError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| ConnectorError::permanent(format!("instance_url {url:?}: {e}")))?;
    let host = parsed.host_str().unwrap_or_default();
    let ip = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>();
    let trusted = match ip {
        Ok(ip) => ip.is_loopback(),
        Err(_) => {
            let host = host.trim_end_matches('.').to_ascii_lowercase();
            host == "localhost" || domains.iter().any(|dom| within(&host, dom))
        }
    };
    if trusted {
        Ok(())
    } else {
        Err(ConnectorError::permanent(format!(
            "the token names instance_url {url:?}, whose host is not within target.instance_domains ({}); no call goes there, since each carries the token. If this is your org's host, add its domain",
            domains.join(", ")
        )))
    }
}

fn api_version() -> String {
    "v62.0".into()
}
fn soft() -> f64 {
    0.80
}
fn hard() -> f64 {
    0.95
}
fn soft_delay() -> Duration {
    Duration::from_millis(250)
}
fn limit_backoff() -> Duration {
    Duration::from_secs(300)
}

impl Target {
    /// Checks the settings; an error names the one at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.unknown.check("target")?;
        let v = self.api_version.strip_prefix('v').unwrap_or_default();
        if v.split('.').count() != 2
            || !v
                .split('.')
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        {
            return Err(ConfigError::setting(
                "target.api_version",
                format!("api_version {:?} is not like v62.0", self.api_version),
            ));
        }
        if !(0.0 < self.soft_limit && self.soft_limit <= self.hard_limit && self.hard_limit <= 1.0)
        {
            return Err(ConfigError::setting(
                "target.soft_limit",
                "need 0 < soft_limit <= hard_limit <= 1",
            ));
        }
        // The token travels there: https, or plain http to this machine.
        if let Some(url) = &self.instance_url {
            checked_url("target.instance_url", url, Insecure::LoopbackOnly)?;
        }
        for d in &self.instance_domains {
            let ok = !d.is_empty()
                && d.split('.').all(|label| {
                    !label.is_empty()
                        && label
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                });
            if !ok {
                return Err(ConfigError::setting(
                    "target.instance_domains",
                    format!(
                        "instance_domains: {d:?} is not a domain like \"my.salesforce.com\" (lowercase, no scheme, no wildcard: names below it are included)"
                    ),
                ));
            }
        }
        use gluefleet_core::bounds::duration_within;
        self.batch.settings(&LIMITS)?;
        duration_within(
            "target.soft_delay",
            self.soft_delay,
            Duration::ZERO..=Duration::from_secs(60),
        )?;
        // The gate closes until now + limit_backoff: bounded so the clock
        // never overflows; a day is the length of Salesforce's own window.
        duration_within(
            "target.limit_backoff",
            self.limit_backoff,
            Duration::from_secs(1)..=Duration::from_secs(24 * 3600),
        )
    }
}

/// What a route does.
#[derive(Clone, Copy, Debug, Deserialize, schemars::JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// Create or update by external id (201 created, 200/204 updated).
    Upsert,
    /// Create a record.
    Create,
    /// Update a record by its Salesforce id.
    Update,
    /// Delete a record by its Salesforce id (already gone is fine).
    Delete,
}

/// A route's `action`, as written.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAction {
    /// `upsert`, `create`, `update` or `delete`.
    pub operation: Operation,
    /// The sObject: `Account`, `Contact`, `Order__c`.
    pub sobject: String,
    /// Upsert: the external id field (`External_Id__c`).
    #[serde(default)]
    pub external_id_field: Option<String>,
    /// Upsert: template of the external id value (`{data.customerId}`).
    #[serde(default)]
    pub external_id: Option<String>,
    /// Update and delete: template of the record id (`{data.salesforceId}`).
    #[serde(default)]
    pub id: Option<String>,
    /// jq filter giving the record's fields (default: the event's data).
    #[serde(default)]
    pub fields: Option<Mapping>,
    /// Upsert: batch through sObject Collections (default true).
    #[serde(default = "yes")]
    pub batch: bool,
}

fn yes() -> bool {
    true
}

/// A checked action.
#[derive(Debug)]
pub struct Action {
    /// The operation.
    pub operation: Operation,
    /// The sObject.
    pub sobject: String,
    /// Upsert: external id field and value template.
    pub external_id: Option<(String, Template)>,
    /// Update/delete: record id template.
    pub id: Option<Template>,
    /// Field mapping.
    pub fields: Option<Mapping>,
    /// Batch upserts.
    pub batch: bool,
}

fn api_name(what: &str, name: &str) -> Result<(), ConfigError> {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ConfigError::setting(
            format!("action.{what}"),
            format!("{what} {name:?} is not a Salesforce API name"),
        ))
    }
}

impl RawAction {
    /// Checks the action.
    pub fn compile(self) -> Result<Action, ConfigError> {
        api_name("sobject", &self.sobject)?;
        let external_id = match (self.operation, self.external_id_field, self.external_id) {
            (Operation::Upsert, Some(field), Some(value)) => {
                api_name("external_id_field", &field)?;
                Some((field, Template::parse(&value)?))
            }
            (Operation::Upsert, _, _) => {
                return Err("upsert needs external_id_field and external_id".into());
            }
            (_, None, None) => None,
            _ => return Err("external_id_field and external_id belong to upsert".into()),
        };
        let id = match (self.operation, self.id) {
            (Operation::Update | Operation::Delete, Some(t)) => Some(Template::parse(&t)?),
            (Operation::Update | Operation::Delete, None) => {
                return Err("update and delete need id".into());
            }
            (_, Some(_)) => return Err("id belongs to update and delete".into()),
            (_, None) => None,
        };
        if self.operation == Operation::Delete && self.fields.is_some() {
            return Err("a delete takes no fields".into());
        }
        Ok(Action {
            operation: self.operation,
            sobject: self.sobject,
            external_id,
            id,
            fields: self.fields,
            batch: self.batch && self.operation == Operation::Upsert,
        })
    }
}

/// The `aud` Salesforce wants in a JWT bearer assertion: its login host,
/// also when signing in through a My Domain URL (`test.salesforce.com` for
/// sandboxes, `login.salesforce.com` otherwise). Any other host (a test
/// double) is its own audience. The core's JWT bearer provider knows no
/// vendor's hosts, so the connector fills this in (see
/// [`fill_auth_defaults`]) unless `[auth] audience` is set.
pub fn default_audience(login: &str) -> String {
    let login = login.trim_end_matches('/');
    let host = reqwest::Url::parse(login)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    if host == "test.salesforce.com" || host.ends_with(".sandbox.my.salesforce.com") {
        "https://test.salesforce.com".into()
    } else if host == "login.salesforce.com" || host.ends_with(".my.salesforce.com") {
        "https://login.salesforce.com".into()
    } else {
        login.to_owned()
    }
}

/// `[auth]` as Salesforce reads it: a `jwt_bearer` without `audience` gets
/// [`default_audience`] of its `login_url`; everything else is left as written.
pub fn fill_auth_defaults(auth: &mut gluefleet_core::auth::AuthConfig) {
    if let gluefleet_core::auth::AuthConfig::JwtBearer(c) = auth
        && c.audience.is_none()
    {
        c.audience = Some(default_audience(&c.login_url));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audience_follows_salesforce_rules() {
        assert_eq!(
            default_audience("https://acme.my.salesforce.com"),
            "https://login.salesforce.com"
        );
        assert_eq!(
            default_audience("https://acme--uat.sandbox.my.salesforce.com"),
            "https://test.salesforce.com"
        );
        assert_eq!(
            default_audience("https://test.salesforce.com"),
            "https://test.salesforce.com"
        );
        assert_eq!(
            default_audience("http://127.0.0.1:9000/"),
            "http://127.0.0.1:9000"
        );
    }

    #[test]
    fn a_jwt_bearer_without_audience_gets_salesforces() {
        let parse = |extra: &str| -> gluefleet_core::auth::AuthConfig {
            toml::from_str(&format!(
                "kind = \"jwt_bearer\"\nlogin_url = \"https://acme.my.salesforce.com\"\n\
                 consumer_key = \"k\"\nusername = \"u\"\nprivate_key = \"p\"\n{extra}"
            ))
            .expect("auth config")
        };
        let audience = |auth: &gluefleet_core::auth::AuthConfig| match auth {
            gluefleet_core::auth::AuthConfig::JwtBearer(c) => c.audience.clone(),
            _ => None,
        };
        let mut auth = parse("");
        fill_auth_defaults(&mut auth);
        assert_eq!(
            audience(&auth).as_deref(),
            Some("https://login.salesforce.com")
        );
        let mut auth = parse("audience = \"https://aud.example\"");
        fill_auth_defaults(&mut auth);
        assert_eq!(audience(&auth).as_deref(), Some("https://aud.example"));
    }

    fn raw(text: &str) -> Result<Action, ConfigError> {
        toml::from_str::<RawAction>(text)
            .map_err(|e| ConfigError::new(e.to_string()))?
            .compile()
    }

    #[test]
    fn actions_are_checked() {
        let up = "operation = \"upsert\"\nsobject = \"Account\"\nexternal_id_field = \"Ext__c\"\nexternal_id = \"{data.id}\"";
        assert!(raw(up).is_ok_and(|a| a.batch));
        assert!(raw("operation = \"upsert\"\nsobject = \"Account\"").is_err());
        assert!(raw("operation = \"update\"\nsobject = \"Account\"").is_err());
        assert!(raw("operation = \"create\"\nsobject = \"Acc ount\"").is_err());
        assert!(raw("operation = \"delete\"\nsobject = \"Account\"\nid = \"{data.sfid}\"").is_ok());
    }

    #[test]
    fn instance_hosts_must_be_within_the_trusted_domains() {
        let defaults = instance_domains();
        for ok in [
            "https://acme.my.salesforce.com",
            "https://acme--uat.sandbox.my.salesforce.com",
            "https://acme.develop.my.salesforce.com",
            "https://na1.salesforce.com",
            "https://ACME.My.Salesforce.com.",
            "https://acme.my.salesforce.mil",
            "http://127.0.0.1:8080",
            "http://localhost:9",
            "http://[::1]:9",
        ] {
            assert!(check_instance(ok, &defaults).is_ok(), "{ok}");
        }
        for bad in [
            "https://evil.example",
            "https://salesforce.com.evil.example",
            "https://evilsalesforce.com",
            "https://10.0.0.1",
            "https://acme.my.salesforce.com@evil.example",
        ] {
            let e = check_instance(bad, &defaults).expect_err(bad);
            assert!(e.message().contains("target.instance_domains"), "{e}");
        }
        let extra = vec!["sf.example.net".to_owned()];
        assert!(check_instance("https://api.sf.example.net", &extra).is_ok());
        assert!(check_instance("https://acme.my.salesforce.com", &extra).is_err());
    }

    #[test]
    fn instance_domains_are_checked() {
        let target = |domains: &str| {
            toml::from_str::<Target>(&format!("instance_domains = {domains}"))
                .map_err(|e| e.to_string())
                .and_then(|t| t.validate().map_err(String::from))
        };
        assert!(target(r#"["salesforce.com", "sf.example.net"]"#).is_ok());
        for bad in [
            r#"["*.salesforce.com"]"#,
            r#"["https://x.com"]"#,
            r#"[""]"#,
            r#"["Salesforce.com"]"#,
        ] {
            let e = target(bad).expect_err(bad);
            assert!(e.contains("instance_domains"), "{e}");
        }
    }

    fn target(text: &str) -> Target {
        toml::from_str(text).expect("parses")
    }

    #[test]
    fn batching_defaults_are_salesforces_and_max_bytes_is_held_to_its_cap() {
        let t = target("");
        t.validate().expect("the defaults are valid");
        let s = t.batch.settings(&LIMITS).expect("defaults");
        assert_eq!(
            (s.max_items, s.max_bytes, s.linger, s.max_in_flight),
            (200, 8 << 20, Duration::from_secs(1), 2)
        );
        let t = target("max_batch = 50\nmax_bytes = 65536\nlinger = \"2s\"\nmax_in_flight = 4");
        let s = t.batch.settings(&LIMITS).expect("valid");
        assert_eq!(
            (s.max_items, s.max_bytes, s.linger, s.max_in_flight),
            (50, 65536, Duration::from_secs(2), 4)
        );
        for (text, setting) in [
            ("max_batch = 201", "target.max_batch"),
            ("max_bytes = 9000000", "target.max_bytes"),
            ("max_in_flight = 0", "target.max_in_flight"),
            ("soft_limit = 0.99", "target.soft_limit"),
            ("api_version = \"62\"", "target.api_version"),
            (
                "instance_url = \"http://na1.salesforce.com\"",
                "target.instance_url",
            ),
        ] {
            let e = target(text).validate().expect_err(text);
            assert_eq!(e.setting_name(), Some(setting), "{text}: {e}");
        }
    }

    #[test]
    fn a_misspelt_target_key_is_refused() {
        let e = target("max_bach = 10").validate().expect_err("a typo");
        assert_eq!(e.setting_name(), Some("target.max_bach"), "{e}");
    }
}
