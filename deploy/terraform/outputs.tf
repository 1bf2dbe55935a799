output "service_account_email" {
  description = "Identity of the worker; serviceAccountName in the Cloud Run YAML."
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
  description = "Plain environment variables the worker needs, for the job YAML or any other deployment."
  value       = local.worker_env
}

output "service_name" {
  description = "Cloud Run service name, or null when deploy_service is false."
  value       = one(google_cloud_run_v2_service.worker[*].name)
}

output "idempotency_collection" {
  description = "Firestore collection of the shared idempotency ledger ([delivery.idempotency] collection), or null when idempotency_store is \"memory\"."
  value       = local.use_ledger ? local.idempotency_collection : null
}

output "service_account_client_id" {
  description = "The worker's numeric OAuth 2.0 client id (oauth2ClientId): the id a Workspace super admin grants domain-wide delegation to, for connector = \"workspace\"."
  value       = google_service_account.worker.unique_id
}
