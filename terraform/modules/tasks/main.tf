# Cloud Tasks queues, with the rate limits and retry policy declared in the code
# (imangor.tasks.queues), and the account whose OIDC tokens the queued HTTP tasks carry.

terraform {
  required_providers {
    google = { source = "hashicorp/google" }
  }
}

resource "google_service_account" "invoker" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-tasks-inv"
  display_name = "Imangor Cloud Tasks invoker"
  description  = "Identity in the OIDC tokens of queued tasks; may only invoke the tasks unit."
}

resource "google_cloud_tasks_queue" "queue" {
  for_each = var.queues
  project  = var.project_id
  name     = each.value.name
  location = var.region

  rate_limits {
    max_dispatches_per_second = each.value.max_dispatches_per_second
    max_concurrent_dispatches = each.value.max_concurrent_dispatches
  }

  retry_config {
    max_attempts  = each.value.max_attempts
    min_backoff   = each.value.min_backoff
    max_backoff   = each.value.max_backoff
    max_doublings = each.value.max_doublings
  }

  stackdriver_logging_config {
    sampling_ratio = var.logging_sampling_ratio
  }
}

# The tasks invoker may call the tasks unit, and nothing else.
resource "google_cloud_run_v2_service_iam_member" "invoke_tasks_unit" {
  for_each = toset(var.target_service == "" ? [] : [var.target_service])
  project  = var.project_id
  location = var.region
  name     = each.value
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.invoker.email}"
}
