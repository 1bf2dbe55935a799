# gluefleet-ingest, the HTTP front door onto Pub/Sub, as a Cloud Run
# service: its own service account, allowed to publish to the listed topics
# and to read its config secret, and nothing else. The same settings as
# deploy/cloudrun/ingest.service.yaml; use one or the other.
#
#   cd deploy/terraform/ingest
#   terraform init
#   terraform apply -var project_id=P -var region=R -var image=IMAGE \
#     -var 'topics=["orders","partners"]'

locals {
  name   = "gluefleet-ingest"
  member = "serviceAccount:${google_service_account.ingest.email}"
  labels = { app = "gluefleet", gluefleet-connector = "ingest" }
}

resource "google_service_account" "ingest" {
  project      = var.project_id
  account_id   = local.name
  display_name = "gluefleet ingest"
  description  = "Publishes the events gluefleet-ingest accepts over HTTP."
}

# Publish on each topic the config routes to, not on the project.
resource "google_pubsub_topic_iam_member" "publisher" {
  for_each = toset(var.topics)

  project = var.project_id
  topic   = each.value
  role    = "roles/pubsub.publisher"
  member  = local.member
}

resource "google_secret_manager_secret_iam_member" "config_accessor" {
  project   = var.project_id
  secret_id = var.config_secret
  role      = "roles/secretmanager.secretAccessor"
  member    = local.member
}

resource "google_cloud_run_v2_service" "ingest" {
  project             = var.project_id
  location            = var.region
  name                = local.name
  labels              = local.labels
  deletion_protection = var.deletion_protection

  # The callers (an SAP system's HTTP destination, legacy software,
  # webhooks) are outside Google Cloud and cannot mint Google ID tokens:
  # reachable from the internet with Cloud Run's IAM check off.
  # gluefleet-ingest authenticates every request itself ([[credentials]]).
  ingress              = "INGRESS_TRAFFIC_ALL"
  invoker_iam_disabled = true

  template {
    labels          = local.labels
    service_account = google_service_account.ingest.email

    # 256Mi is below the second generation's minimum.
    execution_environment = "EXECUTION_ENVIRONMENT_GEN1"

    # Posts one instance takes at once; each waits on Pub/Sub, not CPU.
    max_instance_request_concurrency = 80

    # Backstop only: a publish not confirmed within ingest.publish_timeout
    # (default 10 s) is answered 503.
    timeout = "30s"

    scaling {
      min_instance_count = 0
      max_instance_count = var.max_instances
    }

    containers {
      name  = "gluefleet"
      image = var.image
      args  = ["--config", "/etc/gluefleet/ingest.toml"]

      ports {
        name           = "http1"
        container_port = 8080
      }

      env {
        name  = "GOOGLE_CLOUD_PROJECT"
        value = var.project_id
      }

      resources {
        limits = {
          cpu    = "1"
          memory = "256Mi"
        }
        # Every post is answered only once its publish is confirmed: no
        # work outlives a request.
        cpu_idle          = true
        startup_cpu_boost = true
      }

      volume_mounts {
        name       = "config"
        mount_path = "/etc/gluefleet"
      }

      startup_probe {
        period_seconds    = 5
        timeout_seconds   = 3
        failure_threshold = 24
        http_get {
          path = "/healthz"
          port = 8080
        }
      }

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
        secret = var.config_secret
        items {
          version = var.config_secret_version
          path    = "ingest.toml"
          mode    = 292 # 0444: the container runs as uid 65532
        }
      }
    }
  }

  # Cloud Run checks secret access when the revision deploys.
  depends_on = [
    google_secret_manager_secret_iam_member.config_accessor,
    google_pubsub_topic_iam_member.publisher,
  ]
}
