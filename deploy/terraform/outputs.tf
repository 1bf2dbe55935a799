output "service_account_email" {
  description = "Identity of the worker in every mode; serviceAccountName in the Cloud Run YAML."
  value       = google_service_account.worker.email
}

output "subscription" {
  description = "Source subscription, full resource name (GLUEFLEET_SUBSCRIPTION)."
  value       = google_pubsub_subscription.source.id
}

output "dead_letter_topic" {
  description = "Dead-letter topic, full resource name (GLUEFLEET_DEAD_LETTER_TOPIC)."
  value       = google_pubsub_topic.dead_letter.id
}

output "dead_letter_subscription" {
  description = "Subscription for inspecting and replaying dead letters."
  value       = google_pubsub_subscription.dead_letter_inspect.name
}

output "max_delivery_attempts" {
  description = "Set the worker's configured maximum delivery attempts to this value."
  value       = var.max_delivery_attempts
}

output "worker_env" {
  description = "Plain environment variables every mode's worker gets (push mode adds GLUEFLEET_PUSH_AUDIENCE and GLUEFLEET_PUSH_SERVICE_ACCOUNT), for the YAML in deploy/cloudrun or any other deployment."
  value       = local.worker_env
}

output "cloud_run" {
  description = "What mode created on Cloud Run: resource (the Terraform address), gcloud (the `gcloud run` command group: services, worker-pools or jobs), name and id. null when mode is \"none\"."
  value = var.mode == "none" ? null : {
    mode = var.mode
    resource = {
      push        = "google_cloud_run_v2_service.push[0]"
      worker_pool = "google_cloud_run_v2_worker_pool.pull[0]"
      job         = "google_cloud_run_v2_job.drain[0]"
    }[var.mode]
    gcloud = {
      push        = "services"
      worker_pool = "worker-pools"
      job         = "jobs"
    }[var.mode]
    # Exactly one of the three lists has an element.
    name = one(concat(
      google_cloud_run_v2_service.push[*].name,
      google_cloud_run_v2_worker_pool.pull[*].name,
      google_cloud_run_v2_job.drain[*].name,
    ))
    id = one(concat(
      google_cloud_run_v2_service.push[*].id,
      google_cloud_run_v2_worker_pool.pull[*].id,
      google_cloud_run_v2_job.drain[*].id,
    ))
  }
}

output "push_endpoint" {
  description = "mode = \"push\": the service's run.app URL, where the subscription pushes. null in the other modes."
  value       = one(google_cloud_run_v2_service.push[*].uri)
}

output "pusher_email" {
  description = "mode = \"push\": the account the push requests' OIDC tokens are signed as (GLUEFLEET_PUSH_SERVICE_ACCOUNT, push.service_account). null in the other modes."
  value       = one(google_service_account.pusher[*].email)
}

output "idempotency_collection" {
  description = "Firestore collection of the shared idempotency ledger ([delivery.idempotency] collection), or null when idempotency_store is \"memory\"."
  value       = local.use_ledger ? local.idempotency_collection : null
}

output "service_account_client_id" {
  description = "The worker's numeric OAuth 2.0 client id (oauth2ClientId): the id a Workspace super admin grants domain-wide delegation to, for connector = \"workspace\"."
  value       = google_service_account.worker.unique_id
}

output "monitoring_dashboard" {
  description = "The connector's Cloud Monitoring dashboard (projects/P/dashboards/ID), or null when monitoring is false."
  value       = one(google_monitoring_dashboard.connector[*].id)
}

output "alert_policies" {
  description = "The connector's alert policies by alert (backlog, oldest_unacked, dead_letters, error_ratio): their resource names, projects/P/alertPolicies/ID. null when monitoring is false. What each means: docs/OPERATIONS.md."
  value = var.monitoring ? {
    backlog        = google_monitoring_alert_policy.backlog[0].name
    oldest_unacked = google_monitoring_alert_policy.oldest_unacked[0].name
    dead_letters   = google_monitoring_alert_policy.dead_letters[0].name
    error_ratio    = google_monitoring_alert_policy.error_ratio[0].name
  } : null
}
