# One Cloud Scheduler job per cron job registered in the code, each a POST to the cron unit
# with an OIDC token of a dedicated account that may invoke the cron unit only.

terraform {
  required_providers {
    google = { source = "hashicorp/google" }
  }
}

resource "google_service_account" "scheduler" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-scheduler"
  display_name = "Imangor Cloud Scheduler invoker"
  description  = "Identity in the OIDC tokens of scheduled jobs; may only invoke the cron unit."
}

resource "google_cloud_scheduler_job" "job" {
  for_each         = var.schedules
  project          = var.project_id
  region           = var.region
  name             = "${var.name_prefix}-${replace(each.key, "_", "-")}"
  description      = "Registered cron job ${each.key}"
  schedule         = each.value.schedule
  time_zone        = each.value.time_zone
  attempt_deadline = var.attempt_deadline

  retry_config {
    retry_count          = 3
    min_backoff_duration = "10s"
    max_backoff_duration = "300s"
    max_doublings        = 3
  }

  http_target {
    http_method = "POST"
    uri         = each.value.uri
    headers     = { "Content-Type" = "application/json" }
    body        = base64encode("{}")

    oidc_token {
      service_account_email = google_service_account.scheduler.email
      audience              = each.value.audience
    }
  }
}

resource "google_cloud_run_v2_service_iam_member" "invoke_cron_unit" {
  for_each = toset(var.target_service == "" ? [] : [var.target_service])
  project  = var.project_id
  location = var.region
  name     = each.value
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.scheduler.email}"
}
