# Uptime check on /health through the public domain, alert policies (5xx ratio, p99 latency,
# dead tasks, Cloud SQL CPU and connections, Redis memory) and the API dashboard, whose JSON
# lives in infra/dashboards/ so that it can be edited and reviewed as a file.

terraform {
  required_providers {
    google = { source = "hashicorp/google" }
    time   = { source = "hashicorp/time" }
  }
}

locals {
  dashboard_template = "${path.module}/../../../infra/dashboards/api.json"
  service_regex      = "${var.name_prefix}-.*"
  sql_database_id    = "${var.project_id}:${var.sql_instance}"
  redis_instance_id  = "projects/${var.project_id}/locations/${var.region}/instances/${var.redis_instance}"
  channels           = [for c in google_monitoring_notification_channel.email : c.id]
}

resource "google_monitoring_notification_channel" "email" {
  for_each     = toset(var.alert_emails)
  project      = var.project_id
  display_name = "Imangor ${var.environment} on-call: ${each.value}"
  type         = "email"
  labels = {
    email_address = each.value
  }
}

resource "google_monitoring_uptime_check_config" "health" {
  project      = var.project_id
  display_name = "${var.name_prefix} /health"
  timeout      = "10s"
  period       = "60s"
  checker_type = "STATIC_IP_CHECKERS"

  http_check {
    path           = "/health"
    port           = 443
    use_ssl        = true
    validate_ssl   = true
    request_method = "GET"
    accepted_response_status_codes {
      status_class = "STATUS_CLASS_2XX"
    }
  }

  monitored_resource {
    type = "uptime_url"
    labels = {
      project_id = var.project_id
      host       = var.uptime_host
    }
  }
}

resource "google_monitoring_alert_policy" "uptime" {
  project               = var.project_id
  display_name          = "${var.name_prefix}: /health is failing"
  combiner              = "OR"
  notification_channels = local.channels
  severity              = "CRITICAL"

  conditions {
    display_name = "Uptime check failing from several locations"
    condition_threshold {
      filter          = "metric.type=\"monitoring.googleapis.com/uptime_check/check_passed\" AND metric.label.check_id=\"${google_monitoring_uptime_check_config.health.uptime_check_id}\" AND resource.type=\"uptime_url\""
      comparison      = "COMPARISON_GT"
      threshold_value = 1
      duration        = "300s"
      aggregations {
        alignment_period     = "1200s"
        per_series_aligner   = "ALIGN_NEXT_OLDER"
        cross_series_reducer = "REDUCE_COUNT_FALSE"
        group_by_fields      = ["resource.label.*"]
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "https://${var.uptime_host}/health fails. Check the load balancer, the certificate and the health unit's revisions (infra/README.md, Rollback)."
  }
}

resource "google_monitoring_alert_policy" "error_ratio" {
  project               = var.project_id
  display_name          = "${var.name_prefix}: 5xx ratio above ${var.error_ratio_threshold * 100}%"
  combiner              = "OR"
  notification_channels = local.channels
  severity              = "ERROR"

  conditions {
    display_name = "Share of 5xx responses per unit"
    condition_prometheus_query_language {
      query               = <<-PROMQL
        sum by (service_name) (rate(run_googleapis_com:request_count{monitored_resource="cloud_run_revision", service_name=~"${local.service_regex}", response_code_class="5xx"}[5m]))
        /
        sum by (service_name) (rate(run_googleapis_com:request_count{monitored_resource="cloud_run_revision", service_name=~"${local.service_regex}"}[5m]))
        > ${var.error_ratio_threshold}
      PROMQL
      duration            = "300s"
      evaluation_interval = "60s"
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A unit answers more than ${var.error_ratio_threshold * 100}% 5xx. Look at its ERROR logs (request_id groups one request); roll back if a release caused it (infra/README.md)."
  }
}

resource "google_monitoring_alert_policy" "latency" {
  project               = var.project_id
  display_name          = "${var.name_prefix}: p99 latency above ${var.latency_p99_ms} ms"
  combiner              = "OR"
  notification_channels = local.channels
  severity              = "WARNING"

  conditions {
    display_name = "p99 request latency per unit"
    condition_prometheus_query_language {
      query               = <<-PROMQL
        histogram_quantile(0.99, sum by (le, service_name) (rate(run_googleapis_com:request_latencies_bucket{monitored_resource="cloud_run_revision", service_name=~"${local.service_regex}"}[5m])))
        > ${var.latency_p99_ms}
      PROMQL
      duration            = "600s"
      evaluation_interval = "60s"
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "p99 latency of a unit is above ${var.latency_p99_ms} ms for 10 minutes: check cold starts (min instances), database CPU and slow queries (Query Insights)."
  }
}

# Dead tasks: imangor.tasks.runner logs one ERROR line "task KIND ID is dead after N
# attempts: ..." when a task has used all its attempts (the same event its Prometheus counter
# tasks_dead_total counts in-process); this log-based metric counts those lines per task kind.
resource "google_logging_metric" "tasks_dead" {
  project     = var.project_id
  name        = "tasks_dead_total"
  description = "Background tasks that exhausted their retries (recorded, never dropped)."
  filter      = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=~\"^${var.name_prefix}-\" AND jsonPayload.logger=\"imangor.tasks.runner\" AND jsonPayload.message=~\"^task \\S+ \\S+ is dead after\""

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
    labels {
      key         = "task"
      value_type  = "STRING"
      description = "Task kind"
    }
  }

  label_extractors = {
    task = "REGEXP_EXTRACT(jsonPayload.message, \"^task (\\S+) \")"
  }
}

# Cloud Monitoring refuses an alert on a log-based metric it does not know yet, for up to ten
# minutes after the metric is created: the alerts read the metric's type through this wait,
# so they are created only once it has passed (again only if a metric is replaced).
resource "time_sleep" "log_metrics" {
  create_duration = var.log_metric_wait
  triggers = {
    tasks_dead         = "logging.googleapis.com/user/${google_logging_metric.tasks_dead.name}"
    scheduler_failures = "logging.googleapis.com/user/${google_logging_metric.scheduler_failures.name}"
    request_duration   = "logging.googleapis.com/user/${google_logging_metric.request_duration.name}"
    app_errors         = "logging.googleapis.com/user/${google_logging_metric.app_errors.name}"
  }
}

# ---- The seed's metric names, as log-based metrics ------------------------------------------
# /metrics (Prometheus, per instance) is not exposed and nothing scrapes it: a Managed
# Prometheus sidecar would double every instance's containers. Every request writes one
# access-log line (imangor.request, with Cloud Logging's httpRequest), so the same figures
# come from it under the same names: http_request_duration_seconds (a distribution of the
# latency, by method and status) and app_errors_total (answers >= 400, by status class). The
# unit is the service_name of each series; the seed's per-route label has no log field.
locals {
  access_log = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=~\"^${var.name_prefix}-\" AND jsonPayload.logger=\"imangor.request\""
}

resource "google_logging_metric" "request_duration" {
  project     = var.project_id
  name        = "http_request_duration_seconds"
  description = "Time from request received to response ready, per unit (the access log's httpRequest.latency)."
  filter      = local.access_log

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "s"
    labels {
      key         = "method"
      value_type  = "STRING"
      description = "HTTP method"
    }
    labels {
      key         = "status"
      value_type  = "STRING"
      description = "HTTP status"
    }
  }

  value_extractor = "REGEXP_EXTRACT(httpRequest.latency, \"([0-9.]+)s\")"
  label_extractors = {
    method = "EXTRACT(httpRequest.requestMethod)"
    status = "EXTRACT(httpRequest.status)"
  }

  # The seed histogram's buckets.
  bucket_options {
    explicit_buckets {
      bounds = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
    }
  }
}

resource "google_logging_metric" "app_errors" {
  project     = var.project_id
  name        = "app_errors_total"
  description = "Requests that ended in an error (status >= 400), per unit and status class."
  filter      = "${local.access_log} AND httpRequest.status>=400"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
    labels {
      key         = "status_class"
      value_type  = "STRING"
      description = "4xx or 5xx"
    }
  }

  label_extractors = {
    status_class = "REGEXP_EXTRACT(httpRequest.status, \"^([45])\")"
  }
}

# Cloud Scheduler logs each attempt's outcome; an attempt the cron unit did not answer 2xx
# (or did not answer at all) is an ERROR entry of the job's resource.
resource "google_logging_metric" "scheduler_failures" {
  project     = var.project_id
  name        = "scheduler_failures_total"
  description = "Cloud Scheduler attempts of this environment's jobs that failed."
  filter      = "resource.type=\"cloud_scheduler_job\" AND resource.labels.job_id=~\"^${var.name_prefix}-\" AND severity>=ERROR"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
  }
}

resource "google_monitoring_alert_policy" "dead_tasks" {
  project               = var.project_id
  display_name          = "${var.name_prefix}: background tasks died"
  combiner              = "OR"
  notification_channels = local.channels
  severity              = "ERROR"

  conditions {
    display_name = "tasks_dead_total increased"
    condition_threshold {
      filter          = "metric.type=\"${time_sleep.log_metrics.triggers["tasks_dead"]}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.task"]
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A background task exhausted its retries. GET /jobs/{id} shows its last error; fix the cause, then re-enqueue it."
  }
}

resource "google_monitoring_alert_policy" "scheduler_failures" {
  project               = var.project_id
  display_name          = "${var.name_prefix}: a scheduled job failed"
  combiner              = "OR"
  notification_channels = local.channels
  severity              = "ERROR"

  conditions {
    display_name = "Cloud Scheduler attempts that failed"
    condition_threshold {
      filter          = "metric.type=\"${time_sleep.log_metrics.triggers["scheduler_failures"]}\" AND resource.type=\"cloud_scheduler_job\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period     = "600s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.job_id"]
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A Cloud Scheduler job's attempt failed (the cron unit answered an error or not at all). Its logs: resource.type=\"cloud_scheduler_job\"; run it by hand with `gcloud scheduler jobs run JOB --location=${var.region}` once fixed."
  }
}

resource "google_monitoring_alert_policy" "queue_depth" {
  project               = var.project_id
  display_name          = "${var.name_prefix}: Cloud Tasks backlog above ${var.queue_depth_threshold}"
  combiner              = "OR"
  notification_channels = local.channels
  severity              = "WARNING"

  conditions {
    display_name = "Tasks waiting per queue"
    condition_prometheus_query_language {
      query               = "sum by (queue_id) (cloudtasks_googleapis_com:queue_depth{monitored_resource=\"cloud_tasks_queue\"}) > ${var.queue_depth_threshold}"
      duration            = "600s"
      evaluation_interval = "60s"
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A queue holds more than ${var.queue_depth_threshold} tasks for 10 minutes: the tasks unit is failing or slower than arrivals, or the queue's rate (max_dispatches_per_second) is below the load. See the dashboard's Business section."
  }
}

# Cloud Tasks publishes no age of its oldest task; how late attempts run against their
# schedule (task_attempt_delays) is what grows when the oldest tasks wait.
resource "google_monitoring_alert_policy" "task_delay" {
  project               = var.project_id
  display_name          = "${var.name_prefix}: tasks wait more than ${var.task_delay_threshold_s} s"
  combiner              = "OR"
  notification_channels = local.channels
  severity              = "WARNING"

  conditions {
    display_name = "p99 delay of task attempts per queue"
    condition_prometheus_query_language {
      query               = "histogram_quantile(0.99, sum by (le, queue_id) (rate(cloudtasks_googleapis_com:queue_task_attempt_delays_bucket{monitored_resource=\"cloud_tasks_queue\"}[10m]))) > ${var.task_delay_threshold_s * 1000}"
      duration            = "600s"
      evaluation_interval = "60s"
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "Tasks start more than ${var.task_delay_threshold_s} s after they were due: a backlog (see the queue depth alert) or retries backing off. Password-reset mail waits as long."
  }
}

resource "google_monitoring_alert_policy" "sql_disk" {
  project               = var.project_id
  display_name          = "${var.name_prefix}: Cloud SQL disk above ${var.sql_disk_threshold * 100}%"
  combiner              = "OR"
  notification_channels = local.channels
  severity              = "WARNING"

  conditions {
    display_name = "Cloud SQL disk utilization"
    condition_threshold {
      filter          = "metric.type=\"cloudsql.googleapis.com/database/disk/utilization\" AND resource.type=\"cloudsql_database\" AND resource.label.database_id=\"${local.sql_database_id}\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.sql_disk_threshold
      duration        = "600s"
      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "Cloud SQL's disk is filling: it grows by itself up to disk_autoresize_limit_gb (modules/database); past that writes stop. Raise the limit, or find what grows (Query Insights, table sizes)."
  }
}

resource "google_monitoring_alert_policy" "load_balancer_5xx" {
  count                 = var.forwarding_rule == "" ? 0 : 1
  project               = var.project_id
  display_name          = "${var.name_prefix}: load balancer 5xx ratio above ${var.error_ratio_threshold * 100}%"
  combiner              = "OR"
  notification_channels = local.channels
  severity              = "ERROR"

  conditions {
    display_name = "Share of 5xx answered at the edge"
    condition_prometheus_query_language {
      query               = <<-PROMQL
        sum(rate(loadbalancing_googleapis_com:https_request_count{monitored_resource="https_lb_rule", forwarding_rule_name="${var.forwarding_rule}", response_code_class="500"}[5m]))
        /
        sum(rate(loadbalancing_googleapis_com:https_request_count{monitored_resource="https_lb_rule", forwarding_rule_name="${var.forwarding_rule}"}[5m]))
        > ${var.error_ratio_threshold}
      PROMQL
      duration            = "300s"
      evaluation_interval = "60s"
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "The load balancer answers more than ${var.error_ratio_threshold * 100}% 5xx: units failing (see the per-unit 5xx alert), no healthy backend, or a certificate or Cloud Armor problem. Its logs: resource.type=\"http_load_balancer\"."
  }
}

resource "google_monitoring_alert_policy" "sql_cpu" {
  project               = var.project_id
  display_name          = "${var.name_prefix}: Cloud SQL CPU above ${var.sql_cpu_threshold * 100}%"
  combiner              = "OR"
  notification_channels = local.channels
  severity              = "WARNING"

  conditions {
    display_name = "Cloud SQL CPU utilization"
    condition_threshold {
      filter          = "metric.type=\"cloudsql.googleapis.com/database/cpu/utilization\" AND resource.type=\"cloudsql_database\" AND resource.label.database_id=\"${local.sql_database_id}\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.sql_cpu_threshold
      duration        = "600s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MEAN"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "Cloud SQL CPU is high: look at Query Insights for the top queries, then scale the tier."
  }
}

resource "google_monitoring_alert_policy" "sql_connections" {
  project               = var.project_id
  display_name          = "${var.name_prefix}: Cloud SQL connections near max_connections"
  combiner              = "OR"
  notification_channels = local.channels
  severity              = "WARNING"

  conditions {
    display_name = "Backends above ${var.connections_threshold * 100}% of max_connections (${var.max_connections})"
    condition_threshold {
      filter          = "metric.type=\"cloudsql.googleapis.com/database/postgresql/num_backends\" AND resource.type=\"cloudsql_database\" AND resource.label.database_id=\"${local.sql_database_id}\""
      comparison      = "COMPARISON_GT"
      threshold_value = floor(var.max_connections * var.connections_threshold)
      duration        = "300s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_MEAN"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.database_id"]
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "Connections approach max_connections: a pool leak, or more instances than the connection budget allows (tests/infra/test_terraform.py)."
  }
}

resource "google_monitoring_alert_policy" "redis_memory" {
  project               = var.project_id
  display_name          = "${var.name_prefix}: Redis memory above ${var.redis_memory_threshold * 100}%"
  combiner              = "OR"
  notification_channels = local.channels
  severity              = "WARNING"

  conditions {
    display_name = "Memorystore memory usage ratio"
    condition_threshold {
      filter          = "metric.type=\"redis.googleapis.com/stats/memory/usage_ratio\" AND resource.type=\"redis_instance\" AND resource.label.instance_id=\"${local.redis_instance_id}\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.redis_memory_threshold
      duration        = "600s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MEAN"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "Redis memory is high: keys are evicted (allkeys-lru), rate limits may reset early. Raise memory_size_gb."
  }
}

resource "google_monitoring_dashboard" "api" {
  project = var.project_id
  dashboard_json = templatefile(local.dashboard_template, {
    title           = "Imangor API (${var.environment})"
    service_regex   = local.service_regex
    sql_database_id = local.sql_database_id
    redis_instance  = local.redis_instance_id
    forwarding_rule = var.forwarding_rule
    max_connections = var.max_connections
  })
}
