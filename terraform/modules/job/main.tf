# A Cloud Run job on the shared image: the schema migration (python -m imangor.migrate) and
# the post-deploy smoke test run this way, inside the VPC, each as its own account.

terraform {
  required_providers {
    google = { source = "hashicorp/google" }
    time   = { source = "hashicorp/time" }
  }
}

resource "google_service_account" "job" {
  project      = var.project_id
  account_id   = var.account_id
  display_name = "Imangor ${var.name} job"
  description  = var.description
}

resource "google_cloud_run_v2_job" "job" {
  project             = var.project_id
  name                = var.job_name
  location            = var.region
  deletion_protection = var.deletion_protection
  labels              = merge(var.labels, { job = var.name })

  template {
    task_count  = 1
    parallelism = 1

    template {
      service_account = google_service_account.job.email
      timeout         = var.timeout
      max_retries     = var.max_retries

      vpc_access {
        egress = var.egress
        network_interfaces {
          network    = var.network_id
          subnetwork = var.subnetwork_id
        }
      }

      containers {
        image   = var.image
        command = var.command
        args    = var.args

        resources {
          limits = {
            cpu    = "1"
            memory = "512Mi"
          }
        }

        dynamic "env" {
          for_each = var.env
          content {
            name  = env.key
            value = env.value
          }
        }

        dynamic "env" {
          for_each = var.secrets
          content {
            name = env.key
            value_source {
              secret_key_ref {
                secret  = env.value
                version = "latest"
              }
            }
          }
        }
      }
    }
  }

  lifecycle {
    # Cloud Build points the job at each release's image before running it.
    ignore_changes = [client, client_version, template[0].template[0].containers[0].image]
  }

  # Its secrets must be readable (grants propagated) when the job is created and run.
  depends_on = [time_sleep.iam_propagation]
}

# See modules/unit: IAM grants take a minute or more to propagate.
resource "time_sleep" "iam_propagation" {
  create_duration = var.iam_propagation_wait
  triggers = {
    grants = sha1(jsonencode([for g in google_secret_manager_secret_iam_member.env : g.id]))
  }
}

resource "google_secret_manager_secret_iam_member" "env" {
  for_each  = var.secrets
  project   = var.project_id
  secret_id = each.value
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.job.email}"
}

resource "google_service_account_iam_member" "deployer_act_as" {
  service_account_id = google_service_account.job.name
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${var.deployer_email}"
}
