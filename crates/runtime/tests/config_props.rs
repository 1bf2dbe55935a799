//! Property tests of config loading, which stops a worker at start on any
//! mistake: whatever text and environment it is given, `Config::parse` and
//! `interpolate` must answer with a config or an error (never panic); a
//! generated valid config must load to exactly the values written, with the
//! documented defaults and env overrides; and every value that validation
//! refuses must be refused with an error naming the field.

use gluefleet_core::pipeline::{DeliverySettings, IdempotencySettings, Unroutable};
use gluefleet_core::rate_limit::RateLimitConfig;
use gluefleet_core::retry::{RetryOverrides, RetrySettings};
use gluefleet_core::route::{RouteTable, TypePattern};
use gluefleet_core::template::Template;
use gluefleet_runtime::config::{Config, ConfigError, PubsubSettings, interpolate};
use proptest::collection::{btree_map, vec};
use proptest::option::of;
use proptest::prelude::*;
use proptest::sample::select;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// A connector's `[target]`, as small as the tests need.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Target {
    base_url: String,
    token: String,
}

/// A connector's route `action`.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Action {
    path: String,
    #[serde(default)]
    method: Option<String>,
}

type TestConfig = Config<Target, Action>;

type Env = BTreeMap<String, String>;

fn parse(text: &str, env: &Env) -> Result<TestConfig, ConfigError> {
    TestConfig::parse(text, &|k| env.get(k).cloned())
}

/// A TOML string literal holding `s`, with `${` written `$${` so that
/// interpolation leaves it alone.
fn quoted(s: &str) -> String {
    toml::Value::String(s.to_owned())
        .to_string()
        .replace("${", "$${")
}

/// A duration as an operator would write it: `250ms`, `45s`, `2m`, `1m 30s`.
fn written(d: Duration) -> String {
    let ms = d.as_millis();
    let s = d.as_secs();
    let text = if !ms.is_multiple_of(1000) {
        format!("{ms}ms")
    } else if s >= 60 && s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else if s > 60 {
        format!("{}m {}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    };
    quoted(&text)
}

fn millis(range: std::ops::RangeInclusive<u64>) -> impl Strategy<Value = Duration> {
    range.prop_map(Duration::from_millis)
}

fn secs(range: std::ops::RangeInclusive<u64>) -> impl Strategy<Value = Duration> {
    range.prop_map(Duration::from_secs)
}

/// `[delivery.retry]` or a route's `retry`: every key optional. Backoffs are
/// drawn so that any mix with the defaults (200 ms, 10 s) stays ordered.
#[derive(Clone, Debug)]
struct RetryGen {
    max_attempts: Option<u32>,
    initial_backoff: Option<Duration>,
    max_backoff: Option<Duration>,
    budget: Option<Duration>,
    max_retry_after: Option<Duration>,
}

impl RetryGen {
    fn overrides(&self) -> RetryOverrides {
        RetryOverrides {
            max_attempts: self.max_attempts,
            initial_backoff: self.initial_backoff,
            max_backoff: self.max_backoff,
            budget: self.budget,
            max_retry_after: self.max_retry_after,
        }
    }

    fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(n) = self.max_attempts {
            out.push(("max_attempts", n.to_string()));
        }
        for (key, d) in [
            ("initial_backoff", self.initial_backoff),
            ("max_backoff", self.max_backoff),
            ("budget", self.budget),
            ("max_retry_after", self.max_retry_after),
        ] {
            if let Some(d) = d {
                out.push((key, written(d)));
            }
        }
        out
    }
}

fn retry_gen() -> impl Strategy<Value = RetryGen> {
    (
        of(1_u32..=20),
        of(millis(1..=5_000)),
        of(millis(10_000..=120_000)),
        of(millis(1_000..=300_000)),
        of(secs(1..=600)),
    )
        .prop_map(
            |(max_attempts, initial_backoff, max_backoff, budget, max_retry_after)| RetryGen {
                max_attempts,
                initial_backoff,
                max_backoff,
                budget,
                max_retry_after,
            },
        )
}

#[derive(Clone, Debug)]
struct RouteGen {
    name: Option<String>,
    event_type: String,
    timeout: Option<Duration>,
    retry: Option<RetryGen>,
    /// Index into the config's buckets (modulo their number), and a key.
    rate_limit: Option<(usize, Option<String>)>,
    idempotency_key: Option<String>,
    path: String,
    method: Option<String>,
}

fn route_gen() -> impl Strategy<Value = RouteGen> {
    (
        of("\\PC{1,20}"),
        ("[a-z]{1,10}", of("[a-z]{1,10}")),
        of(millis(1..=120_000)),
        of(retry_gen()),
        of((
            any::<usize>(),
            of(select(&["{data.tenant}", "{source}"][..])),
        )),
        of(select(&["data.orderId", "id", "attributes.key"][..])),
        (
            "/[a-z]{1,8}(/\\{data\\.[a-z]{1,6}\\})?",
            of(select(&["PUT", "POST", "patch"][..])),
        ),
    )
        .prop_map(
            |(
                name,
                (domain, verb),
                timeout,
                retry,
                rate_limit,
                idempotency_key,
                (path, method),
            )| {
                RouteGen {
                    name,
                    // Made unique per route by `config_gen`.
                    event_type: match verb {
                        Some(v) => format!("{domain}.{v}"),
                        None => format!("{domain}.*"),
                    },
                    timeout,
                    retry,
                    rate_limit: rate_limit.map(|(i, k)| (i, k.map(str::to_owned))),
                    idempotency_key: idempotency_key.map(str::to_owned),
                    path,
                    method: method.map(str::to_owned),
                }
            },
        )
}

/// One generated config: `None` means the key is left out of the file.
#[derive(Clone, Debug)]
struct ConfigGen {
    project: Option<String>,
    subscription: Option<String>,
    dead_letter_topic: Option<String>,
    emulator_host: Option<String>,
    streams: Option<usize>,
    max_outstanding_messages: Option<i64>,
    max_outstanding_bytes: Option<i64>,
    concurrency: Option<usize>,
    lease_extension: Option<Duration>,
    max_nack_hold: Option<Duration>,
    port: Option<u16>,
    unroutable: Option<Unroutable>,
    max_delivery_attempts: Option<u32>,
    retry: RetryGen,
    idempotency: (Option<bool>, Option<Duration>, Option<Duration>),
    rate_limits: BTreeMap<String, RateLimitConfig>,
    routes: Vec<RouteGen>,
    base_url: String,
    /// The value of `ERP_TOKEN`, which `[target] token` interpolates.
    token: String,
    /// The env overrides, when set (an empty value counts as unset).
    env: BTreeMap<&'static str, String>,
}

/// A value an env var may hold: anything but control characters, plus
/// quotes, backslashes, newlines, tabs and `${`.
const SECRET: &str = "(\\PC|[\\n\\r\\t\"\\\\]|\\$\\{){0,40}";

fn pubsub_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{2,20}",
        "projects/[a-z][a-z0-9-]{2,10}/subscriptions/[a-z][a-z0-9-]{2,10}",
    ]
}

fn config_gen() -> impl Strategy<Value = ConfigGen> {
    let pubsub = (
        of("[a-z][a-z0-9-]{5,20}"),
        of(pubsub_name()),
        of("[a-z][a-z0-9-]{2,20}"),
        of("localhost:[0-9]{4,5}"),
        of(1_usize..=32),
        of(1_i64..=1_000_000),
        of(1024_i64..=1 << 34),
        of(1_usize..=4096),
        of(secs(10..=600)),
        of(secs(1..=3600)),
    );
    let delivery = (
        of(any::<u16>()),
        of(select(&[Unroutable::DeadLetter, Unroutable::Drop][..])),
        of(1_u32..=100),
        retry_gen(),
        (
            of(any::<bool>()),
            of(secs(1..=3600)),
            of(secs(1..=7 * 24 * 3600)),
        ),
    );
    let limit =
        (1_u32..=10_000, of(secs(1..=3600)), of(1_u32..=100)).prop_map(|(requests, per, burst)| {
            RateLimitConfig {
                requests,
                per: per.unwrap_or(Duration::from_secs(1)),
                burst,
            }
        });
    let rest = (
        btree_map("[a-z][a-z0-9_]{0,7}", limit, 0..4),
        vec(route_gen(), 1..6),
        "https://[a-z]{1,10}\\.example(/[a-z]{1,8})?",
        SECRET,
        btree_map(
            select(
                &[
                    "GOOGLE_CLOUD_PROJECT",
                    "GLUEFLEET_SUBSCRIPTION",
                    "GLUEFLEET_DEAD_LETTER_TOPIC",
                    "PUBSUB_EMULATOR_HOST",
                    "PORT",
                ][..],
            ),
            prop_oneof![Just(String::new()), "[a-z][a-z0-9-]{2,12}"],
            0..5,
        ),
        any::<u16>(),
    );
    (pubsub, delivery, rest).prop_map(
        |(
            (project, subscription, dlt, emulator, streams, mom, mob, conc, lease, hold),
            (port, unroutable, mda, retry, idempotency),
            (rate_limits, mut routes, base_url, token, mut env, env_port),
        )| {
            for (i, r) in routes.iter_mut().enumerate() {
                // Unique patterns: a config with two equal ones is refused later.
                r.event_type = format!("r{i}{}", r.event_type);
            }
            if env.get("PORT").is_some_and(|p| !p.is_empty()) {
                env.insert("PORT", env_port.to_string());
            }
            ConfigGen {
                project,
                subscription,
                dead_letter_topic: dlt,
                emulator_host: emulator,
                streams,
                max_outstanding_messages: mom,
                max_outstanding_bytes: mob,
                concurrency: conc,
                lease_extension: lease,
                max_nack_hold: hold,
                port,
                unroutable,
                max_delivery_attempts: mda,
                retry,
                idempotency,
                rate_limits,
                routes,
                base_url,
                token,
                env,
            }
        },
    )
}

fn section(out: &mut String, header: &str, pairs: &[(&str, String)]) {
    let _ = writeln!(out, "{header}");
    for (k, v) in pairs {
        let _ = writeln!(out, "{k} = {v}");
    }
    out.push('\n');
}

fn inline(pairs: &[(&str, String)]) -> String {
    let items: Vec<String> = pairs.iter().map(|(k, v)| format!("{k} = {v}")).collect();
    format!("{{ {} }}", items.join(", "))
}

impl ConfigGen {
    fn bucket(&self, index: usize) -> Option<&String> {
        let n = self.rate_limits.len();
        (n > 0).then(|| self.rate_limits.keys().nth(index % n))?
    }

    fn render(&self) -> String {
        let mut out = String::from("# generated by config_props\n");
        let mut pubsub = Vec::new();
        for (k, v) in [
            ("project", &self.project),
            ("subscription", &self.subscription),
            ("dead_letter_topic", &self.dead_letter_topic),
            ("emulator_host", &self.emulator_host),
        ] {
            if let Some(v) = v {
                pubsub.push((k, quoted(v)));
            }
        }
        let numbers = [
            ("streams", self.streams.map(|n| n.to_string())),
            (
                "max_outstanding_messages",
                self.max_outstanding_messages.map(|n| n.to_string()),
            ),
            (
                "max_outstanding_bytes",
                self.max_outstanding_bytes.map(|n| n.to_string()),
            ),
            ("concurrency", self.concurrency.map(|n| n.to_string())),
            ("lease_extension", self.lease_extension.map(written)),
            ("max_nack_hold", self.max_nack_hold.map(written)),
        ];
        pubsub.extend(numbers.into_iter().filter_map(|(k, v)| Some((k, v?))));
        section(&mut out, "[pubsub]", &pubsub);
        if let Some(port) = self.port {
            section(&mut out, "[server]", &[("port", port.to_string())]);
        }
        let mut delivery = Vec::new();
        if let Some(u) = self.unroutable {
            let text = match u {
                Unroutable::DeadLetter => "dead-letter",
                Unroutable::Drop => "drop",
            };
            delivery.push(("unroutable", quoted(text)));
        }
        if let Some(n) = self.max_delivery_attempts {
            delivery.push(("max_delivery_attempts", n.to_string()));
        }
        section(&mut out, "[delivery]", &delivery);
        section(&mut out, "[delivery.retry]", &self.retry.pairs());
        let (enabled, lease, ttl) = self.idempotency;
        let mut idem = Vec::new();
        if let Some(e) = enabled {
            idem.push(("enabled", e.to_string()));
        }
        idem.extend(lease.map(|d| ("lease", written(d))));
        idem.extend(ttl.map(|d| ("ttl", written(d))));
        section(&mut out, "[delivery.idempotency]", &idem);
        for (name, l) in &self.rate_limits {
            let mut pairs = vec![("requests", l.requests.to_string())];
            if l.per != Duration::from_secs(1) {
                pairs.push(("per", written(l.per)));
            }
            pairs.extend(l.burst.map(|b| ("burst", b.to_string())));
            section(&mut out, &format!("[rate_limits.{name}]"), &pairs);
        }
        section(
            &mut out,
            "[target]",
            &[
                ("base_url", quoted(&self.base_url)),
                ("token", "\"${ERP_TOKEN}\"".to_owned()),
            ],
        );
        for r in &self.routes {
            let mut pairs = Vec::new();
            pairs.extend(r.name.as_deref().map(|n| ("name", quoted(n))));
            pairs.push(("type", quoted(&r.event_type)));
            pairs.extend(r.timeout.map(|d| ("timeout", written(d))));
            if let Some(retry) = &r.retry {
                pairs.push(("retry", inline(&retry.pairs())));
            }
            if let Some((i, key)) = &r.rate_limit
                && let Some(bucket) = self.bucket(*i)
            {
                let mut rl = vec![("bucket", quoted(bucket))];
                rl.extend(key.as_deref().map(|k| ("key", quoted(k))));
                pairs.push(("rate_limit", inline(&rl)));
            }
            pairs.extend(
                r.idempotency_key
                    .as_deref()
                    .map(|k| ("idempotency_key", quoted(k))),
            );
            let mut action = vec![("path", quoted(&r.path))];
            action.extend(r.method.as_deref().map(|m| ("method", quoted(m))));
            pairs.push(("action", inline(&action)));
            section(&mut out, "[[routes]]", &pairs);
        }
        out
    }

    fn env(&self) -> Env {
        let mut env: Env = self
            .env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        env.insert("ERP_TOKEN".into(), self.token.clone());
        env
    }

    /// The env override of `var`, if set and not empty.
    fn env_override(&self, var: &str) -> Option<String> {
        self.env.get(var).filter(|v| !v.is_empty()).cloned()
    }

    fn expected_pubsub(&self) -> PubsubSettings {
        let d = PubsubSettings::default();
        PubsubSettings {
            project: self
                .env_override("GOOGLE_CLOUD_PROJECT")
                .or(self.project.clone()),
            subscription: self
                .env_override("GLUEFLEET_SUBSCRIPTION")
                .or(self.subscription.clone()),
            dead_letter_topic: self
                .env_override("GLUEFLEET_DEAD_LETTER_TOPIC")
                .or(self.dead_letter_topic.clone()),
            emulator_host: self
                .env_override("PUBSUB_EMULATOR_HOST")
                .or(self.emulator_host.clone()),
            streams: self.streams.unwrap_or(d.streams),
            max_outstanding_messages: self
                .max_outstanding_messages
                .unwrap_or(d.max_outstanding_messages),
            max_outstanding_bytes: self
                .max_outstanding_bytes
                .unwrap_or(d.max_outstanding_bytes),
            concurrency: self.concurrency.unwrap_or(d.concurrency),
            lease_extension: self.lease_extension.unwrap_or(d.lease_extension),
            max_nack_hold: self.max_nack_hold.unwrap_or(d.max_nack_hold),
        }
    }

    fn expected_port(&self) -> u16 {
        match self.env_override("PORT") {
            Some(p) => p.parse().unwrap_or_default(),
            None => self.port.unwrap_or(8080),
        }
    }

    fn expected_delivery(&self) -> DeliverySettings {
        let d = DeliverySettings::default();
        let (enabled, lease, ttl) = self.idempotency;
        DeliverySettings {
            unroutable: self.unroutable.unwrap_or(d.unroutable),
            max_delivery_attempts: self
                .max_delivery_attempts
                .unwrap_or(d.max_delivery_attempts),
            retry: self.retry.overrides().apply(&RetrySettings::default()),
            idempotency: IdempotencySettings {
                enabled: enabled.unwrap_or(d.idempotency.enabled),
                lease: lease.unwrap_or(d.idempotency.lease),
                ttl: ttl.unwrap_or(d.idempotency.ttl),
                ..d.idempotency
            },
            max_event_bytes: d.max_event_bytes,
        }
    }
}

/// Parses a config that must fail and returns the error's text.
fn refused(text: &str, env: &Env) -> Result<String, TestCaseError> {
    match parse(text, env) {
        Ok(c) => Err(TestCaseError::fail(format!(
            "expected an error, got {c:?} from\n{text}"
        ))),
        Err(e) => Ok(e.to_string()),
    }
}

/// Lines that look like a config, with the characters interpolation and
/// TOML treat specially, so arbitrary input reaches past the first error.
fn config_noise() -> impl Strategy<Value = String> {
    let fragment = prop_oneof![
        select(
            &[
                "[pubsub]",
                "[server]",
                "[delivery]",
                "[delivery.retry]",
                "[target]",
                "[[routes]]",
                "[rate_limits.a]",
                "streams = 0",
                "streams = 33",
                "concurrency = 0",
                "port = 70000",
                "budget = \"0s\"",
                "max_attempts = 0",
                "type = \"order.*\"",
                "action = {}",
                "base_url = \"https://x.example\"",
                "token = \"${TOKEN}\"",
                "token = \"$${TOKEN}\"",
                "# ${UNSET}",
                "timeout = \"1h\"",
                "requests = 0",
            ][..]
        )
        .prop_map(str::to_owned),
        "[a-z_]{1,10} = \"[^\"]{0,10}\"",
        "[a-z_]{1,10} = -?[0-9]{1,6}",
        ".{0,20}",
        "\\$\\{[A-Z_]{0,6}\\}?",
    ];
    vec(fragment, 0..24).prop_map(|lines| lines.join("\n"))
}

fn any_env() -> impl Strategy<Value = Env> {
    btree_map(
        prop_oneof![
            select(
                &[
                    "TOKEN",
                    "PORT",
                    "GOOGLE_CLOUD_PROJECT",
                    "GLUEFLEET_SUBSCRIPTION"
                ][..]
            )
            .prop_map(str::to_owned),
            "[A-Z_]{0,6}",
        ],
        ".{0,12}",
        0..5,
    )
}

/// What any successfully loaded config satisfies: the validation rules.
fn check_loaded(c: &TestConfig) -> Result<(), TestCaseError> {
    let p = &c.pubsub;
    prop_assert!((1..=32).contains(&p.streams), "streams {}", p.streams);
    prop_assert!(p.concurrency >= 1);
    prop_assert!(p.max_outstanding_messages >= 1);
    prop_assert!(p.max_outstanding_bytes >= 1024);
    prop_assert!(c.delivery.max_delivery_attempts >= 1);
    prop_assert!(c.delivery.retry.validate().is_ok());
    prop_assert!(!c.routes.is_empty());
    Ok(())
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in ".{0,400}", env in any_env()) {
        if let Ok(c) = parse(&text, &env) {
            check_loaded(&c)?;
        }
        let out = interpolate(&text, &|k| env.get(k).cloned());
        if !text.contains("${") {
            prop_assert_eq!(out.ok(), Some(text), "text without ${{ is left alone");
        }
    }

    #[test]
    fn config_shaped_noise_never_panics(text in config_noise(), env in any_env()) {
        match parse(&text, &env) {
            Ok(c) => check_loaded(&c)?,
            Err(e) => prop_assert!(!e.to_string().is_empty(), "an error says what is wrong"),
        }
        if let Ok(out) = interpolate(&text, &|k| env.get(k).cloned()) {
            prop_assert_eq!(out.lines().count(), text.lines().count(), "{:?}", out);
        }
    }

    #[test]
    fn generated_configs_load_to_the_values_written(g in config_gen()) {
        let text = g.render();
        let c = parse(&text, &g.env()).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(&c.pubsub, &g.expected_pubsub());
        prop_assert_eq!(c.server.port, g.expected_port());
        prop_assert_eq!(&c.delivery, &g.expected_delivery());
        prop_assert_eq!(&c.rate_limits, &g.rate_limits);
        prop_assert_eq!(&c.target, &Target { base_url: g.base_url.clone(), token: g.token.clone() });
        prop_assert_eq!(c.routes.len(), g.routes.len());
        for (got, want) in c.routes.iter().zip(&g.routes) {
            prop_assert_eq!(&got.name, &want.name);
            prop_assert_eq!(&got.event_type, &want.event_type);
            prop_assert_eq!(got.timeout, want.timeout);
            prop_assert_eq!(&got.retry, &want.retry.as_ref().map(RetryGen::overrides));
            let want_rl = want.rate_limit.as_ref().and_then(|(i, key)| {
                Some((g.bucket(*i)?.clone(), key.as_deref().map(Template::parse)))
            });
            let got_rl = got.rate_limit.as_ref().map(|rl| (rl.bucket.clone(), rl.key.clone().map(Ok)));
            prop_assert_eq!(got_rl, want_rl);
            prop_assert_eq!(&got.idempotency_key, &want.idempotency_key);
            prop_assert_eq!(&got.action, &Action { path: want.path.clone(), method: want.method.clone() });
        }
        // The routes also build into a table that finds each one.
        let types: Vec<String> = g.routes.iter().map(|r| r.event_type.clone()).collect();
        let table = RouteTable::build(c.routes, &c.delivery.retry, Ok::<_, gluefleet_core::ConfigError>)
            .map_err(|e| TestCaseError::fail(format!("routes: {e}")))?;
        for t in types {
            let probe = t.strip_suffix('*').map_or(t.clone(), |p| format!("{p}x"));
            let found = table.find(&probe).map(|r| r.pattern.clone());
            prop_assert_eq!(found, TypePattern::parse(&t).ok(), "route for {}", probe);
        }
    }

    #[test]
    fn out_of_range_values_are_refused_naming_the_field(
        g in config_gen(),
        case in 0_usize..12,
        n in 0_u64..1000,
    ) {
        let mut g = g;
        let mut env = g.env();
        let mut text = None;
        let field = match case {
            0 => { g.streams = Some(0); "pubsub.streams" }
            1 => { g.streams = Some(33 + usize::try_from(n).unwrap_or_default()); "pubsub.streams" }
            2 => { g.concurrency = Some(0); "pubsub.concurrency" }
            3 => { g.max_outstanding_messages = Some(-i64::try_from(n).unwrap_or_default()); "pubsub.max_outstanding_messages" }
            4 => { g.max_outstanding_bytes = Some(i64::try_from(n).unwrap_or_default().min(1023)); "max_outstanding_bytes" }
            5 => { g.max_delivery_attempts = Some(0); "delivery.max_delivery_attempts" }
            6 => { g.retry.max_attempts = Some(0); "delivery.retry: max_attempts" }
            7 => {
                g.retry.initial_backoff = Some(Duration::from_secs(61 + n));
                g.retry.max_backoff = Some(Duration::from_secs(60));
                "delivery.retry: initial_backoff"
            }
            8 => { g.retry.budget = Some(Duration::ZERO); "delivery.retry: budget" }
            9 => { g.routes.clear(); "routes" }
            10 => { env.insert("PORT".into(), format!("{}", 65_536 + n)); "PORT" }
            _ => {
                // A misspelt key is named, not ignored.
                text = Some(g.render().replacen("[pubsub]\n", "[pubsub]\nstreems = 2\n", 1));
                "streems"
            }
        };
        let text = text.unwrap_or_else(|| g.render());
        let err = refused(&text, &env)?;
        prop_assert!(err.contains(field), "{:?} should name {}", err, field);
    }

    #[test]
    fn interpolated_values_reach_the_config_unchanged(value in SECRET) {
        let text = "[target]\nbase_url = \"https://x.example\"\ntoken = \"${T}\"\n[[routes]]\ntype = \"a\"\naction = { path = \"/a\" }\n";
        let env: Env = [("T".to_owned(), value.clone())].into();
        let c = parse(text, &env).map_err(|e| TestCaseError::fail(format!("{e}")))?;
        prop_assert_eq!(c.target.token, value);
    }

    #[test]
    fn any_env_value_is_carried_exactly(value in "\\PC{0,8}(\\p{Cc}\\PC{0,8}){0,3}") {
        // Control characters a TOML string cannot hold as they are, too: the
        // value is never TOML text, so nothing in it needs escaping.
        let text = "[target]\nbase_url = \"https://x.example\"\ntoken = \"${T}\"\n[[routes]]\ntype = \"a\"\naction = { path = \"/a\" }\n";
        let env: Env = [("T".to_owned(), value.clone())].into();
        let c = parse(text, &env).map_err(|e| TestCaseError::fail(format!("{e}")))?;
        prop_assert_eq!(c.target.token, value);
    }

    #[test]
    fn a_value_that_breaks_the_config_is_never_shown(
        value in "[a-z0-9]{8,16}",
        breakage in select(&[",", " x", "\"", "]"][..]),
    ) {
        // The secret never reaches the parser, so a broken line shows the
        // reference as written.
        let line = format!("token = \"${{T}}\"{breakage}");
        let text = format!("[target]\nbase_url = \"https://x.example\"\n{line}\n[[routes]]\ntype = \"a\"\naction = {{ path = \"/a\" }}\n");
        let env: Env = [("T".to_owned(), value.clone())].into();
        let err = refused(&text, &env)?;
        prop_assert!(!err.contains(&value), "{}", err);
        prop_assert!(err.contains(&line), "{:?} should show {:?}", err, line);
    }

    #[test]
    fn an_unset_variable_is_named(name in "[A-Z_][A-Z0-9_]{0,15}", before in "[a-z ]{0,10}") {
        let text = format!("k = \"{before}${{{name}}}\"\n");
        let err = interpolate(&text, &|_| None).map(|_| ()).expect_err("unset");
        prop_assert!(err.to_string().contains(&format!("environment variable {name} is not set")), "{}", err);
    }

    #[test]
    fn escapes_unclosed_references_and_comments(name in "[A-Z_]{1,8}", tail in "[a-z ]{0,10}") {
        let env = |_: &str| Some("v".to_owned());
        prop_assert_eq!(
            interpolate(&format!("a = \"$${{{name}}}{tail}\""), &env).ok(),
            Some(format!("a = \"${{{name}}}{tail}\""))
        );
        let err = interpolate(&format!("a = \"${{{name}{tail}\""), &env).map(|_| ()).expect_err("unclosed");
        prop_assert!(err.to_string().contains("without a closing }"), "{}", err);
        // Comments, on their own line or after a value, are never filled in.
        let text = format!("# ${{{name}}} and ${{{tail}\n[target]\nbase_url = \"https://x.example\" # ${{{name}}}\ntoken = \"t\"\n[[routes]]\ntype = \"a\"\naction = {{ path = \"/a\" }}\n");
        let c = parse(&text, &Env::new()).map_err(|e| TestCaseError::fail(format!("{e}")))?;
        prop_assert_eq!(c.target.base_url, "https://x.example");
    }
}
