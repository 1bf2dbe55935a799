//! `/metrics`: what the worker has done, in Prometheus' text format, on the
//! probes' port.
//!
//! Every series carries `connector`. Labels are bounded by the config, never
//! by the traffic: routes are the configured ones, outcomes, reasons, error
//! and status classes come from fixed lists, and nothing is labelled with an
//! event id or a user. The names follow OpenTelemetry's messaging
//! conventions where they fit (received, settled, process duration) and
//! Prometheus' own (`_total`, `_seconds`, base units, `process_*`).
//!
//! Three kinds of figure:
//! - counted where it happens: the engine settles a message
//!   ([`Metrics::settled`]), the pipeline reports calls, retries, rate-limit
//!   waits and store operations through [`Observe`];
//! - gauges kept as messages come and go (in flight, held for a nack);
//! - read at scrape time ([`Figures`]): the connector's own counters
//!   (Salesforce's `api_usage` and `api_limit` among them), the idempotency
//!   store's, token fetches, the process's CPU and memory.

use crate::usage::{Usage, status_kib};
use gluefleet_core::error::ErrorClass;
use gluefleet_core::observe::{CallEnd, Observe, StoreOp};
use gluefleet_core::{Connector, Pipeline};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The `Content-Type` of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SettledLabels {
    route: String,
    outcome: &'static str,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteOutcome {
    route: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    route: String,
    status_class: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RetryLabels {
    route: String,
    class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BucketLabels {
    bucket: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreLabels {
    op: &'static str,
    result: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Latency buckets: 1 ms to about 33 s, doubling. Target calls and message
/// handling both live in this range; Pub/Sub's longest lease is 600 s and
/// anything past 33 s lands in `+Inf`, which is what an alert needs to know.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// What is read at scrape time from the worker's parts.
pub trait Figures: Send + Sync {
    /// The connector's own counters and gauges, by name.
    fn connector(&self) -> Vec<(&'static str, u64)>;
    /// The idempotency store's, by name.
    fn store(&self) -> Vec<(&'static str, u64)>;
    /// Tokens fetched, when the provider counts them.
    fn token_fetches(&self) -> Option<u64>;
}

impl<C: Connector> Figures for Pipeline<C> {
    fn connector(&self) -> Vec<(&'static str, u64)> {
        self.connector().stats()
    }
    fn store(&self) -> Vec<(&'static str, u64)> {
        self.store_stats()
    }
    fn token_fetches(&self) -> Option<u64> {
        self.auth().and_then(|a| a.fetches())
    }
}

/// The worker's metrics. One per process; the engine and the pipeline
/// report into it, `/metrics` encodes it.
pub struct Metrics {
    registry: Registry,
    received: Counter,
    settled: Family<SettledLabels, Counter>,
    message_duration: Histograms<RouteOutcome>,
    calls: Histograms<CallLabels>,
    retries: Family<RetryLabels, Counter>,
    rate_limit_wait: Family<BucketLabels, Counter<f64, AtomicU64>>,
    store: Histograms<StoreLabels>,
    in_flight: Gauge,
    held: Gauge,
    figures: Arc<OnceLock<Arc<dyn Figures>>>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// The metrics of connector `connector`, every family registered.
    pub fn new(connector: &'static str) -> Self {
        let mut registry = Registry::with_labels(std::iter::once((
            Cow::Borrowed("connector"),
            Cow::Borrowed(connector),
        )));
        let figures: Arc<OnceLock<Arc<dyn Figures>>> = Arc::default();
        registry.register_collector(Box::new(ProcessCollector {
            started: std::time::SystemTime::now(),
        }));
        let m = Self {
            received: Counter::default(),
            settled: Family::default(),
            message_duration: Family::new_with_constructor(latency),
            calls: Family::new_with_constructor(latency),
            retries: Family::default(),
            rate_limit_wait: Family::default(),
            store: Family::new_with_constructor(latency),
            in_flight: Gauge::default(),
            held: Gauge::default(),
            figures: figures.clone(),
            registry: Registry::default(),
        };
        let g = registry.sub_registry_with_prefix("gluefleet");
        g.register(
            "messages_received",
            "Messages received from Pub/Sub (pull or push)",
            m.received.clone(),
        );
        g.register(
            "messages_settled",
            "Messages settled, by route, outcome (acked, dead-lettered, nacked, released, \
             dead-letter-failed) and reason (ack reason, dead-letter class, nack reason)",
            m.settled.clone(),
        );
        g.register_with_unit(
            "message_duration",
            "From receipt to settled, by route and outcome",
            Unit::Seconds,
            m.message_duration.clone(),
        );
        g.register_with_unit(
            "target_call_duration",
            "One attempt's call to the target, credential included, by route, status class \
             (2xx..5xx, none: no HTTP answer) and result (ok or the error class)",
            Unit::Seconds,
            m.calls.clone(),
        );
        g.register(
            "retries",
            "Attempts retried in process, by route and the failed attempt's error class",
            m.retries.clone(),
        );
        g.register_with_unit(
            "rate_limit_wait",
            "Time messages waited in the worker's own rate limiter, by bucket",
            Unit::Seconds,
            m.rate_limit_wait.clone(),
        );
        g.register_with_unit(
            "idempotency_store_duration",
            "Idempotency store operations, by op (claim, complete, release) and result (ok, error)",
            Unit::Seconds,
            m.store.clone(),
        );
        g.register(
            "in_flight_messages",
            "Messages being processed now",
            m.in_flight.clone(),
        );
        g.register(
            "held_for_nack_messages",
            "Messages whose lease is kept until their delayed nack",
            m.held.clone(),
        );
        g.register_collector(Box::new(FiguresCollector { figures }));
        let info = prometheus_client::metrics::info::Info::new(vec![(
            "version",
            env!("CARGO_PKG_VERSION"),
        )]);
        g.register("build", "The worker's version, always 1", info);
        Self { registry, ..m }
    }

    /// Reads the connector's, the store's and the credential's figures from
    /// `pipeline` at every scrape.
    pub fn watch<C: Connector>(&self, pipeline: Arc<Pipeline<C>>) {
        let _ = self.figures.set(pipeline);
    }

    /// The text `/metrics` answers.
    pub fn encode(&self) -> String {
        let mut text = String::with_capacity(8 * 1024);
        // Writing to a String does not fail; an encoder error would be a
        // label the registry itself refused, which it cannot hold.
        if prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry).is_err()
        {
            text.clear();
        }
        text
    }

    /// A message came in.
    pub fn received(&self) {
        self.received.inc();
    }

    /// A message was settled after `elapsed` from its receipt.
    pub fn settled(&self, route: &str, outcome: &'static str, reason: &str, elapsed: Duration) {
        self.settled
            .get_or_create(&SettledLabels {
                route: route.to_owned(),
                outcome,
                reason: reason.to_owned(),
            })
            .inc();
        self.message_duration
            .get_or_create(&RouteOutcome {
                route: route.to_owned(),
                outcome,
            })
            .observe(elapsed.as_secs_f64());
    }

    /// The in-flight gauge.
    pub fn in_flight(&self) -> &Gauge {
        &self.in_flight
    }

    /// The held-for-nack gauge.
    pub fn held(&self) -> &Gauge {
        &self.held
    }
}

impl Observe for Metrics {
    fn call(&self, route: &str, elapsed: Duration, end: CallEnd) {
        self.calls
            .get_or_create(&CallLabels {
                route: route.to_owned(),
                status_class: end.status_class(),
                result: end.result(),
            })
            .observe(elapsed.as_secs_f64());
    }

    fn retry(&self, route: &str, class: ErrorClass) {
        self.retries
            .get_or_create(&RetryLabels {
                route: route.to_owned(),
                class: class.as_str(),
            })
            .inc();
    }

    fn rate_limit_wait(&self, bucket: &str, waited: Duration) {
        self.rate_limit_wait
            .get_or_create(&BucketLabels {
                bucket: bucket.to_owned(),
            })
            .inc_by(waited.as_secs_f64());
    }

    fn store(&self, op: StoreOp, elapsed: Duration, ok: bool) {
        self.store
            .get_or_create(&StoreLabels {
                op: op.as_str(),
                result: if ok { "ok" } else { "error" },
            })
            .observe(elapsed.as_secs_f64());
    }
}

/// The connector's, store's and credential's figures, read at each scrape.
struct FiguresCollector {
    figures: Arc<OnceLock<Arc<dyn Figures>>>,
}

impl fmt::Debug for FiguresCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FiguresCollector").finish_non_exhaustive()
    }
}

impl Collector for FiguresCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let Some(figures) = self.figures.get() else {
            return Ok(());
        };
        gauges(
            &mut encoder,
            "connector_stat",
            "The connector's own figures by name (requests sent, Salesforce's api_usage and api_limit, ...)",
            &figures.connector(),
        )?;
        gauges(
            &mut encoder,
            "idempotency_store_stat",
            "The idempotency store's figures by name (keys held, evictions)",
            &figures.store(),
        )?;
        if let Some(n) = figures.token_fetches() {
            let c = ConstCounter::new(n);
            c.encode(encoder.encode_descriptor(
                "token_fetches",
                "Credentials fetched from the token endpoint (refreshes and re-fetches after a 401)",
                None,
                c.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

fn gauges(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    values: &[(&'static str, u64)],
) -> Result<(), fmt::Error> {
    if values.is_empty() {
        return Ok(());
    }
    let mut family = encoder.encode_descriptor(
        name,
        help,
        None,
        prometheus_client::metrics::MetricType::Gauge,
    )?;
    for (stat, value) in values {
        let g = ConstGauge::new(i64::try_from(*value).unwrap_or(i64::MAX));
        g.encode(family.encode_family(&[("name", *stat)])?)?;
    }
    Ok(())
}

/// `process_*`, as every Prometheus client names them.
#[derive(Debug)]
struct ProcessCollector {
    started: std::time::SystemTime,
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let usage = Usage::now();
        let cpu = ConstCounter::new(usage.cpu.as_secs_f64());
        cpu.encode(encoder.encode_descriptor(
            "process_cpu",
            "User and system CPU time spent",
            Some(&Unit::Seconds),
            cpu.metric_type(),
        )?)?;
        if let Some(kib) = status_kib("self", "VmRSS") {
            let rss = ConstGauge::new(i64::try_from(kib.saturating_mul(1024)).unwrap_or(i64::MAX));
            rss.encode(encoder.encode_descriptor(
                "process_resident_memory",
                "Resident memory size",
                Some(&Unit::Bytes),
                rss.metric_type(),
            )?)?;
        }
        let peak = ConstGauge::new(
            i64::try_from(usage.peak_rss_kib.saturating_mul(1024)).unwrap_or(i64::MAX),
        );
        peak.encode(encoder.encode_descriptor(
            "process_max_resident_memory",
            "Peak resident memory size",
            Some(&Unit::Bytes),
            peak.metric_type(),
        )?)?;
        let since_epoch = self
            .started
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let start = ConstGauge::new(since_epoch.as_secs_f64());
        start.encode(encoder.encode_descriptor(
            "process_start_time",
            "When the worker started, Unix time",
            Some(&Unit::Seconds),
            start.metric_type(),
        )?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the series `line_prefix` (name and labels as written).
    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn every_family_is_named_and_labelled_as_documented() {
        let m = Metrics::new("legacy-rest");
        m.received();
        m.received();
        m.settled("orders", "acked", "delivered", Duration::from_millis(3));
        m.settled(
            "orders",
            "dead-lettered",
            "permanent",
            Duration::from_millis(40),
        );
        m.call(
            "orders",
            Duration::from_millis(2),
            CallEnd {
                status: Some(503),
                class: Some(ErrorClass::Transient),
                outcome_unknown: false,
            },
        );
        m.retry("orders", ErrorClass::Transient);
        m.rate_limit_wait("crm", Duration::from_millis(250));
        m.store(StoreOp::Claim, Duration::from_micros(20), true);
        m.in_flight().inc();
        let text = m.encode();
        let c = r#"connector="legacy-rest""#;
        assert_eq!(
            value(&text, &format!("gluefleet_messages_received_total{{{c}}}")),
            Some(2.0),
            "{text}"
        );
        assert_eq!(
            value(
                &text,
                &format!(
                    r#"gluefleet_messages_settled_total{{{c},route="orders",outcome="dead-lettered",reason="permanent"}}"#
                )
            ),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            value(
                &text,
                &format!(
                    r#"gluefleet_target_call_duration_seconds_count{{{c},route="orders",status_class="5xx",result="transient"}}"#
                )
            ),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            value(
                &text,
                &format!(
                    r#"gluefleet_message_duration_seconds_bucket{{{c},route="orders",outcome="acked",le="0.004"}}"#
                )
            ),
            Some(1.0),
            "3 ms falls in the 4 ms bucket: {text}"
        );
        assert_eq!(
            value(
                &text,
                &format!(r#"gluefleet_retries_total{{{c},route="orders",class="transient"}}"#)
            ),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            value(
                &text,
                &format!(r#"gluefleet_rate_limit_wait_seconds_total{{{c},bucket="crm"}}"#)
            ),
            Some(0.25),
            "{text}"
        );
        assert_eq!(
            value(
                &text,
                &format!(
                    r#"gluefleet_idempotency_store_duration_seconds_count{{{c},op="claim",result="ok"}}"#
                )
            ),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            value(&text, &format!("gluefleet_in_flight_messages{{{c}}}")),
            Some(1.0),
            "{text}"
        );
        assert!(
            value(&text, &format!("process_cpu_seconds_total{{{c}}}")).is_some_and(|v| v > 0.0),
            "{text}"
        );
        assert!(
            value(&text, &format!("process_resident_memory_bytes{{{c}}}")).is_some_and(|v| v > 0.0),
            "{text}"
        );
        assert!(text.contains("# TYPE gluefleet_messages_settled_total counter"));
        assert_eq!(
            value(
                &text,
                &format!(
                    r#"gluefleet_build_info{{{c},version="{}"}}"#,
                    env!("CARGO_PKG_VERSION")
                )
            ),
            Some(1.0),
            "{text}"
        );
    }
}
