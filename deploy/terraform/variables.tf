variable "project_id" {
  description = "Project that holds the source topic and receives every resource created here."
  type        = string
}

variable "region" {
  description = "Cloud Run region, e.g. europe-west1."
  type        = string
}

variable "connector" {
  description = "Connector name: the crate connectors/<connector>, the binary gluefleet-<connector>. Also names the subscription, dead-letter topic, service account and service."
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

variable "deploy_service" {
  description = "Create the Cloud Run service. Set false when the connector runs as a Cloud Run job (deploy/cloudrun/<connector>.job.yaml) or is deployed with `gcloud run services replace`."
  type        = bool
  default     = true
}

variable "min_instances" {
  description = "Minimum instances. Keep at least 1: Cloud Run starts instances from zero only for HTTP requests, and a pull subscriber gets none. For scale-to-zero use the job mode."
  type        = number
  default     = 1

  validation {
    condition     = var.min_instances >= 0
    error_message = "min_instances cannot be negative."
  }
}

variable "max_instances" {
  description = "Maximum instances. Rate limits are per instance: for a vendor quota Q, configure a per-instance limit of Q / max_instances."
  type        = number
  default     = 10

  validation {
    condition     = var.max_instances >= 1
    error_message = "max_instances must be at least 1."
  }
}

variable "deletion_protection" {
  description = "Refuse to destroy the Cloud Run service from Terraform. Set false before a deliberate destroy."
  type        = bool
  default     = true
}

variable "labels" {
  description = "Extra labels for every labelled resource."
  type        = map(string)
  default     = {}
}
