variable "project_id" {
  description = "Google Cloud project id."
  type        = string
}

variable "region" {
  description = "Region of the instance."
  type        = string
}

variable "name" {
  description = "Instance name; the secrets are NAME-auth and NAME-url."
  type        = string
}

variable "network_id" {
  description = "VPC id authorized to reach the instance."
  type        = string
}

variable "reserved_ip_range" {
  description = "Name of the private service access range to take the IP from."
  type        = string
}

variable "tier" {
  description = "BASIC (one node) or STANDARD_HA (replicated, automatic failover)."
  type        = string
  default     = "BASIC"

  validation {
    condition     = contains(["BASIC", "STANDARD_HA"], var.tier)
    error_message = "tier must be BASIC or STANDARD_HA."
  }
}

variable "memory_size_gb" {
  description = "Memory size in GiB."
  type        = number
  default     = 1

  validation {
    condition     = var.memory_size_gb >= 1 && var.memory_size_gb <= 300
    error_message = "memory_size_gb must be between 1 and 300."
  }
}

variable "redis_version" {
  description = "Redis version."
  type        = string
  default     = "REDIS_7_2"

  validation {
    condition     = can(regex("^REDIS_[67]_[0-9]$", var.redis_version))
    error_message = "redis_version must look like REDIS_7_2."
  }
}

variable "maintenance_day" {
  description = "Weekly maintenance day, e.g. SUNDAY."
  type        = string
  default     = "SUNDAY"

  validation {
    condition     = contains(["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"], var.maintenance_day)
    error_message = "maintenance_day must be a day name in capitals."
  }
}

variable "maintenance_hour" {
  description = "Weekly maintenance start hour, 0-23 UTC."
  type        = number
  default     = 4

  validation {
    condition     = var.maintenance_hour >= 0 && var.maintenance_hour <= 23
    error_message = "maintenance_hour must be 0-23."
  }
}

variable "labels" {
  description = "Labels put on the instance and secrets."
  type        = map(string)
  default     = {}
}
