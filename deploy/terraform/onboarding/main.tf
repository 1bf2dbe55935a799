# The onboarding workflow (deploy/workflows/onboarding.yaml) and the four
# topics it runs on. The two connectors it drives are deployed with the
# connector module, one apply each, after this one:
#
#   cd deploy/terraform/onboarding
#   terraform init && terraform apply -var project_id=P -var region=R
#   cd ..
#   terraform apply -var connector=legacy-rest -var source_topic=customers \
#     -var 'results_topics=["customer-results"]' ...
#   terraform apply -var connector=sap-odata -var source_topic=partners \
#     -var 'results_topics=["partner-results"]' ...
#
# (Two workspaces or two state prefixes: each connector apply is its own
# state.) docs/ORCHESTRATION.md has both connectors' routes.

locals {
  name   = "gluefleet-onboarding"
  member = "serviceAccount:${google_service_account.onboarding.email}"
  labels = { app = "gluefleet", gluefleet-workflow = "onboarding" }
}

# What the workflow publishes to: legacy-rest's source (customer.created,
# customer.onboarding-failed) and sap-odata's (partner.requested).
resource "google_pubsub_topic" "customers" {
  project = var.project_id
  name    = "customers"
  labels  = local.labels
}

resource "google_pubsub_topic" "partners" {
  project = var.project_id
  name    = "partners"
  labels  = local.labels
}

# Where the connectors report (each route's `results`). Every execution
# waits on a subscription of its own, filtered on ce-subject; a result
# published with no such subscription is dropped, which is right: nobody
# waits for it.
resource "google_pubsub_topic" "customer_results" {
  project = var.project_id
  name    = "customer-results"
  labels  = local.labels
}

resource "google_pubsub_topic" "partner_results" {
  project = var.project_id
  name    = "partner-results"
  labels  = local.labels
}

resource "google_service_account" "onboarding" {
  project      = var.project_id
  account_id   = local.name
  display_name = "gluefleet onboarding workflow"
  description  = "Publishes onboarding steps and waits for the connectors' result events."
}

# Each execution creates, pulls from and deletes its own subscriptions.
# Creating one needs pubsub.subscriptions.create on the project and
# pubsub.topics.attachSubscription on the topic (below, per topic); no
# predefined role has the first without the rest of Pub/Sub editor.
resource "google_project_iam_custom_role" "waiter" {
  project     = var.project_id
  role_id     = "gluefleetOnboardingWaiter"
  title       = "gluefleet onboarding: wait for result events"
  description = "Create, consume and delete the execution's own result subscriptions."
  permissions = [
    "pubsub.subscriptions.create",
    "pubsub.subscriptions.consume",
    "pubsub.subscriptions.delete",
  ]
}

resource "google_project_iam_member" "waiter" {
  project = var.project_id
  role    = google_project_iam_custom_role.waiter.id
  member  = local.member
}

resource "google_pubsub_topic_iam_member" "publisher" {
  for_each = {
    customers = google_pubsub_topic.customers.name
    partners  = google_pubsub_topic.partners.name
  }

  project = var.project_id
  topic   = each.value
  role    = "roles/pubsub.publisher"
  member  = local.member
}

# roles/pubsub.subscriber on a topic grants pubsub.topics.attachSubscription
# on that topic only.
resource "google_pubsub_topic_iam_member" "results_subscriber" {
  for_each = {
    customer_results = google_pubsub_topic.customer_results.name
    partner_results  = google_pubsub_topic.partner_results.name
  }

  project = var.project_id
  topic   = each.value
  role    = "roles/pubsub.subscriber"
  member  = local.member
}

# Call logs, at call_log_level.
resource "google_project_iam_member" "log_writer" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = local.member
}

resource "google_workflows_workflow" "onboarding" {
  project             = var.project_id
  region              = var.region
  name                = local.name
  description         = "Onboards a customer: CRM (gluefleet-legacy-rest), then SAP (gluefleet-sap-odata), waiting for each result event."
  labels              = local.labels
  service_account     = google_service_account.onboarding.id
  call_log_level      = var.call_log_level
  deletion_protection = var.deletion_protection
  source_contents     = file("${path.module}/../../workflows/onboarding.yaml")

  depends_on = [
    google_project_iam_member.waiter,
    google_pubsub_topic_iam_member.publisher,
    google_pubsub_topic_iam_member.results_subscriber,
  ]
}
