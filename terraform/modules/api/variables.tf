variable "environment" {
  description = "Stage name: dev or prod (prefixes every resource: imangor-ENV-...)."
  type        = string

  validation {
    condition     = contains(["dev", "prod"], var.environment)
    error_message = "environment must be dev or prod."
  }
}

variable "project_id" {
  description = "Google Cloud project of this environment (one project per environment)."
  type        = string
}

variable "region" {
  description = "Region of every regional resource."
  type        = string
}

variable "domain" {
  description = "The API's public domain (one REST surface for every unit)."
  type        = string
}

variable "image" {
  description = "Image for the first revision of each unit and job; Cloud Build deploys later ones."
  type        = string
}

variable "inventory" {
  description = "Decoded terraform/generated/inventory.json (generated from the code's registry)."
  type        = any
}

variable "max_instances_cap" {
  description = "Upper bound on every unit's max_instances in this environment."
  type        = number
}

variable "database" {
  description = "Cloud SQL sizing. max_connections must hold every unit's pool plus the reserve."
  type = object({
    tier                 = string
    availability_type    = optional(string, "ZONAL")
    disk_size_gb         = optional(number, 10)
    max_connections      = number
    reserved_connections = optional(number, 10)
    retained_backups     = optional(number, 14)
  })
}

variable "redis" {
  description = "Memorystore sizing."
  type = object({
    tier           = optional(string, "BASIC")
    memory_size_gb = optional(number, 1)
  })
  default = {}
}

variable "cors_origins" {
  description = "Web origins allowed by the API (CORS_ORIGINS) and by the bucket's CORS."
  type        = list(string)
  default     = []
}

variable "log_level" {
  description = "LOG_LEVEL of the units."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR"], var.log_level)
    error_message = "log_level must be DEBUG, INFO, WARNING or ERROR."
  }
}

variable "app_env" {
  description = "Extra plain settings for every unit and the migration job (e.g. GOOGLE_CLIENT_IDS, EMAIL_BACKEND)."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.app_env) : can(regex("^[A-Z][A-Z0-9_]*$", k))])
    error_message = "app_env keys are upper-case setting names."
  }
  validation {
    condition = length(setintersection(keys(var.app_env), [
      "ENVIRONMENT", "SECRET_KEY", "REDIS_URL", "DATABASE_URL", "DB_PASSWORD", "JWT_PRIVATE_KEY", "FIRST_ADMIN_PASSWORD", "SMTP_PASSWORD",
    ])) == 0
    error_message = "app_env cannot set ENVIRONMENT or secrets (those come from Secret Manager)."
  }
}

variable "jwt" {
  description = "Token signing: HS256 with SECRET_KEY, or RS256/ES256 with JWT_PRIVATE_KEY (secret PREFIX-jwt-private-key), key id and the public keys by kid."
  type = object({
    algorithm   = optional(string, "HS256")
    key_id      = optional(string, "k1")
    public_keys = optional(map(string), {})
  })
  default = {}

  validation {
    condition     = contains(["HS256", "RS256", "ES256"], var.jwt.algorithm)
    error_message = "jwt.algorithm must be HS256, RS256 or ES256."
  }
}

variable "alert_emails" {
  description = "Addresses notified by the alert policies."
  type        = list(string)
  default     = []
}

variable "first_admin_email" {
  description = "FIRST_ADMIN_EMAIL for the migration job (empty: no first admin)."
  type        = string
  default     = ""
}

variable "secret_key_version" {
  description = "Bump to generate a new SECRET_KEY (rotation); the previous version is disabled."
  type        = number
  default     = 1
}

variable "waf_preview" {
  description = "Cloud Armor WAF rules only log instead of blocking."
  type        = bool
  default     = false
}

variable "rate_limit_per_minute" {
  description = "Requests per minute per client IP at the load balancer."
  type        = number
  default     = 600
}

variable "deletion_protection" {
  description = "Protect the database, services and jobs against deletion."
  type        = bool
  default     = true
}
