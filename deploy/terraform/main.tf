# Infrastructure for one gluefleet connector: its subscription on an existing
# source topic, a dead-letter topic with an inspection subscription, a
# dedicated service account with the least IAM it needs, (optionally) the
# Cloud Run service, when the connector uses Firestore, its Firestore
# access and the idempotency ledger's TTL policy, and, for the workspace
# connector, the grant that lets the worker sign its own domain-wide
# delegation assertions (keyless). Apply once per connector,
# each with its own state (a workspace or a backend prefix per connector).
#
# Secrets are not created here, so their values never enter Terraform state:
# create them with gcloud first (deploy/README.md), then list them in
# config_secret and secret_env.

locals {
  name = "gluefleet-${var.connector}"

  labels = merge(
    {
      app                 = "gluefleet"
      gluefleet-connector = var.connector
    },
    var.labels,
  )

  config_secret = coalesce(var.config_secret, "${local.name}-config")

  # Every secret the worker reads: the config volume and each env secret.
  secret_ids = toset(concat(
    [local.config_secret],
    [for s in values(var.secret_env) : s.secret],
  ))

  worker_member = "serviceAccount:${google_service_account.worker.email}"

  # Pub/Sub itself forwards messages to the dead-letter topic when
  # max_delivery_attempts is reached, acting as this service agent.
  pubsub_agent_member = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"

  # The shared idempotency ledger ([delivery.idempotency] store = "firestore").
  use_ledger = var.idempotency_store == "firestore"
  # Must match [delivery.idempotency] collection, whose default is the same.
  idempotency_collection = coalesce(var.idempotency_collection, "gluefleet-idempotency-${var.connector}")

  # roles/datastore.user: for the ledger, for the firestore connector, or on
  # request.
  firestore_access = local.use_ledger || var.connector == "firestore" || var.firestore_access

  # The workspace connector acts as each event's user through domain-wide
  # delegation, keyless: it signs the assertions with the IAM Credentials
  # API's signJwt as its own service account.
  signs_as_itself = var.connector == "workspace"

  # Full resource names: the worker gets these through its environment.
  worker_env = {
    GOOGLE_CLOUD_PROJECT        = var.project_id
    GLUEFLEET_CONFIG            = "/etc/gluefleet/config.toml"
    GLUEFLEET_SUBSCRIPTION      = google_pubsub_subscription.source.id
    GLUEFLEET_DEAD_LETTER_TOPIC = google_pubsub_topic.dead_letter.id
  }
}

data "google_project" "this" {
  project_id = var.project_id
}

data "google_pubsub_topic" "source" {
  project = var.project_id
  name    = var.source_topic
}

# ---------------------------------------------------------------------------
# Pub/Sub
# ---------------------------------------------------------------------------

# Receives permanent failures (published by the worker, then acked) and
# messages that reached max_delivery_attempts (published by the worker, or by
# Pub/Sub as a second line of defence).
resource "google_pubsub_topic" "dead_letter" {
  project = var.project_id
  name    = "${local.name}-dead-letter"
  labels  = local.labels
}

# A topic without a subscription drops what is published to it, so the
# dead-letter topic gets one for inspection and replay (deploy/README.md).
resource "google_pubsub_subscription" "dead_letter_inspect" {
  project = var.project_id
  name    = "${local.name}-dead-letter-inspect"
  topic   = google_pubsub_topic.dead_letter.id
  labels  = local.labels

  ack_deadline_seconds       = 60
  message_retention_duration = "604800s" # 7 days
  # Acked messages stay for the same 7 days, so a replay or an inspection
  # that acked too much can be undone with `gcloud pubsub subscriptions seek`.
  retain_acked_messages = true

  expiration_policy {
    ttl = "" # never expire, however long nothing fails
  }
}

resource "google_pubsub_subscription" "source" {
  project = var.project_id
  name    = local.name
  topic   = data.google_pubsub_topic.source.id
  labels  = local.labels

  # The initial lease. The worker extends it while a message is in work or
  # held for a delayed nack; a crashed worker's messages come back once their
  # last lease runs out.
  ack_deadline_seconds         = 60
  message_retention_duration   = "604800s" # 7 days
  enable_exactly_once_delivery = var.enable_exactly_once_delivery

  expiration_policy {
    ttl = "" # never expire, even if the worker is stopped for a long time
  }

  # Second line of defence behind the worker's own delayed nacks: Pub/Sub
  # also spaces out redeliveries after a nack or an expired lease.
  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  # Needed for delivery_attempt to be populated on received messages. The
  # worker dead-letters on its own when delivery_attempt reaches its
  # configured maximum; this policy catches messages whose last attempt never
  # reached the worker's decision (a crash, an expired lease).
  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.max_delivery_attempts
  }

  # The service agent must be able to publish and ack before the policy works.
  depends_on = [
    google_pubsub_topic_iam_member.pubsub_agent_dead_letter_publisher,
  ]
}

# ---------------------------------------------------------------------------
# Identity and IAM
# ---------------------------------------------------------------------------

resource "google_service_account" "worker" {
  project      = var.project_id
  account_id   = local.name
  display_name = "gluefleet ${var.connector} worker"
  description  = "Runs gluefleet-${var.connector}: pulls ${local.name}, publishes to ${local.name}-dead-letter."
}

# Pull, ack, nack and extend leases.
resource "google_pubsub_subscription_iam_member" "worker_subscriber" {
  project      = var.project_id
  subscription = google_pubsub_subscription.source.name
  role         = "roles/pubsub.subscriber"
  member       = local.worker_member
}

# /readyz and `check` read the subscription (subscriptions.get), which the
# subscriber role does not allow.
resource "google_pubsub_subscription_iam_member" "worker_viewer" {
  project      = var.project_id
  subscription = google_pubsub_subscription.source.name
  role         = "roles/pubsub.viewer"
  member       = local.worker_member
}

# The worker dead-letters permanent failures itself.
resource "google_pubsub_topic_iam_member" "worker_dead_letter_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.dead_letter.name
  role    = "roles/pubsub.publisher"
  member  = local.worker_member
}

# The config volume and the env secrets. Cloud Run checks this access when a
# revision is deployed and refuses the revision without it.
resource "google_secret_manager_secret_iam_member" "worker_secret_accessor" {
  for_each = local.secret_ids

  project   = var.project_id
  secret_id = each.value
  role      = "roles/secretmanager.secretAccessor"
  member    = local.worker_member
}

# Pub/Sub's dead_letter_policy publishes to the dead-letter topic and acks on
# the source subscription as the project's Pub/Sub service agent. Without
# these two grants the policy silently does nothing.
resource "google_pubsub_topic_iam_member" "pubsub_agent_dead_letter_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.dead_letter.name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_agent_member
}

resource "google_pubsub_subscription_iam_member" "pubsub_agent_subscriber" {
  project      = var.project_id
  subscription = google_pubsub_subscription.source.name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent_member
}

# Keyless domain-wide delegation ([auth] kind = "google_delegated" with no
# key): the worker calls signJwt on its own service account, which needs
# roles/iam.serviceAccountTokenCreator on that account, granted on the
# account itself rather than on the project so it can sign as nothing else.
# Domain-wide delegation itself (the account's client id and scopes) is
# granted in the Workspace Admin console, which Terraform does not reach;
# see connectors/workspace/README.md.
resource "google_service_account_iam_member" "worker_token_creator_self" {
  count = local.signs_as_itself ? 1 : 0

  service_account_id = google_service_account.worker.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.worker_member
}

# ---------------------------------------------------------------------------
# Cloud Run service (`run` mode); same settings as
# deploy/cloudrun/<connector>.service.yaml
# ---------------------------------------------------------------------------

resource "google_cloud_run_v2_service" "worker" {
  count = var.deploy_service ? 1 : 0

  project             = var.project_id
  location            = var.region
  name                = local.name
  labels              = local.labels
  deletion_protection = var.deletion_protection

  # Nothing calls the service; work arrives by pull. Internal ingress and no
  # run.invoker binding keep the URL closed. Probes are unaffected.
  ingress = "INGRESS_TRAFFIC_INTERNAL_ONLY"

  template {
    labels          = local.labels
    service_account = google_service_account.worker.email

    # 256Mi is below the second generation's 512Mi minimum; the first
    # generation allows it and suits a network-bound worker.
    execution_environment = "EXECUTION_ENVIRONMENT_GEN1"

    # Caps concurrent HTTP requests, and this service receives none (probes
    # do not count). Message concurrency is set in the gluefleet config.
    max_instance_request_concurrency = 80

    # Cloud Run has no termination grace setting: SIGTERM, then SIGKILL 10 s
    # later. gluefleet drains for at most 8 s (--drain-timeout) and leaves
    # about 2 s to flush acks, nacks and logs; unfinished messages are not
    # acked and Pub/Sub redelivers them.

    scaling {
      # From zero, Cloud Run starts an instance only for an HTTP request, so
      # with 0 the worker would stop consuming once scaled in.
      min_instance_count = var.min_instances
      # Rate limits are per instance: per-instance limit = quota / this.
      max_instance_count = var.max_instances
    }

    containers {
      name  = "gluefleet"
      image = var.image
      args  = ["run"]

      # Cloud Run sets PORT from this (PORT itself is reserved).
      ports {
        name           = "http1"
        container_port = 8080
      }

      resources {
        limits = {
          cpu    = "1"
          memory = "256Mi"
        }
        # CPU always allocated. Throttled CPU between requests would stall
        # streaming pull, lease extension, delayed nacks and token refresh,
        # which all happen outside any HTTP request.
        cpu_idle          = false
        startup_cpu_boost = true
      }

      dynamic "env" {
        for_each = local.worker_env
        content {
          name  = env.key
          value = env.value
        }
      }

      # Credentials for ${VAR} interpolation in the TOML config.
      dynamic "env" {
        for_each = var.secret_env
        content {
          name = env.key
          value_source {
            secret_key_ref {
              secret  = env.value.secret
              version = env.value.version
            }
          }
        }
      }

      # The directory; the volume item below names the file config.toml.
      volume_mounts {
        name       = "config"
        mount_path = "/etc/gluefleet"
      }

      # Not started, and no deploy success, until the subscription is
      # reachable with valid credentials. 24 x 5 s = 120 s (maximum 240 s).
      startup_probe {
        initial_delay_seconds = 0
        period_seconds        = 5
        timeout_seconds       = 3
        failure_threshold     = 24
        http_get {
          path = "/readyz"
          port = 8080
        }
      }

      # Process health only: an outage of the external system must not
      # restart instances.
      liveness_probe {
        period_seconds    = 15
        timeout_seconds   = 3
        failure_threshold = 3
        http_get {
          path = "/healthz"
          port = 8080
        }
      }
    }

    volumes {
      name = "config"
      secret {
        secret = local.config_secret
        items {
          version = var.config_secret_version
          path    = "config.toml"
          mode    = 292 # 0444: the container runs as uid 65532
        }
      }
    }
  }

  # Cloud Run checks secret access at deploy time, and the startup probe
  # needs the Pub/Sub grants. Firestore access is not probed, but without it
  # the first events would fail (the ledger nacks them; the firestore
  # connector dead-letters them), so it is granted first too. IAM can still
  # take a minute or two to propagate: if the very first apply fails on the
  # startup probe, apply again, and run `check` before publishing.
  depends_on = [
    google_secret_manager_secret_iam_member.worker_secret_accessor,
    google_pubsub_subscription_iam_member.worker_subscriber,
    google_pubsub_subscription_iam_member.worker_viewer,
    google_pubsub_topic_iam_member.worker_dead_letter_publisher,
    google_project_iam_member.worker_datastore_user,
    google_service_account_iam_member.worker_token_creator_self,
  ]
}

# ---------------------------------------------------------------------------
# Firestore: the shared idempotency ledger, and access for workers that use
# Firestore (the ledger, or the firestore connector itself)
# ---------------------------------------------------------------------------

# With idempotency_store = "firestore" (the worker's config must say
# [delivery.idempotency] store = "firestore" too), every claim is a document
# in the ledger collection carrying an `expireAt` timestamp: now + ttl once
# done, lease + 24 h while in flight. This TTL policy lets Firestore delete
# expired claims so the collection does not grow forever. Deletion happens
# some time after expireAt (typically within a day), not at it; the worker
# already treats a claim past its expireAt as gone, so the delay only costs
# storage. The database must already exist, in Native mode.
resource "google_firestore_field" "idempotency_expire_at" {
  count = local.use_ledger ? 1 : 0

  project    = var.project_id
  database   = var.idempotency_database
  collection = local.idempotency_collection
  field      = "expireAt"

  # An empty block turns on the TTL policy for this field.
  ttl_config {}

  # An empty block removes the single-field indexes on expireAt: nothing
  # queries the ledger, and an index on an ever-increasing timestamp would
  # only cost storage and limit the write rate.
  index_config {}
}

# The same for leaseUntil, the other timestamp written with every claim. No
# TTL here, only the index exemption. Applied after the field above, so the
# two field operations on one collection do not run at once.
resource "google_firestore_field" "idempotency_lease_until" {
  count = local.use_ledger ? 1 : 0

  project    = var.project_id
  database   = var.idempotency_database
  collection = local.idempotency_collection
  field      = "leaseUntil"

  index_config {}

  depends_on = [google_firestore_field.idempotency_expire_at]
}

# Read and write Firestore documents: the ledger's claims, or the firestore
# connector's writes. Firestore roles are granted on the project (IAM
# conditions can narrow them to one database), not on a collection. A worker
# whose Firestore project differs from project_id needs this grant in that
# project instead.
resource "google_project_iam_member" "worker_datastore_user" {
  count = local.firestore_access ? 1 : 0

  project = var.project_id
  role    = "roles/datastore.user"
  member  = local.worker_member
}
