//! The deploy files are checked, not trusted: a misspelt field in a Cloud
//! Run manifest is otherwise found by `gcloud ... replace` in production, an
//! `args` line that the worker's parser refuses by a crash loop, and an
//! unpinned base image by a build that quietly changed.
//!
//! For every connector under `connectors/` (not `template`):
//!
//! - `deploy/cloudrun/` has exactly `<c>.service.yaml` (the push service:
//!   `serving.knative.dev/v1` Service, `serve`, `minScale` "0"),
//!   `<c>.worker-pool.yaml` (the pull worker pool, `run.googleapis.com/v1`
//!   WorkerPool, `run`) and `<c>.job.yaml` (`run.googleapis.com/v1` Job,
//!   `job`); a missing or unexpected file is named;
//! - Terraform's connector list (the line marked `# gluefleet:connectors`)
//!   and the Dockerfile's `CONNECTORS` name it, and Terraform declares
//!   `google_cloud_run_v2_service` and `google_cloud_run_v2_worker_pool`.
//!
//! Every manifest is parsed and walked against the Cloud Run Admin API v2
//! Discovery document (`crates/testkit/data/google-discovery/run.v2.json`)
//! with the testkit's schema walk. The files are in the v1 (Knative-style)
//! form that `gcloud run ... replace` reads, which v2 does not describe, so
//! the envelope (metadata, spec, template) is a small local schema
//! ([`envelope`]) whose `containers[]` and `volumes[]` are the published
//! `GoogleCloudRunV2Container` and `GoogleCloudRunV2Volume`, with these v1
//! spellings ([`V1_SPELLINGS`]):
//!
//! | v1 (the YAML) | v2 (run.v2.json) |
//! |---|---|
//! | `env[].valueFrom` | `GoogleCloudRunV2EnvVar.valueSource` |
//! | `valueFrom.secretKeyRef.name` / `.key` | `GoogleCloudRunV2SecretKeySelector.secret` / `.version` |
//! | `volumes[].secret.secretName` | `GoogleCloudRunV2SecretVolumeSource.secret` |
//! | `volumes[].secret.items[].key` | `GoogleCloudRunV2VersionToPath.version` |
//! | `spec.serviceAccountName` | `serviceAccount` |
//! | `spec.containerConcurrency` | `maxInstanceRequestConcurrency` |
//! | `spec.timeoutSeconds` (integer) | `timeout` (a duration string) |
//!
//! Unknown fields and wrong JSON types are errors naming the path. On top,
//! Cloud Run's documented limits that are cheap to check: a startup probe
//! fits in 240 s (`initialDelaySeconds + periodSeconds × failureThreshold`),
//! a probe's timeout is not longer than its period, memory is at least
//! 512Mi in the second generation (jobs and worker pools always, services
//! that ask for `gen2`), and `PORT` is not set under `env` (Cloud Run
//! reserves it). Each manifest's `args` go through the worker's own command
//! line parser ([`gluefleet_runtime::Cli`]), and the mode must be the
//! kind's. Every `FROM` of `deploy/Dockerfile` is pinned by digest.
//!
//! `GLUEFLEET_CHECK_ROOT=/path/to/checkout` checks another checkout's
//! `connectors/` and `deploy/` with this build's checks.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clap::Parser as _;
use gluefleet_runtime::{Cli, Mode};
use gluefleet_testkit::discovery::{Spelling, Walk};
use serde_json::{Value, json};

#[path = "deploy/collector.rs"]
mod collector;
mod yaml;

use yaml::load_one;

/// Cloud Run Admin API v2, as published (see that folder's README).
const RUN_V2: &str = include_str!("../../crates/testkit/data/google-discovery/run.v2.json");

/// Cloud Run's cap on a startup probe: initial delay plus period times
/// failure threshold.
const STARTUP_BUDGET_SECS: i64 = 240;

/// The second generation's memory floor (jobs and worker pools run in it).
const GEN2_MIN_MEMORY: u64 = 512 * 1024 * 1024;

/// The v1 YAML's names for v2 properties (see the table above).
const V1_SPELLINGS: &[Spelling] = &[
    Spelling {
        schema: "GoogleCloudRunV2EnvVar",
        written: "valueFrom",
        property: "valueSource",
    },
    Spelling {
        schema: "GoogleCloudRunV2SecretKeySelector",
        written: "name",
        property: "secret",
    },
    Spelling {
        schema: "GoogleCloudRunV2SecretKeySelector",
        written: "key",
        property: "version",
    },
    Spelling {
        schema: "GoogleCloudRunV2SecretVolumeSource",
        written: "secretName",
        property: "secret",
    },
    Spelling {
        schema: "GoogleCloudRunV2VersionToPath",
        written: "key",
        property: "version",
    },
];

/// gluefleet-ingest's service: not a connector's, checked by
/// [`check_ingest_manifest`].
const INGEST_MANIFEST: &str = "ingest.service.yaml";

/// The three ways a connector runs on Cloud Run, one manifest each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Service,
    WorkerPool,
    Job,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Service, Kind::WorkerPool, Kind::Job];

    fn suffix(self) -> &'static str {
        match self {
            Kind::Service => ".service.yaml",
            Kind::WorkerPool => ".worker-pool.yaml",
            Kind::Job => ".job.yaml",
        }
    }

    /// `apiVersion` and `kind` as `gcloud run ... replace` expects them.
    fn api(self) -> (&'static str, &'static str) {
        match self {
            Kind::Service => ("serving.knative.dev/v1", "Service"),
            Kind::WorkerPool => ("run.googleapis.com/v1", "WorkerPool"),
            Kind::Job => ("run.googleapis.com/v1", "Job"),
        }
    }

    /// The worker mode this kind of resource runs.
    fn mode(self) -> Mode {
        match self {
            Kind::Service => Mode::Serve,
            Kind::WorkerPool => Mode::Run,
            Kind::Job => Mode::Job,
        }
    }

    /// The envelope schema (in [`envelope`]) of this kind.
    fn schema(self) -> &'static str {
        match self {
            Kind::Service => "V1Service",
            Kind::WorkerPool => "V1WorkerPool",
            Kind::Job => "V1Job",
        }
    }

    /// Where the containers sit.
    fn pod_spec(self) -> &'static [&'static str] {
        match self {
            Kind::Service | Kind::WorkerPool => &["spec", "template", "spec"],
            Kind::Job => &["spec", "template", "spec", "template", "spec"],
        }
    }

    /// Always the second generation execution environment.
    fn always_gen2(self) -> bool {
        matches!(self, Kind::WorkerPool | Kind::Job)
    }
}

/// The v1 envelope in Discovery form. Every property here has a v2
/// counterpart (noted in its description), so a field Cloud Run's v1 API
/// would take but v2 has no place for is refused like a misspelling.
fn envelope() -> Value {
    let string = json!({"type": "string"});
    let int32 = json!({"type": "integer", "format": "int32"});
    let map = json!({"type": "object", "additionalProperties": {"type": "string"}});
    let containers = json!({"type": "array", "items": {"$ref": "GoogleCloudRunV2Container"}});
    let volumes = json!({"type": "array", "items": {"$ref": "GoogleCloudRunV2Volume"}});
    let object =
        |id: &str, properties: Value| json!({"id": id, "type": "object", "properties": properties});
    json!({"schemas": {
        "V1ObjectMeta": object("V1ObjectMeta", json!({
            "name": string, "namespace": string, "labels": map, "annotations": map,
        })),
        "V1Service": object("V1Service", json!({
            "apiVersion": string, "kind": string,
            "metadata": {"$ref": "V1ObjectMeta"}, "spec": {"$ref": "V1ServiceSpec"},
        })),
        "V1ServiceSpec": object("V1ServiceSpec", json!({
            "template": {"$ref": "V1RevisionTemplate"},
            "traffic": {"type": "array", "items": {"$ref": "V1TrafficTarget"}},
        })),
        "V1TrafficTarget": object("V1TrafficTarget", json!({
            "percent": int32, "latestRevision": {"type": "boolean"},
            "revisionName": string, "tag": string,
        })),
        "V1RevisionTemplate": object("V1RevisionTemplate", json!({
            "metadata": {"$ref": "V1ObjectMeta"}, "spec": {"$ref": "V1RevisionSpec"},
        })),
        "V1RevisionSpec": object("V1RevisionSpec", json!({
            "serviceAccountName": {"type": "string", "description": "v2 serviceAccount"},
            "containerConcurrency": {"type": "integer", "format": "int32", "description": "v2 maxInstanceRequestConcurrency"},
            "timeoutSeconds": {"type": "integer", "format": "int32", "description": "v2 timeout"},
            "containers": containers, "volumes": volumes,
        })),
        "V1WorkerPool": object("V1WorkerPool", json!({
            "apiVersion": string, "kind": string,
            "metadata": {"$ref": "V1ObjectMeta"}, "spec": {"$ref": "V1WorkerPoolSpec"},
        })),
        "V1WorkerPoolSpec": object("V1WorkerPoolSpec", json!({
            "template": {"$ref": "V1WorkerPoolTemplate"},
        })),
        "V1WorkerPoolTemplate": object("V1WorkerPoolTemplate", json!({
            "metadata": {"$ref": "V1ObjectMeta"}, "spec": {"$ref": "V1WorkerPoolRevisionSpec"},
        })),
        "V1WorkerPoolRevisionSpec": object("V1WorkerPoolRevisionSpec", json!({
            "serviceAccountName": {"type": "string", "description": "v2 serviceAccount"},
            "containers": containers, "volumes": volumes,
        })),
        "V1Job": object("V1Job", json!({
            "apiVersion": string, "kind": string,
            "metadata": {"$ref": "V1ObjectMeta"}, "spec": {"$ref": "V1JobSpec"},
        })),
        "V1JobSpec": object("V1JobSpec", json!({
            "template": {"$ref": "V1ExecutionTemplate"},
        })),
        "V1ExecutionTemplate": object("V1ExecutionTemplate", json!({
            "metadata": {"$ref": "V1ObjectMeta"}, "spec": {"$ref": "V1ExecutionSpec"},
        })),
        "V1ExecutionSpec": object("V1ExecutionSpec", json!({
            "parallelism": int32, "taskCount": int32,
            "template": {"$ref": "V1TaskTemplate"},
        })),
        "V1TaskTemplate": object("V1TaskTemplate", json!({
            "spec": {"$ref": "V1TaskSpec"},
        })),
        "V1TaskSpec": object("V1TaskSpec", json!({
            "serviceAccountName": {"type": "string", "description": "v2 serviceAccount"},
            "timeoutSeconds": {"type": "integer", "format": "int64", "description": "v2 timeout"},
            "maxRetries": int32, "containers": containers, "volumes": volumes,
        })),
    }})
}

/// The checkout whose files are checked.
fn root() -> PathBuf {
    match std::env::var_os("GLUEFLEET_CHECK_ROOT") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join(".."),
    }
}

/// The connectors: crates under `connectors/`, not the template.
fn connectors(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root.join("connectors"))
        .expect("connectors/ exists")
        .filter_map(Result::ok)
        .filter(|e| e.path().join("Cargo.toml").exists())
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|n| n != "template")
        .collect();
    v.sort();
    v
}

/// Missing and unexpected manifests in `deploy/cloudrun/`.
fn check_file_set(connectors: &[String], files: &[String]) -> Vec<String> {
    let expected: BTreeSet<String> = connectors
        .iter()
        .flat_map(|c| Kind::ALL.map(|k| format!("{c}{}", k.suffix())))
        .collect();
    let present: BTreeSet<String> = files
        .iter()
        .filter(|f| f.as_str() != INGEST_MANIFEST)
        .cloned()
        .collect();
    let mut problems: Vec<String> = expected
        .difference(&present)
        .map(|f| format!("deploy/cloudrun/{f} is missing"))
        .collect();
    problems.extend(present.difference(&expected).map(|f| {
        format!(
            "deploy/cloudrun/{f} is not a manifest of any connector (expected <connector>.service.yaml, .worker-pool.yaml or .job.yaml)"
        )
    }));
    problems
}

fn at<'a>(v: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().try_fold(v, |v, k| v.get(k))
}

/// `512Mi`, `1Gi`, `2G`, ... in bytes (Kubernetes quantities, as Cloud Run
/// takes them).
fn memory_bytes(text: &str) -> Option<u64> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    let factor: u64 = match unit {
        "" => 1,
        "k" | "K" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(factor)
}

/// Does a secret volume of `pod`, mounted in `container` at `dir`, hold
/// `file_name`? (A `--config` file the container can read.)
fn secret_mount_holds(pod: &Value, container: &Value, dir: &str, file_name: &str) -> bool {
    container
        .get("volumeMounts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|m| {
            m.get("mountPath")
                .and_then(Value::as_str)
                .is_some_and(|p| p.trim_end_matches('/') == dir)
        })
        .and_then(|m| m.get("name"))
        .and_then(|n| {
            pod.get("volumes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|v| v.get("name") == Some(n))
        })
        .and_then(|v| at(v, &["secret", "items"]))
        .and_then(Value::as_array)
        .is_some_and(|items| {
            items
                .iter()
                .any(|i| i.get("path").and_then(Value::as_str) == Some(file_name))
        })
}

/// The manifest as JSON and the schema walk's problem, if any; `Err` when
/// it is not one YAML document.
fn parse_and_walk(file: &str, kind: Kind, text: &str) -> Result<(Value, Vec<String>), Vec<String>> {
    let manifest = load_one(file, text)?;
    let run_v2: Value = serde_json::from_str(RUN_V2).expect("the bundled run.v2.json parses");
    let envelope = envelope();
    let walk = Walk::new([&envelope, &run_v2]).spellings(V1_SPELLINGS);
    let schema = walk
        .schema(kind.schema())
        .expect("the envelope has every kind");
    let mut problems = Vec::new();
    if let Err(m) = walk.check(schema, &manifest, "") {
        problems.push(format!("{file}: {m}"));
    }
    Ok((manifest, problems))
}

/// gluefleet-ingest's service: the schema, its name, one container whose
/// `--config` file a secret volume mounts, the probes and env rules.
fn check_ingest_manifest(file: &str, text: &str) -> Vec<String> {
    let (manifest, mut problems) = match parse_and_walk(file, Kind::Service, text) {
        Ok(parsed) => parsed,
        Err(problems) => return problems,
    };
    let name = at(&manifest, &["metadata", "name"]).and_then(Value::as_str);
    if name != Some("gluefleet-ingest") {
        problems.push(format!(
            "{file}: metadata.name is {}, expected gluefleet-ingest",
            name.unwrap_or("missing")
        ));
    }
    let pod_path = Kind::Service.pod_spec().join(".");
    let pod = at(&manifest, Kind::Service.pod_spec())
        .cloned()
        .unwrap_or_default();
    let containers = pod
        .get("containers")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let [container] = containers else {
        problems.push(format!(
            "{file}: {pod_path}.containers has {} containers, expected one",
            containers.len()
        ));
        return problems;
    };
    let c_path = format!("{pod_path}.containers[0]");
    check_env(file, &c_path, container, &mut problems);
    check_probes(file, &c_path, container, &mut problems);
    let args: Vec<&str> = container
        .get("args")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let config = args
        .iter()
        .position(|a| *a == "--config")
        .and_then(|i| args.get(i + 1));
    match config.and_then(|p| p.rsplit_once('/')) {
        None => problems.push(format!(
            "{file}: {c_path}.args {args:?} name no --config FILE"
        )),
        Some((dir, config_file)) => {
            if !secret_mount_holds(&pod, container, dir, config_file) {
                problems.push(format!(
                    "{file}: {c_path}.args --config {dir}/{config_file}: no secret volume mounted at {dir} holds {config_file}"
                ));
            }
        }
    }
    problems
}

/// `collector`: the facts of the collector's config, `None` when that
/// config has problems of its own (reported apart).
fn check_manifest(
    file: &str,
    connector: &str,
    kind: Kind,
    text: &str,
    collector: Option<&collector::Facts>,
) -> Vec<String> {
    let (manifest, mut problems) = match parse_and_walk(file, kind, text) {
        Ok(parsed) => parsed,
        Err(problems) => return problems,
    };
    let (api_version, resource) = kind.api();
    for (key, want) in [("apiVersion", api_version), ("kind", resource)] {
        let got = manifest.get(key).and_then(Value::as_str);
        if got != Some(want) {
            problems.push(format!(
                "{file}: {key} is {}, expected {want}",
                got.unwrap_or("missing")
            ));
        }
    }
    let name = at(&manifest, &["metadata", "name"]).and_then(Value::as_str);
    let want_name = format!("gluefleet-{connector}");
    if name != Some(want_name.as_str()) {
        problems.push(format!(
            "{file}: metadata.name is {}, expected {want_name}",
            name.unwrap_or("missing")
        ));
    }
    if kind == Kind::Service {
        let min = at(
            &manifest,
            &[
                "spec",
                "template",
                "metadata",
                "annotations",
                "autoscaling.knative.dev/minScale",
            ],
        );
        if min != Some(&json!("0")) {
            problems.push(format!(
                "{file}: spec.template.metadata.annotations.autoscaling.knative.dev/minScale is {}, expected \"0\": the push service scales to zero",
                min.map_or("missing".to_owned(), Value::to_string)
            ));
        }
    }

    let pod_path = kind.pod_spec().join(".");
    let Some(pod) = at(&manifest, kind.pod_spec()) else {
        problems.push(format!("{file}: {pod_path} is missing"));
        return problems;
    };
    let containers = pod
        .get("containers")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let (container, sidecar) = match (kind, containers) {
        (Kind::Job, [container]) => (container, None),
        (Kind::Service | Kind::WorkerPool, [container, sidecar]) => (container, Some(sidecar)),
        (Kind::Job, _) => {
            problems.push(format!(
                "{file}: {pod_path}.containers has {} containers, expected the one gluefleet container (a job runs no collector)",
                containers.len()
            ));
            return problems;
        }
        _ => {
            problems.push(format!(
                "{file}: {pod_path}.containers has {} containers, expected gluefleet and the {} beside it",
                containers.len(),
                collector::NAME
            ));
            return problems;
        }
    };
    let c_path = format!("{pod_path}.containers[0]");
    let name = container.get("name").and_then(Value::as_str);
    if name != Some("gluefleet") {
        problems.push(format!(
            "{file}: {c_path}.name is {}, expected gluefleet",
            name.unwrap_or("missing")
        ));
    }
    if let (Some(sidecar), Some(facts)) = (sidecar, collector) {
        collector::check(
            file,
            &pod_path,
            pod,
            container,
            sidecar,
            facts,
            &mut problems,
        );
    }
    check_args(file, &c_path, kind, container, &mut problems);
    check_env(file, &c_path, container, &mut problems);
    check_probes(file, &c_path, container, &mut problems);
    let gen2 = kind.always_gen2()
        || at(
            &manifest,
            &[
                "spec",
                "template",
                "metadata",
                "annotations",
                "run.googleapis.com/execution-environment",
            ],
        )
        .and_then(Value::as_str)
            == Some("gen2");
    if gen2
        && let Some(memory) =
            at(container, &["resources", "limits", "memory"]).and_then(Value::as_str)
    {
        match memory_bytes(memory) {
            None => problems.push(format!(
                "{file}: {c_path}.resources.limits.memory: {memory} is not a quantity like 512Mi"
            )),
            Some(bytes) if bytes < GEN2_MIN_MEMORY => problems.push(format!(
                "{file}: {c_path}.resources.limits.memory: {memory} is below 512Mi, the second generation's minimum"
            )),
            Some(_) => {}
        }
    }
    problems
}

/// The container's `args` through the worker's own parser; the mode must
/// be the kind's.
fn check_args(file: &str, c_path: &str, kind: Kind, container: &Value, problems: &mut Vec<String>) {
    let Some(args) = container.get("args").and_then(Value::as_array) else {
        problems.push(format!(
            "{file}: {c_path}.args is missing: name the mode ({:?})",
            kind.mode()
        ));
        return;
    };
    let args: Vec<&str> = args.iter().filter_map(Value::as_str).collect();
    match Cli::try_parse_from(std::iter::once("gluefleet").chain(args.iter().copied())) {
        Err(e) => {
            let first = e.to_string();
            let first = first.lines().next().unwrap_or_default().to_owned();
            problems.push(format!(
                "{file}: {c_path}.args {args:?} are refused by gluefleet's command line: {first}"
            ));
        }
        Ok(cli) => {
            let mode = cli.mode.unwrap_or(Mode::Run);
            if mode != kind.mode() {
                problems.push(format!(
                    "{file}: {c_path}.args {args:?} run mode {mode:?}, but a {} runs {:?}",
                    kind.api().1,
                    kind.mode()
                ));
            }
        }
    }
}

fn check_env(file: &str, c_path: &str, container: &Value, problems: &mut Vec<String>) {
    let env = container
        .get("env")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut seen = BTreeSet::new();
    for (i, var) in env.iter().enumerate() {
        let Some(name) = var.get("name").and_then(Value::as_str) else {
            problems.push(format!("{file}: {c_path}.env[{i}].name is missing"));
            continue;
        };
        if name == "PORT" {
            problems.push(format!(
                "{file}: {c_path}.env[{i}] sets PORT, which Cloud Run reserves (set ports[].containerPort)"
            ));
        }
        if !seen.insert(name) {
            problems.push(format!("{file}: {c_path}.env[{i}] sets {name} twice"));
        }
    }
}

fn check_probes(file: &str, c_path: &str, container: &Value, problems: &mut Vec<String>) {
    for probe_name in ["startupProbe", "livenessProbe", "readinessProbe"] {
        let Some(probe) = container.get(probe_name) else {
            continue;
        };
        // Cloud Run's defaults when a number is left out.
        let int =
            |key: &str, default: i64| probe.get(key).and_then(Value::as_i64).unwrap_or(default);
        let period = int("periodSeconds", 10);
        let timeout = int("timeoutSeconds", 1);
        if timeout > period {
            problems.push(format!(
                "{file}: {c_path}.{probe_name}: timeoutSeconds {timeout} is longer than periodSeconds {period}"
            ));
        }
        if probe_name == "startupProbe" {
            let delay = int("initialDelaySeconds", 0);
            let threshold = int("failureThreshold", 3);
            let budget = delay.saturating_add(period.saturating_mul(threshold));
            if budget > STARTUP_BUDGET_SECS {
                problems.push(format!(
                    "{file}: {c_path}.startupProbe allows {budget} s (initialDelaySeconds {delay} + periodSeconds {period} x failureThreshold {threshold}); Cloud Run allows at most {STARTUP_BUDGET_SECS} s"
                ));
            }
        }
    }
}

/// Every `FROM` pinned by digest; the `CONNECTORS` list is the connectors.
fn check_dockerfile(text: &str, connectors: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut stages: Vec<String> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let mut words = line.split_whitespace();
        if !words.next().is_some_and(|w| w.eq_ignore_ascii_case("FROM")) {
            continue;
        }
        let mut words = words.skip_while(|w| w.starts_with("--"));
        let Some(image) = words.next() else {
            problems.push(format!("deploy/Dockerfile:{}: FROM names no image", n + 1));
            continue;
        };
        // A stage built earlier in this file is no image to pin.
        let earlier_stage = stages.contains(&image.to_ascii_lowercase());
        if words.next().is_some_and(|w| w.eq_ignore_ascii_case("AS"))
            && let Some(stage) = words.next()
        {
            stages.push(stage.to_ascii_lowercase());
        }
        if image == "scratch" || earlier_stage {
            continue;
        }
        let pinned = image.split_once("@sha256:").is_some_and(|(_, digest)| {
            digest.len() == 64
                && digest
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
        if !pinned {
            problems.push(format!(
                "deploy/Dockerfile:{}: FROM {image} is not pinned by digest (add @sha256:<64 hex>; `docker buildx imagetools inspect {image}` shows it)",
                n + 1
            ));
        }
    }
    match text
        .lines()
        .find_map(|l| l.trim().strip_prefix("ARG CONNECTORS="))
    {
        None => problems.push("deploy/Dockerfile: no ARG CONNECTORS=\"...\" line".to_owned()),
        Some(list) => {
            let listed: Vec<String> = list
                .trim_matches('"')
                .split_whitespace()
                .map(str::to_owned)
                .collect();
            compare_lists(
                "deploy/Dockerfile CONNECTORS",
                &listed,
                connectors,
                &mut problems,
            );
        }
    }
    problems
}

/// Terraform's connector list, and the Cloud Run resources it must declare.
fn check_terraform(files: &[(String, String)], connectors: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    let marked: Vec<&str> = files
        .iter()
        .flat_map(|(_, text)| text.lines())
        .filter(|l| l.contains("# gluefleet:connectors"))
        .collect();
    match marked.as_slice() {
        [line] => {
            let inside = line
                .split_once('[')
                .and_then(|(_, rest)| rest.split_once(']'))
                .map(|(inside, _)| inside);
            match inside {
                None => problems.push(format!(
                    "deploy/terraform: the `# gluefleet:connectors` line has no [...] list: {line}"
                )),
                Some(inside) => {
                    let listed: Vec<String> = inside
                        .split(',')
                        .map(|s| s.trim().trim_matches('"').to_owned())
                        .filter(|s| !s.is_empty())
                        .collect();
                    compare_lists("deploy/terraform connector list", &listed, connectors, &mut problems);
                }
            }
        }
        other => problems.push(format!(
            "deploy/terraform: {} lines are marked `# gluefleet:connectors`, expected one (the validation `cargo xtask new-connector` extends)",
            other.len()
        )),
    }
    for resource in [
        "google_cloud_run_v2_service",
        "google_cloud_run_v2_worker_pool",
    ] {
        let declared = files.iter().any(|(_, text)| {
            text.lines().any(|l| {
                l.trim_start()
                    .starts_with(&format!("resource \"{resource}\""))
            })
        });
        if !declared {
            problems.push(format!("deploy/terraform: no resource \"{resource}\""));
        }
    }
    problems
}

fn compare_lists(what: &str, listed: &[String], connectors: &[String], problems: &mut Vec<String>) {
    for c in connectors {
        if !listed.contains(c) {
            problems.push(format!("{what} lacks {c}"));
        }
    }
    for l in listed {
        if !connectors.contains(l) {
            problems.push(format!(
                "{what} names {l}, which is not a crate under connectors/"
            ));
        }
    }
}

#[test]
fn deploy_files_pass_their_checks() {
    let root = root();
    let connectors = connectors(&root);
    assert!(!connectors.is_empty(), "at least one connector");
    let cloudrun = root.join("deploy/cloudrun");
    let mut files: Vec<String> = std::fs::read_dir(&cloudrun)
        .expect("deploy/cloudrun/ exists")
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|n| n.ends_with(".yaml") || n.ends_with(".yml"))
        .collect();
    files.sort();
    let mut problems = check_file_set(&connectors, &files);
    let collector_file = "deploy/collector/config.yaml";
    let facts = match std::fs::read_to_string(root.join(collector_file)) {
        Err(e) => {
            problems.push(format!("{collector_file}: {e}"));
            None
        }
        Ok(text) => collector::facts(collector_file, &text)
            .map_err(|p| problems.extend(p))
            .ok(),
    };
    for c in &connectors {
        for kind in Kind::ALL {
            let file = format!("{c}{}", kind.suffix());
            if let Ok(text) = std::fs::read_to_string(cloudrun.join(&file)) {
                problems.extend(check_manifest(&file, c, kind, &text, facts.as_ref()));
            }
        }
    }
    match std::fs::read_to_string(cloudrun.join(INGEST_MANIFEST)) {
        Ok(text) => problems.extend(check_ingest_manifest(INGEST_MANIFEST, &text)),
        Err(e) => problems.push(format!("deploy/cloudrun/{INGEST_MANIFEST}: {e}")),
    }
    let dockerfile =
        std::fs::read_to_string(root.join("deploy/Dockerfile")).expect("deploy/Dockerfile");
    problems.extend(check_dockerfile(&dockerfile, &connectors));
    let mut tf: Vec<(String, String)> = std::fs::read_dir(root.join("deploy/terraform"))
        .expect("deploy/terraform/ exists")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "tf"))
        .filter_map(|p| {
            let text = std::fs::read_to_string(&p).ok()?;
            Some((p.display().to_string(), text))
        })
        .collect();
    tf.sort();
    problems.extend(check_terraform(&tf, &connectors));
    if let Some(facts) = &facts {
        problems.extend(collector::check_terraform(&tf, facts));
    }
    assert!(
        problems.is_empty(),
        "{} problem(s) in {}:\n{}",
        problems.len(),
        root.join("deploy").display(),
        problems.join("\n")
    );
}

/// A manifest that passes, for the broken variants below.
const GOOD_SERVICE: &str = r#"
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: gluefleet-demo
  annotations:
    run.googleapis.com/ingress: internal
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/minScale: "0"
        run.googleapis.com/execution-environment: gen1
    spec:
      serviceAccountName: gluefleet-demo@p.iam.gserviceaccount.com
      containerConcurrency: 80
      timeoutSeconds: 60
      containers:
        - name: gluefleet
          image: ${IMAGE}
          args: ["serve"]
          ports:
            - name: http1
              containerPort: 8080
          env:
            - name: GLUEFLEET_CONFIG
              value: /etc/gluefleet/config.toml
            - name: DEMO_SECRET
              valueFrom:
                secretKeyRef:
                  name: demo-secret
                  key: latest
            - name: OTEL_EXPORTER_OTLP_ENDPOINT
              value: http://localhost:4318
          resources:
            limits:
              cpu: "1"
              memory: 256Mi
          volumeMounts:
            - name: config
              mountPath: /etc/gluefleet
          startupProbe:
            httpGet:
              path: /readyz
              port: 8080
            periodSeconds: 5
            timeoutSeconds: 3
            failureThreshold: 24
        - name: collector
          image: us-docker.pkg.dev/cloud-ops-agents-artifacts/google-cloud-opentelemetry-collector/otelcol-google:0.159.0
          args: ["--config=/etc/otelcol-google/config.yaml"]
          volumeMounts:
            - name: collector-config
              mountPath: /etc/otelcol-google
          startupProbe:
            httpGet:
              path: /
              port: 13133
      volumes:
        - name: config
          secret:
            secretName: demo-config
            items:
              - key: latest
                path: config.toml
                mode: 292
        - name: collector-config
          secret:
            secretName: demo-collector-config
            items:
              - key: latest
                path: config.yaml
"#;

const GOOD_JOB: &str = r#"
apiVersion: run.googleapis.com/v1
kind: Job
metadata:
  name: gluefleet-demo
spec:
  template:
    spec:
      taskCount: 1
      parallelism: 1
      template:
        spec:
          timeoutSeconds: 3600
          maxRetries: 0
          containers:
            - name: gluefleet
              image: ${IMAGE}
              args: ["job", "--idle-exit", "10s", "--max-duration", "50m"]
              resources:
                limits:
                  memory: 512Mi
"#;

const GOOD_WORKER_POOL: &str = r#"
apiVersion: run.googleapis.com/v1
kind: WorkerPool
metadata:
  name: gluefleet-demo
  annotations:
    run.googleapis.com/launch-stage: BETA
    run.googleapis.com/manualInstanceCount: "1"
spec:
  template:
    spec:
      containers:
        - name: gluefleet
          image: ${IMAGE}
          args: ["run"]
          env:
            - name: OTEL_EXPORTER_OTLP_ENDPOINT
              value: http://localhost:4318
          resources:
            limits:
              memory: 512Mi
        - name: collector
          image: otelcol-google@sha256:0000000000000000000000000000000000000000000000000000000000000000
          args: ["--config=/etc/otel/config.yaml"]
          volumeMounts:
            - name: otel
              mountPath: /etc/otel/
          startupProbe:
            httpGet:
              port: 13133
      volumes:
        - name: otel
          secret:
            secretName: demo-collector-config
            items:
              - key: "3"
                path: config.yaml
"#;

/// The collector config the manifests are checked against: the real one.
const COLLECTOR_CONFIG: &str = include_str!("../../deploy/collector/config.yaml");

fn collector_facts() -> collector::Facts {
    collector::facts("config.yaml", COLLECTOR_CONFIG).expect("deploy/collector/config.yaml passes")
}

fn problems_of(kind: Kind, text: &str) -> Vec<String> {
    check_manifest("demo.yaml", "demo", kind, text, Some(&collector_facts()))
}

/// The one problem of `text`, which must name `needle`.
fn assert_one(kind: Kind, text: &str, needle: &str) {
    let problems = problems_of(kind, text);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(problems[0].contains(needle), "{needle:?} in {problems:#?}");
}

#[test]
fn good_manifests_pass() {
    assert_eq!(
        problems_of(Kind::Service, GOOD_SERVICE),
        Vec::<String>::new()
    );
    assert_eq!(problems_of(Kind::Job, GOOD_JOB), Vec::<String>::new());
    assert_eq!(
        problems_of(Kind::WorkerPool, GOOD_WORKER_POOL),
        Vec::<String>::new()
    );
}

#[test]
fn a_misspelt_field_is_named_with_its_schema() {
    assert_one(
        Kind::Service,
        &GOOD_SERVICE.replace("path: /readyz", "paht: /readyz"),
        "demo.yaml: spec.template.spec.containers[0].startupProbe.httpGet.paht is not a field of GoogleCloudRunV2HTTPGetAction",
    );
    assert_one(
        Kind::Service,
        &GOOD_SERVICE.replace("containerConcurrency", "containerConcurency"),
        "spec.template.spec.containerConcurency is not a field of V1RevisionSpec",
    );
    // The v2 spelling is not the v1 file's.
    assert_one(
        Kind::Service,
        &GOOD_SERVICE.replace("valueFrom:", "valueSource:"),
        "containers[0].env[1].valueSource is not a field of GoogleCloudRunV2EnvVar",
    );
    assert_one(
        Kind::Service,
        &GOOD_SERVICE.replace("secretName: demo-config", "secret: demo-config"),
        "spec.template.spec.volumes[0].secret.secret is not a field of GoogleCloudRunV2SecretVolumeSource",
    );
}

#[test]
fn a_wrong_type_is_named() {
    assert_one(
        Kind::Service,
        &GOOD_SERVICE.replace("containerPort: 8080", "containerPort: \"8080\""),
        "containers[0].ports[0].containerPort: expected integer, got string \"8080\"",
    );
    // Annotation values are strings: an unquoted 0 is an integer.
    let problems = problems_of(
        Kind::Service,
        &GOOD_SERVICE.replace("minScale: \"0\"", "minScale: 0"),
    );
    assert!(
        problems[0].contains("autoscaling.knative.dev/minScale: expected string, got number 0"),
        "{problems:#?}"
    );
}

#[test]
fn the_kind_and_its_mode_must_match() {
    assert_one(
        Kind::Service,
        &GOOD_SERVICE.replace("args: [\"serve\"]", "args: [\"run\"]"),
        "run mode Run, but a Service runs Serve",
    );
    assert_one(
        Kind::Job,
        &GOOD_JOB.replace("--idle-exit", "--idle-exits"),
        "are refused by gluefleet's command line",
    );
    assert_one(
        Kind::Job,
        &GOOD_JOB.replace("\"50m\"", "\"fifty minutes\""),
        "are refused by gluefleet's command line",
    );
    assert_one(
        Kind::WorkerPool,
        &GOOD_WORKER_POOL.replace("kind: WorkerPool", "kind: Service"),
        "kind is Service, expected WorkerPool",
    );
    assert_one(
        Kind::Service,
        &GOOD_SERVICE.replace("minScale: \"0\"", "minScale: \"1\""),
        "minScale is \"1\", expected \"0\"",
    );
    assert_one(
        Kind::Job,
        &GOOD_JOB.replace("gluefleet-demo", "gluefleet-other"),
        "metadata.name is gluefleet-other, expected gluefleet-demo",
    );
}

#[test]
fn cloud_run_limits_are_checked() {
    assert_one(
        Kind::Service,
        &GOOD_SERVICE.replace("failureThreshold: 24", "failureThreshold: 49"),
        "startupProbe allows 245 s",
    );
    assert_one(
        Kind::Service,
        &GOOD_SERVICE.replace("timeoutSeconds: 3\n", "timeoutSeconds: 6\n"),
        "timeoutSeconds 6 is longer than periodSeconds 5",
    );
    assert_one(
        Kind::Job,
        &GOOD_JOB.replace("memory: 512Mi", "memory: 256Mi"),
        "256Mi is below 512Mi",
    );
    assert_one(
        Kind::Service,
        &GOOD_SERVICE.replace("execution-environment: gen1", "execution-environment: gen2"),
        "256Mi is below 512Mi",
    );
    assert_one(
        Kind::Service,
        &GOOD_SERVICE.replace("name: DEMO_SECRET", "name: PORT"),
        "env[1] sets PORT",
    );
}

#[test]
fn broken_yaml_is_reported_not_panicked_on() {
    assert_one(Kind::Job, "spec: [unclosed", "demo.yaml: not YAML");
    assert_one(Kind::Job, "a: 1\n---\nb: 2\n", "holds 2 YAML documents");
}

#[test]
fn missing_and_extra_manifests_are_named() {
    let connectors = vec!["alpha".to_owned(), "beta".to_owned()];
    let mut files: Vec<String> = ["alpha", "beta"]
        .iter()
        .flat_map(|c| Kind::ALL.map(|k| format!("{c}{}", k.suffix())))
        .collect();
    assert_eq!(check_file_set(&connectors, &files), Vec::<String>::new());
    files.retain(|f| f != "beta.worker-pool.yaml");
    files.push("gamma.service.yaml".to_owned());
    assert_eq!(
        check_file_set(&connectors, &files),
        [
            "deploy/cloudrun/beta.worker-pool.yaml is missing".to_owned(),
            "deploy/cloudrun/gamma.service.yaml is not a manifest of any connector (expected <connector>.service.yaml, .worker-pool.yaml or .job.yaml)".to_owned(),
        ]
    );
}

#[test]
fn an_unpinned_base_image_is_named() {
    let connectors = vec!["alpha".to_owned()];
    let pinned = format!(
        "ARG CONNECTORS=\"alpha\"\nFROM rust:1.95-bookworm@sha256:{} AS build\nFROM --platform=linux/amd64 gcr.io/distroless/cc-debian12:nonroot@sha256:{}\nCOPY --from=build /a /a\n",
        "a".repeat(64),
        "0".repeat(64)
    );
    assert_eq!(check_dockerfile(&pinned, &connectors), Vec::<String>::new());
    let problems = check_dockerfile(
        &pinned.replace(&format!("@sha256:{}", "0".repeat(64)), ""),
        &connectors,
    );
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].starts_with(
            "deploy/Dockerfile:3: FROM gcr.io/distroless/cc-debian12:nonroot is not pinned by digest"
        ),
        "{problems:#?}"
    );
    // A short digest is no digest; a later stage may start FROM an earlier one.
    let short = pinned.replace(&"a".repeat(64), "abc");
    assert!(
        check_dockerfile(&short, &connectors)[0]
            .contains("FROM rust:1.95-bookworm@sha256:abc is not pinned")
    );
    let staged = format!("{pinned}FROM build AS again\n");
    assert_eq!(check_dockerfile(&staged, &connectors), Vec::<String>::new());
    let problems = check_dockerfile(&pinned, &["alpha".to_owned(), "beta".to_owned()]);
    assert_eq!(problems, ["deploy/Dockerfile CONNECTORS lacks beta"]);
}

#[test]
fn terraform_must_list_every_connector_and_declare_both_resources() {
    let connectors = vec!["alpha".to_owned(), "beta".to_owned()];
    let main = "resource \"google_cloud_run_v2_service\" \"push\" {}\nresource \"google_cloud_run_v2_worker_pool\" \"pull\" {}\n".to_owned();
    let variables =
        "    condition = contains([\"alpha\", \"beta\"], var.connector) # gluefleet:connectors\n"
            .to_owned();
    let files = |main: &str, variables: &str| {
        vec![
            ("main.tf".to_owned(), main.to_owned()),
            ("variables.tf".to_owned(), variables.to_owned()),
        ]
    };
    assert_eq!(
        check_terraform(&files(&main, &variables), &connectors),
        Vec::<String>::new()
    );
    assert_eq!(
        check_terraform(
            &files(&main, &variables.replace(", \"beta\"", "")),
            &connectors
        ),
        ["deploy/terraform connector list lacks beta"]
    );
    assert_eq!(
        check_terraform(
            &files(&main.replace("worker_pool", "job"), &variables),
            &connectors
        ),
        ["deploy/terraform: no resource \"google_cloud_run_v2_worker_pool\""]
    );
    assert!(
        check_terraform(
            &files(&main, &variables.replace(" # gluefleet:connectors", "")),
            &connectors
        )[0]
        .contains("0 lines are marked")
    );
}

#[test]
fn the_collector_config_is_read_for_its_ports() {
    assert_eq!(
        collector_facts(),
        collector::Facts {
            otlp_http_port: 4318,
            health_port: 13133,
            scrape_targets: vec!["localhost:8080".to_owned()],
            metrics_path: "/metrics".to_owned(),
        }
    );
    let problems = |text: &str| collector::facts("c.yaml", text).expect_err("refused");
    // A pipeline naming what is not defined; the collector would refuse it.
    assert_eq!(
        problems(&COLLECTOR_CONFIG.replace(
            "exporters: [googlecloud]",
            "exporters: [googlecloud, debug]"
        )),
        ["c.yaml: service.pipelines.traces.exporters names debug, which exporters does not define"]
    );
    assert_eq!(
        problems(&COLLECTOR_CONFIG.replace(
            "extensions: [health_check]",
            "extensions: [health_check, pprof]"
        )),
        ["c.yaml: service.extensions names pprof, which extensions does not define"]
    );
    // Spans come only from the container beside it.
    assert!(
        problems(&COLLECTOR_CONFIG.replace("endpoint: localhost:4318", "endpoint: 0.0.0.0:4318"))
            [0]
        .contains("listens on 0.0.0.0"),
    );
    assert!(
        problems(&COLLECTOR_CONFIG.replace("receivers: [prometheus]", "receivers: [otlp]"))[0]
            .contains("service.pipelines.metrics does not receive from prometheus"),
    );
}

#[test]
fn the_collector_and_the_worker_must_agree() {
    assert_one(
        Kind::Service,
        &GOOD_SERVICE.replace(
            "value: http://localhost:4318",
            "value: http://localhost:4317",
        ),
        "OTEL_EXPORTER_OTLP_ENDPOINT is http://localhost:4317, expected http://localhost:4318",
    );
    assert_one(
        Kind::Service,
        &GOOD_SERVICE.replace("port: 13133", "port: 4318"),
        "startupProbe.httpGet.port is 4318, but the collector's health_check listens on 13133",
    );
    // The worker moved to another port: the scrape misses it.
    assert_one(
        Kind::Service,
        &GOOD_SERVICE.replace("port: 8080", "port: 9090"),
        "the collector scrapes [\"localhost:8080\"]/metrics, not the worker's localhost:9090/metrics",
    );
    assert_one(
        Kind::WorkerPool,
        &GOOD_WORKER_POOL.replace("path: config.yaml", "path: collector.yaml"),
        "args --config=/etc/otel/config.yaml: no secret volume mounted at /etc/otel holds config.yaml",
    );
    assert_one(
        Kind::Service,
        &GOOD_SERVICE.replace("otelcol-google:0.159.0", "otelcol-google:latest"),
        "is not pinned to a release",
    );
    // Without the collector the dashboard is empty: it is required.
    let alone = GOOD_WORKER_POOL
        .split("        - name: collector")
        .next()
        .expect("the worker pool has a collector");
    assert_one(
        Kind::WorkerPool,
        alone,
        "containers has 1 containers, expected gluefleet and the collector beside it",
    );
    assert_one(
        Kind::WorkerPool,
        &GOOD_WORKER_POOL.replace("- name: gluefleet", "- name: worker"),
        "containers[0].name is worker, expected gluefleet",
    );
}

#[test]
fn terraform_runs_the_same_collector() {
    let tf = |text: &str| vec![("collector.tf".to_owned(), text.to_owned())];
    let good = "  collector_env = local.collector ? [\n    { name = \"OTEL_EXPORTER_OTLP_ENDPOINT\", value = \"http://localhost:4318\", secret = null },\n  ] : []\n  collector_probe = {\n    path = \"/\"\n    port = 13133\n  }\n  secret_data = file(\"${path.module}/../collector/config.yaml\")\n";
    let facts = collector_facts();
    assert_eq!(
        collector::check_terraform(&tf(good), &facts),
        Vec::<String>::new()
    );
    assert!(
        collector::check_terraform(&tf(&good.replace("4318", "4317")), &facts)[0].contains(
            "OTEL_EXPORTER_OTLP_ENDPOINT is not set with value = \"http://localhost:4318\""
        )
    );
    assert_eq!(
        collector::check_terraform(&tf(&good.replace("port = 13133", "port = 8080")), &facts),
        [
            "deploy/terraform: local.collector_probe.port is 8080, but the collector's health_check listens on 13133"
        ]
    );
    assert_eq!(
        collector::check_terraform(
            &tf(&good.replace("collector/config.yaml", "otel.yaml")),
            &facts
        )
        .len(),
        1
    );
}

#[test]
fn the_ingest_manifest_is_checked_too() {
    let text = include_str!("../../deploy/cloudrun/ingest.service.yaml");
    assert_eq!(check_ingest_manifest("i.yaml", text), Vec::<String>::new());
    let problems = check_ingest_manifest(
        "i.yaml",
        &text.replace("path: ingest.toml", "path: config.toml"),
    );
    assert_eq!(
        problems,
        [
            "i.yaml: spec.template.spec.containers[0].args --config /etc/gluefleet/ingest.toml: no secret volume mounted at /etc/gluefleet holds ingest.toml"
        ]
    );
    let problems = check_ingest_manifest(
        "i.yaml",
        &text.replace("containerConcurrency", "containerConcurency"),
    );
    assert!(
        problems[0].contains("containerConcurency is not a field of V1RevisionSpec"),
        "{problems:?}"
    );
}
