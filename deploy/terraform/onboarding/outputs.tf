output "workflow" {
  description = "The workflow's id: run it with `gcloud workflows run <name> --location <region> --data '{\"customer\": {...}}'`."
  value       = google_workflows_workflow.onboarding.id
}

output "service_account" {
  description = "The account the workflow runs as."
  value       = google_service_account.onboarding.email
}

output "topics" {
  description = "The topic ids the connectors subscribe and report to (source_topic and results_topics of deploy/terraform)."
  value = {
    customers        = google_pubsub_topic.customers.name
    customer_results = google_pubsub_topic.customer_results.name
    partners         = google_pubsub_topic.partners.name
    partner_results  = google_pubsub_topic.partner_results.name
  }
}
