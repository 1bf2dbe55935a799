variable "project_id" {
  description = "Project that holds the source topic and receives every resource created here."
  type        = string
}

variable "region" {
  description = "Cloud Run region, e.g. europe-west1."
  type        = string
}

variable "connector" {
  description = "Connector name: the crate connectors/<connector>, the binary gluefleet-<connector>. Also names the subscription, dead-letter topic, service accounts and the Cloud Run service, worker pool or job."
  type        = string

  validation {
    # The service account id gluefleet-<connector> may have at most 30
    # characters, which leaves 20 for the connector name.
    condition     = can(regex("^[a-z]([-a-z0-9]{0,18}[a-z0-9])?$", var.connector))
    error_message = "connector must be 1-20 characters of a-z, 0-9 and '-', start with a letter and not end with '-'."
  }

  validation {
    # The connectors this repository builds: a typo fails at plan, not as an
    # image that does not exist. `cargo xtask new-connector` adds to it.
    condition     = contains(["firestore", "legacy-rest", "salesforce", "sap-odata", "workspace"], var.connector) # gluefleet:connectors
    error_message = "connector must name a crate under connectors/ (see the list in this validation)."
  }
}

variable "source_topic" {
  description = "Name (not path) of the existing topic, in project_id, that this connector consumes."
  type        = string
}

variable "results_topics" {
  description = "Topic ids (in project_id) the config's routes report to (`results = \"TOPIC\"`, docs/PUBLISHING.md#results). Each must already exist; the worker gets roles/pubsub.publisher on each and roles/pubsub.viewer so `check` can read it. Without the grant every finished event is nacked until it is made."
  type        = list(string)
  default     = []
}

variable "image" {
  description = "Container image built from deploy/Dockerfile with CONNECTOR=<connector>. Prefer a digest (…@sha256:…) so each apply deploys exactly what was built."
  type        = string
}

variable "max_delivery_attempts" {
  description = "Dead-letter policy threshold on the subscription (5-100). Keep the worker's own configured maximum equal to it, so the worker dead-letters first and attaches the gluefleet-* error attributes."
  type        = number
  default     = 10

  validation {
    condition     = var.max_delivery_attempts >= 5 && var.max_delivery_attempts <= 100
    error_message = "max_delivery_attempts must be between 5 and 100 (Pub/Sub limits)."
  }
}

variable "enable_exactly_once_delivery" {
  description = "Exactly-once delivery on the subscription. Off by default: it lowers throughput and raises ack latency (the worker waits for each ack to be confirmed), and the idempotency ledger still has to catch duplicate publishes."
  type        = bool
  default     = false
}

variable "idempotency_store" {
  description = "Where the worker keeps idempotency claims; must match [delivery.idempotency] store in its config. \"memory\" (default): per process, nothing to create. \"firestore\": the ledger shared by every instance; turns on the TTL policy on expireAt of the ledger collection and grants roles/datastore.user."
  type        = string
  default     = "memory"

  validation {
    condition     = contains(["memory", "firestore"], var.idempotency_store)
    error_message = "idempotency_store must be \"memory\" or \"firestore\"."
  }
}

variable "idempotency_collection" {
  description = "Ledger collection id, when idempotency_store = \"firestore\". Defaults to gluefleet-idempotency-<connector>, the worker's own default; set both together if you change it."
  type        = string
  default     = null
}

variable "idempotency_database" {
  description = "Firestore database of the ledger ([delivery.idempotency] database). It must already exist, in Native mode."
  type        = string
  default     = "(default)"
}

variable "firestore_access" {
  description = "Grant the worker roles/datastore.user on project_id even without the ledger. The grant is made anyway for the ledger and for connector = \"firestore\"."
  type        = bool
  default     = false
}

variable "config_secret" {
  description = "Secret Manager secret (in project_id) holding the connector's whole TOML config. Defaults to gluefleet-<connector>-config. Terraform never reads or writes the value."
  type        = string
  default     = null
}

variable "config_secret_version" {
  description = "Version of config_secret mounted at /etc/gluefleet/config.toml."
  type        = string
  default     = "latest"
}

variable "secret_env" {
  description = <<-EOT
    Environment variables filled from Secret Manager, keyed by variable name.
    The TOML config refers to them as $${NAME}. Example:
      { LEGACY_REST_CLIENT_SECRET = { secret = "gluefleet-legacy-rest-client-secret" } }
    Env secrets are read at instance start; pin version to a number when
    revisions must be reproducible.
  EOT
  type = map(object({
    secret  = string
    version = optional(string, "latest")
  }))
  default = {}
}

variable "mode" {
  description = <<-EOT
    How the connector runs on Cloud Run; one apply deploys one of them.
    "worker_pool" (default): a Cloud Run worker pool running `run`
      (streaming pull), `instances` instances.
    "push": a Cloud Run service running `serve` that Pub/Sub pushes to (the
      source subscription becomes a push subscription with an OIDC token);
      scales to zero, at most `max_instances` instances.
    "job": a Cloud Run job running `job --idle-exit 10s --max-duration 50m`,
      which drains the subscription and exits; run it on a schedule
      (deploy/README.md).
    "none": only Pub/Sub, IAM and the service account; deploy the worker with
      gcloud and the YAML in deploy/cloudrun.
  EOT
  type        = string
  default     = "worker_pool"

  validation {
    condition     = contains(["push", "worker_pool", "job", "none"], var.mode)
    error_message = "mode must be \"push\", \"worker_pool\", \"job\" or \"none\"."
  }
}

variable "instances" {
  description = "mode = \"worker_pool\": the worker pool's instance count (manual scaling; Cloud Run does not scale a worker pool by itself). 0 stops the connector, and the backlog waits on the subscription. Rate limits are per instance: for a vendor quota Q, configure a per-instance limit of Q / instances."
  type        = number
  default     = 1

  validation {
    condition     = var.instances >= 0 && floor(var.instances) == var.instances
    error_message = "instances must be a whole number, 0 or more."
  }
}

variable "max_instances" {
  description = "mode = \"push\": the push service's maximum instance count (it scales from zero as pushes arrive). Rate limits are per instance: for a vendor quota Q, configure a per-instance limit of Q / max_instances."
  type        = number
  default     = 10

  validation {
    condition     = var.max_instances >= 1
    error_message = "max_instances must be at least 1."
  }
}

variable "push_concurrency" {
  description = "mode = \"push\": max_instance_request_concurrency of the push service, how many pushes one instance handles at once. Keep the worker's pubsub.concurrency (default 64) equal to it: more requests would only wait inside the instance, against push.answer_within."
  type        = number
  default     = 64

  validation {
    condition     = var.push_concurrency >= 1 && var.push_concurrency <= 1000 && floor(var.push_concurrency) == var.push_concurrency
    error_message = "push_concurrency must be a whole number from 1 to 1000 (Cloud Run's limit)."
  }
}

variable "deletion_protection" {
  description = "Refuse to destroy the Cloud Run service, worker pool or job from Terraform (also when mode changes). Set false, and apply, before a deliberate destroy or a change of mode."
  type        = bool
  default     = true
}

variable "labels" {
  description = "Extra labels for every labelled resource."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------------------
# Monitoring (monitoring.tf): alert policies and a dashboard per connector.
# What each alert means and what to do: docs/OPERATIONS.md.
# ---------------------------------------------------------------------------

variable "monitoring" {
  description = "Create the connector's Cloud Monitoring alert policies and dashboard (monitoring.tf), and grant the worker roles/monitoring.metricWriter for the collector sidecar (var.collector). false creates none of them."
  type        = bool
  default     = true
}

variable "collector" {
  description = "Run the OpenTelemetry collector (collector.tf, deploy/collector/config.yaml) beside the worker in mode = \"push\" and \"worker_pool\": the worker's spans go to Cloud Trace and its /metrics to Managed Service for Prometheus, which the dashboard and the error-ratio alert need. It adds 1 vCPU and 256Mi per instance. false: no spans are exported and the worker's metrics are not collected; logs and the Pub/Sub alerts are unaffected. A job never runs it."
  type        = bool
  default     = true
}

variable "collector_image" {
  description = "The collector's image: the Google-built OpenTelemetry collector, pinned to a release (or a digest). It must include the otlp and prometheus receivers, the googlecloud and googlemanagedprometheus exporters and the health_check extension that deploy/collector/config.yaml uses."
  type        = string
  default     = "us-docker.pkg.dev/cloud-ops-agents-artifacts/google-cloud-opentelemetry-collector/otelcol-google:0.159.0"

  validation {
    condition     = can(regex("(@sha256:[0-9a-f]{64}|:[A-Za-z0-9_][A-Za-z0-9_.-]*)$", var.collector_image)) && !endswith(var.collector_image, ":latest")
    error_message = "collector_image must be pinned to a release tag (not latest) or a digest."
  }
}

variable "alert_notification_channels" {
  description = "Notification channels (full names, projects/P/notificationChannels/ID) every alert policy notifies. Empty (the default): the policies open incidents in the console and notify nobody."
  type        = list(string)
  default     = []
}

variable "alert_backlog_messages" {
  description = "Backlog alert: fires when the source subscription has more undelivered messages than this for 10 minutes (2 hours with mode = \"job\", whose backlog waits for the next execution by design)."
  type        = number
  default     = 1000

  validation {
    condition     = var.alert_backlog_messages >= 0
    error_message = "alert_backlog_messages must be 0 or more."
  }
}

variable "alert_oldest_unacked_age_seconds" {
  description = "Oldest-message alert: fires when the oldest unacked message on the source subscription is older than this many seconds. Default (null): 600, or 7200 with mode = \"job\" (an hourly job leaves messages waiting up to an hour by design). Retried and rate-limited messages stay unacked between attempts, so this also catches a target failing for that long."
  type        = number
  default     = null

  validation {
    condition     = var.alert_oldest_unacked_age_seconds == null || try(var.alert_oldest_unacked_age_seconds >= 60, false)
    error_message = "alert_oldest_unacked_age_seconds must be null or at least 60."
  }
}

variable "alert_dead_letters" {
  description = "Dead-letter alert: fires when more than this many messages reached the dead-letter topic within 5 minutes, whether the worker or Pub/Sub's dead-letter policy put them there. 0 (the default): any dead letter."
  type        = number
  default     = 0

  validation {
    condition     = var.alert_dead_letters >= 0
    error_message = "alert_dead_letters must be 0 or more."
  }
}

variable "alert_error_ratio" {
  description = "Error-ratio alert: fires when more than this share of the messages the worker settled over 10 minutes were dead-lettered, nacked (except nacks at shutdown) or failed to dead-letter. 0.05 = 5 %. Needs the worker's metrics in Cloud Monitoring (the collector sidecar, var.collector)."
  type        = number
  default     = 0.05

  validation {
    condition     = var.alert_error_ratio > 0 && var.alert_error_ratio < 1
    error_message = "alert_error_ratio must be between 0 and 1 (exclusive)."
  }
}

variable "alert_runbook_url" {
  description = "Where the alerts and the dashboard link to the runbook; each alert appends its section's anchor. Set it to the web address of docs/OPERATIONS.md in your repository host so the links in notifications open."
  type        = string
  default     = "docs/OPERATIONS.md"
}
