# Infrastructure for one gluefleet connector: its subscription on an existing
# source topic, a dead-letter topic with an inspection subscription, a
# dedicated service account with the least IAM it needs, when the connector
# uses Firestore, its Firestore access and the idempotency ledger's TTL
# policy, and, for the workspace connector, the grant that lets the worker
# sign its own domain-wide delegation assertions (keyless). Apply once per
# connector, each with its own state (a workspace or a backend prefix per
# connector).
#
# var.mode picks how the worker runs (cloudrun.tf): a Cloud Run worker pool
# (`run`, streaming pull; the default), a Cloud Run service that Pub/Sub
# pushes to (`serve`; the source subscription becomes a push subscription,
# with its own push identity), a Cloud Run job (`job`, drains and exits; run
# it on a schedule), or none of them ("none": deploy with gcloud and the YAML
# in deploy/cloudrun). Changing mode replaces one Cloud Run resource with
# another; with deletion_protection on, set it false and apply first.
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
  # The subscription's id is spelled out rather than taken from the
  # resource: in push mode the subscription refers to the push service (its
  # URL), and the service to these variables, so a reference back would be
  # a dependency cycle.
  worker_env = {
    GOOGLE_CLOUD_PROJECT        = var.project_id
    GLUEFLEET_CONFIG            = "/etc/gluefleet/config.toml"
    GLUEFLEET_SUBSCRIPTION      = "projects/${var.project_id}/subscriptions/${local.name}"
    GLUEFLEET_DEAD_LETTER_TOPIC = google_pubsub_topic.dead_letter.id
  }

  push = var.mode == "push"
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

  # Pull (worker_pool, job, none): the initial lease. The worker extends it
  # while a message is in work or held for a delayed nack; a crashed
  # worker's messages come back once their last lease runs out.
  # Push: how long Pub/Sub waits for the HTTP answer before it counts the
  # delivery as failed and pushes again. The worker answers within
  # push.answer_within (8 s), so 60 s also covers a cold start.
  ack_deadline_seconds         = 60
  message_retention_duration   = "604800s" # 7 days
  enable_exactly_once_delivery = var.enable_exactly_once_delivery

  expiration_policy {
    ttl = "" # never expire, even if the worker is stopped for a long time
  }

  # Second line of defence behind the worker's own delayed nacks: Pub/Sub
  # also spaces out redeliveries after a nack or an expired lease. In push
  # mode it is the only spacing: a nack (503) is answered at once, never
  # held, and this backoff decides when the push comes again.
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

  # Push mode only; without the block the subscription is a pull
  # subscription. Pub/Sub POSTs each message to the service's run.app URL
  # (which is what lets internal ingress admit it, see cloudrun.tf) with an
  # OIDC token signed as the pusher account, for the fixed audience the
  # service accepts and the worker checks. Whoever applies needs
  # iam.serviceAccounts.actAs on the pusher account to set this.
  #
  # The wrapped format (no no_wrapper block) on purpose: the worker reads
  # deliveryAttempt (for its dead-letter decision) and the subscription
  # from the JSON wrapper, which the unwrapped format does not carry.
  dynamic "push_config" {
    for_each = local.push ? [1] : []
    content {
      push_endpoint = google_cloud_run_v2_service.push[0].uri
      oidc_token {
        service_account_email = google_service_account.pusher[0].email
        audience              = local.push_audience
      }
    }
  }

  # The service agent must be able to publish and ack before the policy
  # works; in push mode it must also be able to mint the pusher's tokens,
  # and the pusher to invoke the service, before the first push.
  depends_on = [
    google_pubsub_topic_iam_member.pubsub_agent_dead_letter_publisher,
    google_service_account_iam_member.pubsub_agent_pusher_token_creator,
    google_cloud_run_v2_service_iam_member.pusher_invoker,
  ]
}

# ---------------------------------------------------------------------------
# Identity and IAM
# ---------------------------------------------------------------------------

resource "google_service_account" "worker" {
  project      = var.project_id
  account_id   = local.name
  display_name = "gluefleet ${var.connector} worker"
  description  = "Runs gluefleet-${var.connector}: consumes ${local.name}, publishes to ${local.name}-dead-letter."
}

# Pull, ack, nack and extend leases. Not in push mode: there Pub/Sub
# delivers, and the HTTP answer acks or nacks.
resource "google_pubsub_subscription_iam_member" "worker_subscriber" {
  count = local.push ? 0 : 1

  project      = var.project_id
  subscription = google_pubsub_subscription.source.name
  role         = "roles/pubsub.subscriber"
  member       = local.worker_member
}

# The grant above had no count before mode existed; keep its binding.
moved {
  from = google_pubsub_subscription_iam_member.worker_subscriber
  to   = google_pubsub_subscription_iam_member.worker_subscriber[0]
}

# /readyz (pull modes) and `check` (every mode) read the subscription
# (subscriptions.get), which the subscriber role does not allow.
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

# `check` reads the dead-letter topic (topics.get), which the publisher
# role does not allow.
resource "google_pubsub_topic_iam_member" "worker_dead_letter_viewer" {
  project = var.project_id
  topic   = google_pubsub_topic.dead_letter.name
  role    = "roles/pubsub.viewer"
  member  = local.worker_member
}

# Result events (a route's `results`): the original is acked only after its
# result is published, so a missing grant holds every finished event.
resource "google_pubsub_topic_iam_member" "worker_results_publisher" {
  for_each = toset(var.results_topics)

  project = var.project_id
  topic   = each.value
  role    = "roles/pubsub.publisher"
  member  = local.worker_member
}

resource "google_pubsub_topic_iam_member" "worker_results_viewer" {
  for_each = toset(var.results_topics)

  project = var.project_id
  topic   = each.value
  role    = "roles/pubsub.viewer"
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
