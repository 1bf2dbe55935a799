# The OpenTelemetry collector beside the worker, behind var.collector, in the
# push service and the worker pool (a job runs none: its record is its
# summary line). The same sidecar as the `collector` container of
# deploy/cloudrun/<connector>.{service,worker-pool}.yaml:
#
#   spans    gluefleet -> OTLP/HTTP localhost:4318 -> Cloud Trace
#   metrics  collector scrapes localhost:8080/metrics every 30 s -> Managed
#            Service for Prometheus (the dashboard and the error-ratio
#            alert in monitoring.tf read them)
#
# Its config is deploy/collector/config.yaml, one file for every connector,
# stored here as this connector's secret and mounted into the container.
# docs/OPERATIONS.md#sidecar says what it costs and what differs by mode.

locals {
  collector = var.collector && contains(["push", "worker_pool"], var.mode)

  collector_config_secret = "${local.name}-collector-config"

  # The worker's environment gains the collector's address only where one
  # runs: with OTEL_EXPORTER_OTLP_ENDPOINT unset the worker exports no spans.
  collector_env = local.collector ? [
    { name = "OTEL_EXPORTER_OTLP_ENDPOINT", value = "http://localhost:4318", secret = null, version = null },
  ] : []

  # The collector's startup probe: its health_check extension (13133 in
  # config.yaml). 12 x 5 s = 60 s; a config the collector refuses fails the
  # revision at deploy time.
  collector_probe = {
    path              = "/"
    port              = 13133
    period_seconds    = 5
    timeout_seconds   = 3
    failure_threshold = 12
  }
}

resource "google_secret_manager_secret" "collector_config" {
  count = local.collector ? 1 : 0

  project   = var.project_id
  secret_id = local.collector_config_secret
  labels    = local.labels

  replication {
    auto {}
  }
}

# A changed config.yaml is a new version; the next revision mounts it
# ("latest" below). Running instances keep the one they started with.
resource "google_secret_manager_secret_version" "collector_config" {
  count = local.collector ? 1 : 0

  secret      = google_secret_manager_secret.collector_config[0].id
  secret_data = file("${path.module}/../collector/config.yaml")
}

resource "google_secret_manager_secret_iam_member" "worker_collector_config_accessor" {
  count = local.collector ? 1 : 0

  project   = var.project_id
  secret_id = google_secret_manager_secret.collector_config[0].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = local.worker_member
}

# The collector writes spans as the worker's service account. (Its metrics
# need roles/monitoring.metricWriter: monitoring.tf grants it.) Granted on
# the project: Cloud Trace has no narrower resource.
resource "google_project_iam_member" "worker_trace_agent" {
  count = local.collector ? 1 : 0

  project = var.project_id
  role    = "roles/cloudtrace.agent"
  member  = local.worker_member
}
