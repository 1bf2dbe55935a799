# Monitoring for one connector: four alert policies and a dashboard, all
# behind var.monitoring. What each alert means and what to do about it is in
# docs/OPERATIONS.md (the runbook); every policy links to its section.
#
#   google_monitoring_alert_policy.backlog         source subscription backlog
#   google_monitoring_alert_policy.oldest_unacked  age of its oldest unacked message
#   google_monitoring_alert_policy.dead_letters    messages reaching the dead-letter topic
#   google_monitoring_alert_policy.error_ratio     worker's share of failed settlements
#   google_monitoring_dashboard.connector          deploy/monitoring/dashboard.json.tftpl
#
# The first three read Pub/Sub's own metrics and work as soon as the
# subscription exists. The error ratio and most of the dashboard read the
# worker's Prometheus metrics (/metrics on port 8080), which reach Cloud
# Monitoring only through the collector sidecar (collector.tf, var.collector,
# on by default in push and worker_pool mode). Without it those charts stay
# empty and the error-ratio policy never fires.

locals {
  # An hourly job leaves its backlog on the subscription until the next
  # execution by design, so its backlog and age alerts wait longer.
  alert_window_seconds = var.mode == "job" ? 7200 : 600

  alert_oldest_unacked_age_seconds = coalesce(var.alert_oldest_unacked_age_seconds, local.alert_window_seconds)

  # PromQL label matcher shared by every query on the worker's metrics.
  metrics_selector = "connector=\"${var.connector}\""

  alert_policy_labels = {
    for alert in ["backlog", "oldest-unacked", "dead-letters", "error-ratio"] :
    alert => merge(local.labels, { gluefleet-alert = alert })
  }
}

# The collector sidecar (collector.tf) writes the scraped metrics as the
# worker's service account. Granted on the project: Cloud Monitoring has no
# narrower resource to grant it on.
resource "google_project_iam_member" "worker_metric_writer" {
  count = var.monitoring || local.collector ? 1 : 0

  project = var.project_id
  role    = "roles/monitoring.metricWriter"
  member  = local.worker_member
}

# ---------------------------------------------------------------------------
# Pub/Sub's metrics: work without the sidecar
# ---------------------------------------------------------------------------

resource "google_monitoring_alert_policy" "backlog" {
  count = var.monitoring ? 1 : 0

  project      = var.project_id
  display_name = "gluefleet ${var.connector}: subscription backlog"
  combiner     = "OR"
  severity     = "WARNING"
  user_labels  = local.alert_policy_labels["backlog"]

  notification_channels = var.alert_notification_channels

  conditions {
    display_name = "${google_pubsub_subscription.source.name}: more than ${var.alert_backlog_messages} undelivered messages for ${local.alert_window_seconds / 60} min"
    condition_threshold {
      filter          = "resource.type = \"pubsub_subscription\" AND resource.labels.subscription_id = \"${google_pubsub_subscription.source.name}\" AND metric.type = \"pubsub.googleapis.com/subscription/num_undelivered_messages\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alert_backlog_messages
      duration        = "${local.alert_window_seconds}s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_MEAN"
        cross_series_reducer = "REDUCE_SUM"
      }
      trigger {
        count = 1
      }
    }
  }

  documentation {
    subject   = "gluefleet ${var.connector}: backlog above ${var.alert_backlog_messages} messages"
    mime_type = "text/markdown"
    content   = <<-EOT
      The subscription `${google_pubsub_subscription.source.name}` has held more than
      ${var.alert_backlog_messages} undelivered messages for ${local.alert_window_seconds / 60} minutes:
      messages arrive faster than the connector settles them, or it is not
      settling them at all (stopped, crashing, or the target failing).

      Runbook: [subscription backlog](${var.alert_runbook_url}#alert-backlog).
    EOT
  }
}

resource "google_monitoring_alert_policy" "oldest_unacked" {
  count = var.monitoring ? 1 : 0

  project      = var.project_id
  display_name = "gluefleet ${var.connector}: oldest unacked message"
  combiner     = "OR"
  severity     = "ERROR"
  user_labels  = local.alert_policy_labels["oldest-unacked"]

  notification_channels = var.alert_notification_channels

  conditions {
    display_name = "${google_pubsub_subscription.source.name}: oldest unacked message older than ${local.alert_oldest_unacked_age_seconds} s"
    condition_threshold {
      filter          = "resource.type = \"pubsub_subscription\" AND resource.labels.subscription_id = \"${google_pubsub_subscription.source.name}\" AND metric.type = \"pubsub.googleapis.com/subscription/oldest_unacked_message_age\""
      comparison      = "COMPARISON_GT"
      threshold_value = local.alert_oldest_unacked_age_seconds
      duration        = "120s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_MAX"
        cross_series_reducer = "REDUCE_MAX"
      }
      trigger {
        count = 1
      }
    }
  }

  documentation {
    subject   = "gluefleet ${var.connector}: a message has waited more than ${local.alert_oldest_unacked_age_seconds} s"
    mime_type = "text/markdown"
    content   = <<-EOT
      The oldest unacked message on `${google_pubsub_subscription.source.name}` is older than
      ${local.alert_oldest_unacked_age_seconds} seconds. Messages being retried or held for a delayed
      nack stay unacked, so this fires when the target has been failing or
      rate limiting for that long, as well as when the worker is not running.

      Runbook: [oldest unacked message](${var.alert_runbook_url}#alert-oldest-unacked).
    EOT
  }
}

# Google's Pub/Sub metrics list marks topic/send_message_operation_count
# deprecated and names a count of topic/message_sizes as its replacement: one
# value per published message. A distribution's count is simplest to compare
# in PromQL (Cloud Monitoring names it
# pubsub_googleapis_com:topic_message_sizes_count there). The
# worker's own dead letters and those Pub/Sub's dead-letter policy forwards
# are both published to this topic, so both are counted.
resource "google_monitoring_alert_policy" "dead_letters" {
  count = var.monitoring ? 1 : 0

  project      = var.project_id
  display_name = "gluefleet ${var.connector}: dead letters"
  combiner     = "OR"
  severity     = "WARNING"
  user_labels  = local.alert_policy_labels["dead-letters"]

  notification_channels = var.alert_notification_channels

  conditions {
    display_name = "${google_pubsub_topic.dead_letter.name}: more than ${var.alert_dead_letters} messages published in 5 min"
    condition_prometheus_query_language {
      query               = "sum(increase(pubsub_googleapis_com:topic_message_sizes_count{monitored_resource=\"pubsub_topic\",project_id=\"${var.project_id}\",topic_id=\"${google_pubsub_topic.dead_letter.name}\"}[5m])) > ${var.alert_dead_letters}"
      duration            = "0s"
      evaluation_interval = "60s"
    }
  }

  # A dead letter is a single event: close the incident once no more arrive.
  alert_strategy {
    auto_close = "1800s"
  }

  documentation {
    subject   = "gluefleet ${var.connector}: messages reached the dead-letter topic"
    mime_type = "text/markdown"
    content   = <<-EOT
      More than ${var.alert_dead_letters} messages reached `${google_pubsub_topic.dead_letter.name}` within
      5 minutes. Each carries its reason in the `gluefleet-error-class` and
      `gluefleet-error` attributes (or Pub/Sub's `CloudPubSubDeadLetter*`
      attributes when Pub/Sub forwarded it); read them on
      `${google_pubsub_subscription.dead_letter_inspect.name}`.

      Runbook: [dead letters](${var.alert_runbook_url}#alert-dead-letters).
    EOT
  }
}

# ---------------------------------------------------------------------------
# The worker's metrics: need the collector sidecar (collector.tf)
# ---------------------------------------------------------------------------

# Nacks at shutdown (reason="shutdown") are left out: every new revision or
# scale-in hands back the messages in work, which is no failure.
resource "google_monitoring_alert_policy" "error_ratio" {
  count = var.monitoring ? 1 : 0

  project      = var.project_id
  display_name = "gluefleet ${var.connector}: error ratio"
  combiner     = "OR"
  severity     = "ERROR"
  user_labels  = local.alert_policy_labels["error-ratio"]

  notification_channels = var.alert_notification_channels

  conditions {
    display_name = "${local.name}: more than ${var.alert_error_ratio * 100} % of settled messages failed over 10 min"
    condition_prometheus_query_language {
      query               = "sum(rate(gluefleet_messages_settled_total{${local.metrics_selector},outcome=~\"dead-lettered|nacked|dead-letter-failed\",reason!=\"shutdown\"}[10m])) / sum(rate(gluefleet_messages_settled_total{${local.metrics_selector}}[10m])) > ${var.alert_error_ratio}"
      duration            = "0s"
      evaluation_interval = "60s"
    }
  }

  documentation {
    subject   = "gluefleet ${var.connector}: more than ${var.alert_error_ratio * 100} % of messages failing"
    mime_type = "text/markdown"
    content   = <<-EOT
      Over the last 10 minutes more than ${var.alert_error_ratio * 100} % of the messages
      `${local.name}` settled were dead-lettered, nacked for a retry, or could not
      be dead-lettered. The dashboard's "Nacks by reason" and "Dead letters by
      reason" charts say which.

      Runbook: [error ratio](${var.alert_runbook_url}#alert-error-ratio).
    EOT
  }
}

resource "google_monitoring_dashboard" "connector" {
  count = var.monitoring ? 1 : 0

  project = var.project_id
  dashboard_json = templatefile("${path.module}/../monitoring/dashboard.json.tftpl", {
    connector                    = var.connector
    name                         = local.name
    project_id                   = var.project_id
    subscription                 = google_pubsub_subscription.source.name
    dead_letter_topic            = google_pubsub_topic.dead_letter.name
    dead_letter_subscription     = google_pubsub_subscription.dead_letter_inspect.name
    backlog_threshold            = var.alert_backlog_messages
    oldest_unacked_age_threshold = local.alert_oldest_unacked_age_seconds
    error_ratio_threshold        = var.alert_error_ratio
    runbook_url                  = var.alert_runbook_url
  })
}
