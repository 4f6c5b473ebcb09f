# Cloud SQL for PostgreSQL: private IP only, IAM database authentication, backups with
# point-in-time recovery, both kinds of deletion protection, and a max_connections flag that
# the units' pools must fit under (checked below and in tests/infra/test_terraform.py).

terraform {
  required_providers {
    google = { source = "hashicorp/google" }
  }
}

locals {
  # Logging flags follow the CIS benchmark; query insights covers slow statements.
  flags = {
    "max_connections"             = tostring(var.max_connections)
    "cloudsql.iam_authentication" = "on"
    "cloudsql.enable_pgaudit"     = "on"
    "pgaudit.log"                 = "ddl,role"
    "log_checkpoints"             = "on"
    "log_connections"             = "on"
    "log_disconnections"          = "on"
    "log_lock_waits"              = "on"
    "log_hostname"                = "on"
    "log_temp_files"              = "0"
    "log_min_messages"            = "warning"
    "log_min_error_statement"     = "error"
    "log_min_duration_statement"  = "-1"
    "log_statement"               = "ddl"
  }
}

resource "google_sql_database_instance" "main" {
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

    ip_configuration {
      ipv4_enabled       = false
      private_network    = var.network_id
      allocated_ip_range = var.allocated_ip_range
      ssl_mode           = "ENCRYPTED_ONLY"
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

    dynamic "database_flags" {
      for_each = local.flags
      content {
        name  = database_flags.key
        value = database_flags.value
      }
    }
  }

  lifecycle {
    precondition {
      condition     = var.connection_demand <= var.max_connections - var.reserved_connections
      error_message = "The units may open ${var.connection_demand} connections (sum of max_instances x (pool_size + max_overflow)) but max_connections - reserve is ${var.max_connections - var.reserved_connections}: lower max_instances or the pool, or raise max_connections."
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
