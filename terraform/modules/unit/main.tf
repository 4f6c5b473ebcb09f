# One function unit: a Cloud Run service running the shared image with FUNCTION_TARGET set,
# its own service account, and exactly the roles its registry `needs` call for.
#
# Cloud Build rolls out new images (`gcloud run deploy --no-traffic --tag`, then a traffic
# shift), so Terraform owns the configuration and ignores the image and the traffic split.

terraform {
  required_providers {
    google = { source = "hashicorp/google" }
    time   = { source = "hashicorp/time" }
  }
}

locals {
  needs  = toset(var.spec.needs)
  member = "serviceAccount:${google_service_account.unit.email}"
}

resource "google_service_account" "unit" {
  project      = var.project_id
  account_id   = var.spec.account_id
  display_name = "Imangor ${var.name} unit"
  description  = "Runs the ${var.name} Cloud Run function; roles follow its registry needs: ${join(", ", var.spec.needs)}."
}

resource "google_cloud_run_v2_service" "unit" {
  project             = var.project_id
  name                = var.spec.service_name
  location            = var.region
  ingress             = var.spec.ingress
  deletion_protection = var.deletion_protection
  # max-instances: the service-level maximum the release sets (`gcloud run services update
  # --max`), shared by every revision that carries traffic; google provider 6.50.0 has no
  # service-level max_instance_count to set it from here.
  labels = merge(var.labels, { unit = var.name, "max-instances" = tostring(var.spec.max_instances) })
  # Public units are called without Google credentials (by the load balancer, or by clients
  # on their own URL when an environment has none); the app authenticates users itself.
  # Behind a load balancer, ingress (internal + load balancer) keeps the internet off the
  # run.app URL. Internal units keep the IAM check: only the Cloud Tasks / Scheduler
  # accounts may invoke them.
  invoker_iam_disabled = !var.spec.internal
  # Internal units also accept the shared service-to-service audience in OIDC tokens.
  custom_audiences = var.spec.audiences

  # Minimum instances at the service level: divided among the revisions that carry traffic,
  # so a tagged revision without traffic (a release being smoke-tested) starts none.
  scaling {
    min_instance_count = var.spec.min_instances
  }

  template {
    service_account                  = google_service_account.unit.email
    timeout                          = var.spec.timeout
    max_instance_request_concurrency = var.spec.concurrency
    labels                           = { unit = var.name }

    # Each revision's own bound (also the service-level maximum's fallback if an apply
    # cleared it): the connection budget counts every unit at max_instances.
    scaling {
      max_instance_count = var.spec.max_instances
    }

    # Direct VPC egress: Cloud SQL and Memorystore private IPs; Google APIs stay direct.
    vpc_access {
      egress = "PRIVATE_RANGES_ONLY"
      network_interfaces {
        network    = var.network_id
        subnetwork = var.subnetwork_id
      }
    }

    containers {
      image = var.image

      ports {
        container_port = 8080
      }

      resources {
        limits = {
          cpu    = var.spec.cpu
          memory = var.spec.memory
        }
        cpu_idle          = true
        startup_cpu_boost = true
      }

      dynamic "env" {
        for_each = var.spec.env
        content {
          name  = env.key
          value = env.value
        }
      }

      dynamic "env" {
        for_each = var.spec.secrets
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

      # Probes go straight to the instance (imangor.runtime.probes answers them in every
      # unit). Startup: /ready, the database and Redis this unit needs answer; a TCP check
      # passed as soon as gunicorn listened, before Direct VPC egress could reach Cloud SQL.
      # Each attempt may take a cold Cloud SQL connector handshake; two minutes in all.
      startup_probe {
        http_get {
          path = "/ready"
          port = 8080
        }
        period_seconds    = 5
        timeout_seconds   = 4
        failure_threshold = 24
      }

      # Liveness: /health touches nothing, so only a process that stopped answering (three
      # misses in a row, 90 s) is restarted; a database outage does not restart instances.
      liveness_probe {
        http_get {
          path = "/health"
          port = 8080
        }
        period_seconds    = 30
        timeout_seconds   = 5
        failure_threshold = 3
      }
    }
  }

  lifecycle {
    ignore_changes = [
      client,
      client_version,
      template[0].containers[0].image,
      template[0].revision,
      traffic,
    ]
  }

  # The revision reads its secrets and logs in to Cloud SQL as its IAM user when it starts: its
  # grants must exist and have propagated first.
  depends_on = [time_sleep.iam_propagation, google_sql_user.unit]
}

# IAM changes take effect within about a minute, up to several (Google's "access change
# propagation"): a revision created right after its account's grants can fail to read its
# secrets or reach Cloud SQL and never start. Waits once per change of the unit's grants.
resource "time_sleep" "iam_propagation" {
  create_duration = var.iam_propagation_wait
  triggers = {
    grants = sha1(jsonencode(concat(
      [for g in google_secret_manager_secret_iam_member.env : g.id],
      google_project_iam_member.sql_client[*].id,
      google_project_iam_member.sql_instance_user[*].id,
      google_storage_bucket_iam_member.objects[*].id,
      google_service_account_iam_member.sign_urls[*].id,
      [for g in google_cloud_tasks_queue_iam_member.enqueue : g.id],
      google_service_account_iam_member.act_as_tasks_invoker[*].id,
    )))
  }
}

# ---- Secrets: exactly those mounted as env (SECRET_KEY, REDIS_URL) -------------------------

resource "google_secret_manager_secret_iam_member" "env" {
  for_each  = var.spec.secrets
  project   = var.project_id
  secret_id = each.value
  role      = "roles/secretmanager.secretAccessor"
  member    = local.member
}

# ---- database: connect through the connector, log in as an IAM database user --------------

resource "google_project_iam_member" "sql_client" {
  count   = contains(local.needs, "database") ? 1 : 0
  project = var.project_id
  role    = "roles/cloudsql.client"
  member  = local.member

  condition {
    title       = "only-${var.sql_instance}"
    description = "Cloud SQL connections to the Imangor instance only."
    expression  = var.sql_iam_condition
  }
}

resource "google_project_iam_member" "sql_instance_user" {
  count   = contains(local.needs, "database") ? 1 : 0
  project = var.project_id
  role    = "roles/cloudsql.instanceUser"
  member  = local.member

  condition {
    title       = "only-${var.sql_instance}"
    description = "IAM database login to the Imangor instance only."
    expression  = var.sql_iam_condition
  }
}

resource "google_sql_user" "unit" {
  count    = contains(local.needs, "database") ? 1 : 0
  project  = var.project_id
  instance = var.sql_instance
  # PostgreSQL IAM users are the account's e-mail without ".gserviceaccount.com".
  name = trimsuffix(google_service_account.unit.email, ".gserviceaccount.com")
  type = "CLOUD_IAM_SERVICE_ACCOUNT"
  # PostgreSQL refuses to drop a role that owns or was granted anything.
  deletion_policy = "ABANDON"
}

# ---- storage: objects of the one bucket, and signing URLs as itself ------------------------

resource "google_storage_bucket_iam_member" "objects" {
  count  = contains(local.needs, "storage") ? 1 : 0
  bucket = var.bucket
  role   = "roles/storage.objectUser"
  member = local.member
}

# V4 signed URLs without a key file: the unit signs through IAM signBlob, as itself only.
resource "google_service_account_iam_member" "sign_urls" {
  count              = contains(local.needs, "storage") ? 1 : 0
  service_account_id = google_service_account.unit.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.member
}

# ---- tasks: enqueue on our queues, with OIDC tokens of the tasks invoker account ----------

resource "google_cloud_tasks_queue_iam_member" "enqueue" {
  for_each = contains(local.needs, "tasks") ? var.queues : {}
  project  = var.project_id
  location = var.region
  name     = each.value
  role     = "roles/cloudtasks.enqueuer"
  member   = local.member
}

resource "google_service_account_iam_member" "act_as_tasks_invoker" {
  count              = contains(local.needs, "tasks") ? 1 : 0
  service_account_id = var.tasks_invoker_account
  role               = "roles/iam.serviceAccountUser"
  member             = local.member
}

# ---- delivery: Cloud Build deploys revisions that run as this account ----------------------

resource "google_service_account_iam_member" "deployer_act_as" {
  service_account_id = google_service_account.unit.name
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${var.deployer_email}"
}
