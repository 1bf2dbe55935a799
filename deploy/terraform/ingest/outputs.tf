output "url" {
  description = "The service's URL: callers POST to <url>/v1/events/<topic>."
  value       = google_cloud_run_v2_service.ingest.uri
}

output "service_account" {
  description = "The account the service publishes as."
  value       = google_service_account.ingest.email
}
