# Cloud SQL for PostgreSQL: private IP only, IAM database authentication, backups with
# point-in-time recovery, both kinds of deletion protection, and a max_connections flag that
# the units' pools must fit under (checked below and in tests/infra/test_terraform.py).

terraform {
  required_providers {
    google = { source = "hashicorp/google" }
  }
}

resource "google_sql_database_instance" "main" {
  #checkov:skip=CKV2_GCP_13:log_duration would log a line per statement at API volume; Query Insights records per-query latency
  project             = var.project_id
  name                = var.name
  region              = var.region
  database_version    = var.database_version
  deletion_protection = var.deletion_protection # Terraform refuses to destroy it

  settings {
    tier                        = var.tier
    edition                     = "ENTERPRISE"
    availability_type           = var.availability_type
    disk_type                   = "PD_SSD"
    disk_size                   = var.disk_size_gb
    disk_autoresize             = true
    disk_autoresize_limit       = var.disk_autoresize_limit_gb
    deletion_protection_enabled = var.deletion_protection # the API refuses to delete it
    user_labels                 = var.labels
    # Backups outlive the instance: a deletion (deliberate or not) keeps its last backups.
    retain_backups_on_delete = true
    # Only the Cloud SQL connectors (which the units and jobs use) may connect: no direct
    # private-IP client, even inside the VPC, without IAM's cloudsql.instances.connect.
    connector_enforcement = "REQUIRED"

    ip_configuration {
      ipv4_enabled       = false
      private_network    = var.network_id
      allocated_ip_range = var.allocated_ip_range
      ssl_mode           = "TRUSTED_CLIENT_CERTIFICATE_REQUIRED" # the Cloud SQL connectors present one
    }

    backup_configuration {
      enabled                        = true
      point_in_time_recovery_enabled = true
      start_time                     = var.backup_start_time
      transaction_log_retention_days = var.transaction_log_retention_days

      backup_retention_settings {
        retained_backups = var.retained_backups
        retention_unit   = "COUNT"
      }
    }

    maintenance_window {
      day          = var.maintenance_day
      hour         = var.maintenance_hour
      update_track = "stable"
    }

    insights_config {
      query_insights_enabled  = true
      query_plans_per_minute  = 5
      query_string_length     = 1024
      record_application_tags = true
      record_client_address   = false
    }

    # The connection budget (see the precondition below) is checked against this flag.
    # PostgreSQL keeps superuser_reserved_connections (3) of it for Cloud SQL's own agent.
    database_flags {
      name  = "max_connections"
      value = tostring(var.max_connections)
    }
    database_flags {
      name  = "cloudsql.iam_authentication"
      value = "on"
    }
    # Logging as the CIS benchmark asks; Query Insights covers slow statements. pgAudit also
    # needs its extension in the database: the migration job creates it (imangor.migrate).
    database_flags {
      name  = "cloudsql.enable_pgaudit"
      value = "on"
    }
    database_flags {
      name  = "pgaudit.log"
      value = "ddl,role"
    }
    database_flags {
      name  = "log_checkpoints"
      value = "on"
    }
    database_flags {
      name  = "log_connections"
      value = "on"
    }
    database_flags {
      name  = "log_disconnections"
      value = "on"
    }
    database_flags {
      name  = "log_lock_waits"
      value = "on"
    }
    database_flags {
      name  = "log_hostname"
      value = "on"
    }
    database_flags {
      name  = "log_temp_files"
      value = "0"
    }
    database_flags {
      name  = "log_min_messages"
      value = "warning"
    }
    database_flags {
      name  = "log_min_error_statement"
      value = "error"
    }
    database_flags {
      name  = "log_min_duration_statement"
      value = "-1"
    }
    database_flags {
      name  = "log_statement"
      value = "ddl"
    }
  }

  lifecycle {
    # The connection budget: every unit at its max instances, during a release too, leaves
    # `connection_headroom` (at least a quarter) of what max_connections minus the reserve
    # allows unused, for Cloud Run briefly exceeding its maximum and for what lingers.
    precondition {
      condition     = var.rollout_connection_demand <= floor((var.max_connections - var.reserved_connections) * (1 - var.connection_headroom))
      error_message = "The units may open ${var.rollout_connection_demand} connections during a release (${var.connection_demand} at their max instances, plus one instance per unit being smoke-tested), more than ${floor((var.max_connections - var.reserved_connections) * (1 - var.connection_headroom))}: ${(1 - var.connection_headroom) * 100}% of max_connections ${var.max_connections} minus the reserve ${var.reserved_connections}. Lower max_instances or the pool, or raise max_connections (and the tier)."
    }
  }
}

resource "google_sql_database" "app" {
  project  = var.project_id
  name     = var.database_name
  instance = google_sql_database_instance.main.name
  # Dropping the database is never Terraform's job.
  deletion_policy = "ABANDON"
}
