//! The OpenTelemetry collector beside gluefleet: its config
//! (`deploy/collector/config.yaml`) and the manifests that run it must agree,
//! or the sidecar starts and quietly collects nothing. Cloud Run and the
//! collector accept each half alone; only the pair is wrong:
//!
//! - gluefleet's `OTEL_EXPORTER_OTLP_ENDPOINT` is the OTLP/HTTP receiver's
//!   address (else every span is refused);
//! - the Prometheus receiver scrapes `localhost:<the worker's port>/metrics`
//!   (else no worker series, an empty dashboard, an error-ratio alert that
//!   never fires);
//! - the collector's startup probe asks the `health_check` extension's port
//!   (else every revision fails to start);
//! - `--config=` names a file a secret volume mounts;
//! - every component a pipeline names is defined (the collector refuses
//!   the config otherwise, at deploy time at best);
//! - the image is pinned to a release.
//!
//! A job runs no collector: a run-to-completion task keeps its totals in
//! its summary line, and Cloud Run jobs keep no scrape cadence.

use super::{at, load_one, secret_mount_holds};
use serde_json::Value;

/// What the manifests must agree with, read from the collector's config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Facts {
    /// The OTLP receiver's HTTP port.
    pub(crate) otlp_http_port: i64,
    /// The `health_check` extension's port.
    pub(crate) health_port: i64,
    /// `host:port` of every static scrape target.
    pub(crate) scrape_targets: Vec<String>,
    /// The scrape's path (Prometheus' default `/metrics` when unset).
    pub(crate) metrics_path: String,
}

/// The container's name in every service and worker pool manifest.
pub(crate) const NAME: &str = "collector";

/// The port of `host:port`, which must be local for the receivers.
fn port_of(endpoint: &str) -> Option<i64> {
    endpoint.rsplit_once(':')?.1.parse().ok()
}

/// The facts of `text`, or every problem found in it, each starting with
/// `file`.
pub(crate) fn facts(file: &str, text: &str) -> Result<Facts, Vec<String>> {
    let config = load_one(file, text)?;
    let mut problems = Vec::new();

    // Every component a pipeline or the service names is defined.
    let pipelines = at(&config, &["service", "pipelines"])
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if pipelines.is_empty() {
        problems.push(format!("{file}: service.pipelines is missing or empty"));
    }
    for (pipeline, spec) in &pipelines {
        for section in ["receivers", "processors", "exporters"] {
            for name in spec
                .get(section)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let name = name.as_str().unwrap_or_default();
                if config.get(section).and_then(|s| s.get(name)).is_none() {
                    problems.push(format!(
                        "{file}: service.pipelines.{pipeline}.{section} names {name}, which {section} does not define"
                    ));
                }
            }
        }
    }
    for name in at(&config, &["service", "extensions"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = name.as_str().unwrap_or_default();
        if at(&config, &["extensions", name]).is_none() {
            problems.push(format!(
                "{file}: service.extensions names {name}, which extensions does not define"
            ));
        }
    }
    for (pipeline, receiver) in [("traces", "otlp"), ("metrics", "prometheus")] {
        let listed = at(&config, &["service", "pipelines", pipeline, "receivers"])
            .and_then(Value::as_array)
            .is_some_and(|r| r.iter().any(|n| n.as_str() == Some(receiver)));
        if !listed {
            problems.push(format!(
                "{file}: service.pipelines.{pipeline} does not receive from {receiver}"
            ));
        }
    }

    let otlp = at(
        &config,
        &["receivers", "otlp", "protocols", "http", "endpoint"],
    )
    .and_then(Value::as_str)
    .unwrap_or_default();
    let otlp_http_port = match (otlp.rsplit_once(':'), port_of(otlp)) {
        (Some((host, _)), Some(port)) if host == "localhost" || host == "127.0.0.1" => port,
        (Some((host, _)), Some(port)) => {
            problems.push(format!(
                "{file}: receivers.otlp.protocols.http.endpoint listens on {host}: only the worker beside it sends spans, so localhost"
            ));
            port
        }
        _ => {
            problems.push(format!(
                "{file}: receivers.otlp.protocols.http.endpoint is {otlp:?}, expected localhost:<port>"
            ));
            0
        }
    };
    let health = at(&config, &["extensions", "health_check", "endpoint"])
        .and_then(Value::as_str)
        .unwrap_or_default();
    let health_port = port_of(health).unwrap_or_else(|| {
        problems.push(format!(
            "{file}: extensions.health_check.endpoint is {health:?}, expected 0.0.0.0:<port> for Cloud Run's startup probe"
        ));
        0
    });
    let scrapes = at(
        &config,
        &["receivers", "prometheus", "config", "scrape_configs"],
    )
    .and_then(Value::as_array)
    .cloned()
    .unwrap_or_default();
    let scrape_targets: Vec<String> = scrapes
        .iter()
        .filter_map(|s| s.get("static_configs").and_then(Value::as_array))
        .flatten()
        .filter_map(|s| s.get("targets").and_then(Value::as_array))
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    if scrape_targets.is_empty() {
        problems.push(format!(
            "{file}: receivers.prometheus.config.scrape_configs has no static target"
        ));
    }
    let metrics_path = scrapes
        .first()
        .and_then(|s| s.get("metrics_path"))
        .and_then(Value::as_str)
        .unwrap_or("/metrics")
        .to_owned();
    if problems.is_empty() {
        Ok(Facts {
            otlp_http_port,
            health_port,
            scrape_targets,
            metrics_path,
        })
    } else {
        Err(problems)
    }
}

/// The gluefleet container's port: where its probes (and /metrics) are.
fn worker_port(gluefleet: &Value) -> i64 {
    ["startupProbe", "livenessProbe"]
        .iter()
        .find_map(|p| at(gluefleet, &[p, "httpGet", "port"]).and_then(Value::as_i64))
        .unwrap_or(8080)
}

/// The collector container (`containers[1]`) against `facts` and the
/// gluefleet container beside it.
pub(crate) fn check(
    file: &str,
    pod_path: &str,
    pod: &Value,
    gluefleet: &Value,
    collector: &Value,
    facts: &Facts,
    problems: &mut Vec<String>,
) {
    let c_path = format!("{pod_path}.containers[1]");
    let name = collector.get("name").and_then(Value::as_str);
    if name != Some(NAME) {
        problems.push(format!(
            "{file}: {c_path}.name is {}, expected {NAME}",
            name.unwrap_or("missing")
        ));
    }
    let image = collector
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let tag = image
        .rsplit_once('/')
        .map_or(image, |(_, last)| last)
        .split_once(':');
    let pinned = image.contains("@sha256:") || tag.is_some_and(|(_, t)| t != "latest");
    if !pinned {
        problems.push(format!(
            "{file}: {c_path}.image {image:?} is not pinned to a release (a tag other than latest, or a digest)"
        ));
    }
    if collector.get("ports").is_some() {
        problems.push(format!(
            "{file}: {c_path}.ports: only the gluefleet container takes requests"
        ));
    }

    // --config=PATH: a file of a secret volume mounted at PATH's directory.
    let args: Vec<&str> = collector
        .get("args")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    match args.iter().find_map(|a| a.strip_prefix("--config=")) {
        None => problems.push(format!(
            "{file}: {c_path}.args {args:?} name no --config=<file>"
        )),
        Some(path) => {
            let (dir, file_name) = path.rsplit_once('/').unwrap_or(("", path));
            if !secret_mount_holds(pod, collector, dir, file_name) {
                problems.push(format!(
                    "{file}: {c_path}.args --config={path}: no secret volume mounted at {dir} holds {file_name}"
                ));
            }
        }
    }

    let probe_port = at(collector, &["startupProbe", "httpGet", "port"]).and_then(Value::as_i64);
    if probe_port != Some(facts.health_port) {
        problems.push(format!(
            "{file}: {c_path}.startupProbe.httpGet.port is {}, but the collector's health_check listens on {}",
            probe_port.map_or("missing".to_owned(), |p| p.to_string()),
            facts.health_port
        ));
    }

    let want = format!("http://localhost:{}", facts.otlp_http_port);
    let endpoint = gluefleet
        .get("env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|v| v.get("name").and_then(Value::as_str) == Some("OTEL_EXPORTER_OTLP_ENDPOINT"))
        .and_then(|v| v.get("value"))
        .and_then(Value::as_str);
    if endpoint != Some(want.as_str()) {
        problems.push(format!(
            "{file}: {pod_path}.containers[0].env OTEL_EXPORTER_OTLP_ENDPOINT is {}, expected {want} (the collector's OTLP/HTTP receiver)",
            endpoint.unwrap_or("unset")
        ));
    }

    let target = format!("localhost:{}", worker_port(gluefleet));
    if !facts.scrape_targets.contains(&target) || facts.metrics_path != "/metrics" {
        problems.push(format!(
            "{file}: the collector scrapes {:?}{}, not the worker's {target}/metrics",
            facts.scrape_targets, facts.metrics_path
        ));
    }
}

/// Terraform's copy of the same sidecar (`deploy/terraform/collector.tf`):
/// the worker's OTLP endpoint, the collector's probe port, and the config
/// it stores are this config's.
pub(crate) fn check_terraform(files: &[(String, String)], facts: &Facts) -> Vec<String> {
    let mut problems = Vec::new();
    let text: String = files
        .iter()
        .map(|(_, t)| t.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let want = format!("value = \"http://localhost:{}\"", facts.otlp_http_port);
    let endpoint: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("\"OTEL_EXPORTER_OTLP_ENDPOINT\""))
        .collect();
    if endpoint.is_empty() || !endpoint.iter().all(|l| l.contains(&want)) {
        problems.push(format!(
            "deploy/terraform: OTEL_EXPORTER_OTLP_ENDPOINT is not set with {want} (the collector's OTLP/HTTP receiver): {endpoint:?}"
        ));
    }
    let probe_port = text
        .split_once("collector_probe = {")
        .and_then(|(_, rest)| rest.split_once('}'))
        .and_then(|(block, _)| {
            block.lines().find_map(|l| {
                let (key, value) = l.split_once('=')?;
                (key.trim() == "port").then(|| value.trim().parse::<i64>().ok())?
            })
        });
    if probe_port != Some(facts.health_port) {
        problems.push(format!(
            "deploy/terraform: local.collector_probe.port is {}, but the collector's health_check listens on {}",
            probe_port.map_or("missing".to_owned(), |p| p.to_string()),
            facts.health_port
        ));
    }
    if !text.contains("file(\"${path.module}/../collector/config.yaml\")") {
        problems.push(
            "deploy/terraform: no secret version stores file(\"${path.module}/../collector/config.yaml\")".to_owned(),
        );
    }
    problems
}
