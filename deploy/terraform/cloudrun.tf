# The Cloud Run side, one of three per var.mode, with the same settings as
# deploy/cloudrun/<connector>.{service,worker-pool,job}.yaml:
#
#   push        google_cloud_run_v2_service.push      `serve`
#   worker_pool google_cloud_run_v2_worker_pool.pull  `run`
#   job         google_cloud_run_v2_job.drain         `job`
#   none        nothing here
#
# All three run as the worker's service account (main.tf) and read the same
# config volume, env secrets and environment.

locals {
  # Push mode: the OIDC token's audience, set on the subscription, accepted
  # by the service (custom_audiences) and checked by the worker
  # (push.audience). A fixed name rather than the service URL: the URL is
  # known only once the service exists, and the service's environment would
  # then depend on the service itself. The same value as in
  # deploy/cloudrun/<connector>.service.yaml.
  push_audience = "${local.name}-push"

  # Every container's environment as one list: plain values, then the
  # secrets. One dynamic "env" block per container walks it (HCL cannot
  # share a block between resources, but it can share the data).
  secret_env = [
    for name, s in var.secret_env : {
      name    = name
      value   = null
      secret  = s.secret
      version = s.version
    }
  ]
  pull_env = concat(
    [for name, value in local.worker_env : { name = name, value = value, secret = null, version = null }],
    local.secret_env,
  )
  # The worker pool's: the collector's address too (collector.tf).
  pool_env = concat(local.pull_env, local.collector_env)
  # The push service also learns the token's audience and signer. one():
  # null outside push mode, where this list is not used.
  push_env = concat(
    [
      for name, value in merge(local.worker_env, {
        GLUEFLEET_PUSH_AUDIENCE        = local.push_audience
        GLUEFLEET_PUSH_SERVICE_ACCOUNT = one(google_service_account.pusher[*].email)
      }) : { name = name, value = value, secret = null, version = null }
    ],
    local.secret_env,
    local.collector_env,
  )

  # The probes of the service and the worker pool. The worker serves them on
  # 8080 (its default port; Cloud Run sets PORT to it for the service).
  probes = {
    # Not started, and no deploy success, until /readyz passes: in pull
    # mode, the subscription is reachable with valid credentials; in push
    # mode, the process is up. 24 x 5 s = 120 s (maximum 240 s).
    startup = {
      path              = "/readyz"
      period_seconds    = 5
      timeout_seconds   = 3
      failure_threshold = 24
    }
    # Process health only: an outage of the external system must not
    # restart instances.
    liveness = {
      path              = "/healthz"
      period_seconds    = 15
      timeout_seconds   = 3
      failure_threshold = 3
    }
  }
}

# Grants first: every Cloud Run resource here depends_on the worker's grants.
# Cloud Run checks secret access when a revision is deployed, and the pull
# modes' startup probe needs the Pub/Sub grants. Firestore access is not
# probed, but without it the first events would fail (the ledger nacks them;
# the firestore connector dead-letters them), so it is granted first too.
# IAM can still take a minute or two to propagate: if the very first apply
# fails on the startup probe, apply again, and run `check` before
# publishing. depends_on takes only static references, so each resource
# writes the list out; the push service's is shorter (see there).

# ---------------------------------------------------------------------------
# push: a Cloud Run service that Pub/Sub pushes to
# ---------------------------------------------------------------------------

# The identity Pub/Sub signs the push requests' OIDC tokens as. Its own
# account, not the worker's: it may invoke the service and nothing else,
# and the worker accepts tokens from it alone (push.service_account).
# gf-push-<connector>: at most 8 + 20 = 28 of the 30 characters allowed.
resource "google_service_account" "pusher" {
  count = local.push ? 1 : 0

  project      = var.project_id
  account_id   = "gf-push-${var.connector}"
  display_name = "gluefleet ${var.connector} push"
  description  = "Signs Pub/Sub's pushes from ${local.name} to the Cloud Run service ${local.name}."
}

# The only invoker of the service. Cloud Run admits a request only with a
# token of an account holding roles/run.invoker; the worker checks the token
# again itself.
resource "google_cloud_run_v2_service_iam_member" "pusher_invoker" {
  count = local.push ? 1 : 0

  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.push[0].name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.pusher[0].email}"
}

# Pub/Sub mints the pusher's tokens as the project's Pub/Sub service agent.
# Needed where that agent was enabled on or before April 8, 2021 (older
# projects); later ones already have the permission through the agent's own
# role. Made always, since Terraform cannot tell the two apart, and on the
# pusher account alone rather than on the project.
resource "google_service_account_iam_member" "pubsub_agent_pusher_token_creator" {
  count = local.push ? 1 : 0

  service_account_id = google_service_account.pusher[0].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_agent_member
}

resource "google_cloud_run_v2_service" "push" {
  count = local.push ? 1 : 0

  project             = var.project_id
  location            = var.region
  name                = local.name
  labels              = local.labels
  deletion_protection = var.deletion_protection

  # Only Pub/Sub calls this service. Internal ingress admits it: Cloud Run
  # counts Pub/Sub as an internal source when the subscription is in the
  # same project (or VPC Service Controls perimeter) as the service and
  # pushes to the default run.app URL, not a custom domain
  # (https://cloud.google.com/run/docs/securing/ingress). Both hold here:
  # the subscription is in project_id, and its push_endpoint is this
  # service's uri. The internet cannot reach the URL at all, and
  # roles/run.invoker (the pusher only) still applies on top.
  ingress = "INGRESS_TRAFFIC_INTERNAL_ONLY"

  # The push tokens' audience (see local.push_audience). The run.app URL
  # stays accepted as well.
  custom_audiences = [local.push_audience]

  template {
    labels          = local.labels
    service_account = google_service_account.worker.email

    # 256Mi is below the second generation's 512Mi minimum; the first
    # generation allows it and suits a network-bound worker.
    execution_environment = "EXECUTION_ENVIRONMENT_GEN1"

    # Pushes one instance takes at once; the worker's pubsub.concurrency
    # should be the same number. Cloud Run adds instances beyond it.
    max_instance_request_concurrency = var.push_concurrency

    # Cloud Run's request timeout, only a backstop: the worker answers every
    # push within push.answer_within (default 8 s).
    timeout = "30s"

    # Cloud Run has no termination grace setting: SIGTERM, then SIGKILL 10 s
    # later. gluefleet stops taking connections and drains the pushes in
    # work for at most 8 s (--drain-timeout); what is left is answered 503
    # and Pub/Sub pushes it again.

    scaling {
      # Scales to zero: every push is an HTTP request, which starts an
      # instance when none runs. The first push after idling waits for a
      # cold start; Pub/Sub pushes it again if that outlasts the ack
      # deadline.
      min_instance_count = 0
      # Rate limits are per instance: per-instance limit = quota / this.
      max_instance_count = var.max_instances
    }

    containers {
      name  = "gluefleet"
      image = var.image
      args  = ["serve"]

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
        # CPU only while requests are in (request-based billing): in serve
        # mode all of a message's work happens inside its push request, and
        # a wait that would outlast push.answer_within is answered 503
        # instead, so nothing runs between requests.
        cpu_idle = true
        # More CPU while an instance starts: a shorter cold start.
        startup_cpu_boost = true
      }

      dynamic "env" {
        for_each = local.push_env
        content {
          name  = env.value.name
          value = env.value.value
          # Credentials for ${VAR} interpolation in the TOML config.
          dynamic "value_source" {
            for_each = env.value.secret == null ? [] : [env.value]
            content {
              secret_key_ref {
                secret  = value_source.value.secret
                version = value_source.value.version
              }
            }
          }
        }
      }

      # The directory; the volume item below names the file config.toml.
      volume_mounts {
        name       = "config"
        mount_path = "/etc/gluefleet"
      }

      startup_probe {
        initial_delay_seconds = 0
        period_seconds        = local.probes.startup.period_seconds
        timeout_seconds       = local.probes.startup.timeout_seconds
        failure_threshold     = local.probes.startup.failure_threshold
        http_get {
          path = local.probes.startup.path
          port = 8080
        }
      }

      liveness_probe {
        period_seconds    = local.probes.liveness.period_seconds
        timeout_seconds   = local.probes.liveness.timeout_seconds
        failure_threshold = local.probes.liveness.failure_threshold
        http_get {
          path = local.probes.liveness.path
          port = 8080
        }
      }
    }

    # The OpenTelemetry collector (collector.tf). No start order: spans
    # leave the worker in batches every 5 s, and while no collector listens
    # they are dropped, never messages.
    dynamic "containers" {
      for_each = local.collector ? [1] : []
      content {
        name  = "collector"
        image = var.collector_image
        args  = ["--config=/etc/otelcol-google/config.yaml"]

        resources {
          limits = {
            cpu    = "1"
            memory = "256Mi"
          }
          # Request-based billing, as the gluefleet container's: between
          # pushes the collector gets little CPU, so some scrapes fail and
          # the charts show gaps at low traffic
          # (docs/OPERATIONS.md#sidecar).
          cpu_idle = true
        }

        volume_mounts {
          name       = "collector-config"
          mount_path = "/etc/otelcol-google"
        }

        startup_probe {
          period_seconds    = local.collector_probe.period_seconds
          timeout_seconds   = local.collector_probe.timeout_seconds
          failure_threshold = local.collector_probe.failure_threshold
          http_get {
            path = local.collector_probe.path
            port = local.collector_probe.port
          }
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

    dynamic "volumes" {
      for_each = local.collector ? [1] : []
      content {
        name = "collector-config"
        secret {
          secret = local.collector_config_secret
          items {
            version = "latest"
            path    = "config.yaml"
            mode    = 292
          }
        }
      }
    }
  }

  # As "Grants first" above, but without the grants on
  # the subscription: the subscription refers to this service's URL, so
  # waiting for grants on it would be a cycle. The service needs none of
  # them to start (in push mode /readyz does not read the subscription);
  # viewer is for `check`.
  depends_on = [
    google_secret_manager_secret_iam_member.worker_secret_accessor,
    google_pubsub_topic_iam_member.worker_dead_letter_publisher,
    google_pubsub_topic_iam_member.worker_results_publisher,
    google_project_iam_member.worker_datastore_user,
    google_service_account_iam_member.worker_token_creator_self,
    google_secret_manager_secret_iam_member.worker_collector_config_accessor,
    google_secret_manager_secret_version.collector_config,
  ]
}

# Before mode existed, the optional service (then running `run`) was
# google_cloud_run_v2_service.worker. Same name and type: with mode = "push"
# it is updated in place rather than deleted and created again.
moved {
  from = google_cloud_run_v2_service.worker
  to   = google_cloud_run_v2_service.push
}

# ---------------------------------------------------------------------------
# worker_pool: a Cloud Run worker pool, streaming pull
# ---------------------------------------------------------------------------

resource "google_cloud_run_v2_worker_pool" "pull" {
  count = var.mode == "worker_pool" ? 1 : 0

  project             = var.project_id
  location            = var.region
  name                = local.name
  labels              = local.labels
  deletion_protection = var.deletion_protection

  # A fixed instance count: Cloud Run does not scale a worker pool by
  # itself (an external autoscaler can; deploy/README.md). 0 stops the
  # connector, and the backlog waits on the subscription. No scaling_mode:
  # manual is the default, and the Worker Pools API has no such field (an
  # explicit "MANUAL" showed as drift in provider versions before 7.18).
  scaling {
    manual_instance_count = var.instances
  }

  template {
    labels          = local.labels
    service_account = google_service_account.worker.email

    # Worker pools run in the second generation only (no
    # execution_environment to set), with CPU always allocated: streaming
    # pull, lease extension, delayed nacks and token refresh all run outside
    # any request.
    #
    # SIGTERM, then SIGKILL 10 s later: gluefleet stops pulling and drains
    # for at most 8 s (--drain-timeout); unfinished messages are not acked
    # and Pub/Sub redelivers them.

    containers {
      name  = "gluefleet"
      image = var.image
      args  = ["run"]

      # No ports block: a worker pool receives no traffic and the resource
      # has none. The probes name the port the worker serves them on.

      resources {
        limits = {
          cpu    = "1"
          memory = "512Mi" # the second generation's minimum
        }
      }

      dynamic "env" {
        for_each = local.pool_env
        content {
          name  = env.value.name
          value = env.value.value
          # Credentials for ${VAR} interpolation in the TOML config.
          dynamic "value_source" {
            for_each = env.value.secret == null ? [] : [env.value]
            content {
              secret_key_ref {
                secret  = value_source.value.secret
                version = value_source.value.version
              }
            }
          }
        }
      }

      volume_mounts {
        name       = "config"
        mount_path = "/etc/gluefleet"
      }

      startup_probe {
        initial_delay_seconds = 0
        period_seconds        = local.probes.startup.period_seconds
        timeout_seconds       = local.probes.startup.timeout_seconds
        failure_threshold     = local.probes.startup.failure_threshold
        http_get {
          path = local.probes.startup.path
          port = 8080
        }
      }

      liveness_probe {
        period_seconds    = local.probes.liveness.period_seconds
        timeout_seconds   = local.probes.liveness.timeout_seconds
        failure_threshold = local.probes.liveness.failure_threshold
        http_get {
          path = local.probes.liveness.path
          port = 8080
        }
      }
    }

    # The OpenTelemetry collector (collector.tf). No start order: spans
    # leave the worker in batches every 5 s, and while no collector listens
    # they are dropped, never messages.
    dynamic "containers" {
      for_each = local.collector ? [1] : []
      content {
        name  = "collector"
        image = var.collector_image
        args  = ["--config=/etc/otelcol-google/config.yaml"]

        resources {
          limits = {
            cpu    = "1"
            memory = "256Mi"
          }
        }

        volume_mounts {
          name       = "collector-config"
          mount_path = "/etc/otelcol-google"
        }

        startup_probe {
          period_seconds    = local.collector_probe.period_seconds
          timeout_seconds   = local.collector_probe.timeout_seconds
          failure_threshold = local.collector_probe.failure_threshold
          http_get {
            path = local.collector_probe.path
            port = local.collector_probe.port
          }
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

    dynamic "volumes" {
      for_each = local.collector ? [1] : []
      content {
        name = "collector-config"
        secret {
          secret = local.collector_config_secret
          items {
            version = "latest"
            path    = "config.yaml"
            mode    = 292
          }
        }
      }
    }
  }

  # See "Grants first" above.
  depends_on = [
    google_secret_manager_secret_iam_member.worker_secret_accessor,
    google_pubsub_subscription_iam_member.worker_subscriber,
    google_pubsub_subscription_iam_member.worker_viewer,
    google_pubsub_topic_iam_member.worker_dead_letter_publisher,
    google_pubsub_topic_iam_member.worker_results_publisher,
    google_project_iam_member.worker_datastore_user,
    google_service_account_iam_member.worker_token_creator_self,
    google_secret_manager_secret_iam_member.worker_collector_config_accessor,
    google_secret_manager_secret_version.collector_config,
  ]
}

# ---------------------------------------------------------------------------
# job: a Cloud Run job that drains the subscription and exits
# ---------------------------------------------------------------------------

# Creating the job runs nothing: execute it on a schedule (Cloud Scheduler,
# deploy/README.md) or with `gcloud run jobs execute`.
resource "google_cloud_run_v2_job" "drain" {
  count = var.mode == "job" ? 1 : 0

  project             = var.project_id
  location            = var.region
  name                = local.name
  labels              = local.labels
  deletion_protection = var.deletion_protection

  template {
    labels = local.labels

    # One task pulls the whole subscription. Rate limits are per task: for
    # a vendor quota Q use a per-task limit of Q / parallelism (and count
    # overlapping executions too if a schedule can overlap).
    task_count  = 1
    parallelism = 1

    template {
      service_account = google_service_account.worker.email

      # 60 min per task. --max-duration 50m makes gluefleet stop on its own
      # first; the remaining 10 min cover startup and the drain of in-flight
      # messages, so the task ends with exit 0 rather than being killed. An
      # hourly schedule then never overlaps itself.
      timeout = "3600s"

      # No retries: unfinished messages stay on the subscription for the
      # next execution, and a retry cannot fix what usually fails a task
      # (bad config exits 64, missing permissions).
      max_retries = 0

      containers {
        name  = "gluefleet"
        image = var.image
        # Exit 0 once the subscription has been empty for 10 s, or after
        # 50 min at most.
        args = ["job", "--idle-exit", "10s", "--max-duration", "50m"]

        resources {
          limits = {
            cpu = "1"
            # Jobs always run in the second generation, whose minimum is
            # 512Mi.
            memory = "512Mi"
          }
        }

        dynamic "env" {
          for_each = local.pull_env
          content {
            name  = env.value.name
            value = env.value.value
            # Credentials for ${VAR} interpolation in the TOML config; read
            # once when the task starts.
            dynamic "value_source" {
              for_each = env.value.secret == null ? [] : [env.value]
              content {
                secret_key_ref {
                  secret  = value_source.value.secret
                  version = value_source.value.version
                }
              }
            }
          }
        }

        volume_mounts {
          name       = "config"
          mount_path = "/etc/gluefleet"
        }
      }

      volumes {
        name = "config"
        secret {
          secret = local.config_secret
          items {
            version = var.config_secret_version
            path    = "config.toml"
            mode    = 292 # 0444: the task runs as uid 65532
          }
        }
      }
    }
  }

  # See "Grants first" above.
  depends_on = [
    google_secret_manager_secret_iam_member.worker_secret_accessor,
    google_pubsub_subscription_iam_member.worker_subscriber,
    google_pubsub_subscription_iam_member.worker_viewer,
    google_pubsub_topic_iam_member.worker_dead_letter_publisher,
    google_pubsub_topic_iam_member.worker_results_publisher,
    google_project_iam_member.worker_datastore_user,
    google_service_account_iam_member.worker_token_creator_self,
  ]
}
