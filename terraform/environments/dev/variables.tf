variable "project_id" {
  description = "Google Cloud project of this environment."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project id (6-30 lower-case letters, digits, hyphens)."
  }
}

variable "region" {
  description = "Region of every regional resource."
  type        = string
  default     = "europe-west1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))
    error_message = "region must be a Google Cloud region such as europe-west1."
  }
}

variable "domain" {
  description = "The API's public domain, e.g. api.example.com (its A record must point at the load balancer)."
  type        = string

  validation {
    condition     = can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,}$", var.domain))
    error_message = "domain must be a lower-case DNS name such as api.example.com."
  }
}

variable "image" {
  description = "Image of the first revisions (Cloud Build deploys the following ones); any public image works for the first apply."
  type        = string
  default     = "us-docker.pkg.dev/cloudrun/container/hello"

  validation {
    condition     = can(regex("^[a-z0-9.-]+(:[0-9]+)?/[a-z0-9._/-]+(:[A-Za-z0-9._-]+|@sha256:[a-f0-9]{64})?$", var.image)) && !endswith(var.image, ":latest")
    error_message = "image must be a registry path (tag or digest, never :latest)."
  }
}

variable "cors_origins" {
  description = "Web origins allowed to call the API and to use signed upload URLs."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for o in var.cors_origins : can(regex("^https://[^/*]+$", o))])
    error_message = "cors_origins must be https origins without path or wildcard."
  }
}

variable "app_env" {
  description = "Extra plain settings for every unit, e.g. { GOOGLE_CLIENT_IDS = jsonencode([\"id.apps.googleusercontent.com\"]) }."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.app_env) : can(regex("^[A-Z][A-Z0-9_]*$", k))])
    error_message = "app_env keys are upper-case setting names."
  }
}

variable "jwt" {
  description = "JWT signing: HS256 (SECRET_KEY) or RS256/ES256 with a key id and the public keys by kid (see infra/README.md)."
  type = object({
    algorithm   = optional(string, "HS256")
    key_id      = optional(string, "k1")
    public_keys = optional(map(string), {})
  })
  default = {}

  validation {
    condition     = contains(["HS256", "RS256", "ES256"], var.jwt.algorithm) && can(regex("^[A-Za-z0-9._-]{1,64}$", var.jwt.key_id))
    error_message = "jwt.algorithm must be HS256, RS256 or ES256 and jwt.key_id 1-64 letters, digits, . _ -."
  }
}

variable "alert_emails" {
  description = "Addresses that receive the alerts."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for e in var.alert_emails : can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", e))])
    error_message = "alert_emails must be e-mail addresses."
  }
}

variable "first_admin_email" {
  description = "E-mail of the first admin, created by the migration job (empty: none). Its password is generated into Secret Manager."
  type        = string
  default     = ""

  validation {
    condition     = var.first_admin_email == "" || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.first_admin_email))
    error_message = "first_admin_email must be empty or an e-mail address."
  }
}

variable "secret_key_version" {
  description = "Bump to rotate SECRET_KEY (a new random key is written; the previous version is disabled)."
  type        = number
  default     = 1

  validation {
    condition     = var.secret_key_version >= 1 && floor(var.secret_key_version) == var.secret_key_version
    error_message = "secret_key_version must be a positive integer."
  }
}

variable "waf_preview" {
  description = "Let the Cloud Armor WAF rules only log (to tune them) instead of blocking."
  type        = bool
  default     = false
}

variable "rate_limit_per_minute" {
  description = "Requests per minute one client IP may send through the load balancer."
  type        = number
  default     = 600

  validation {
    condition     = var.rate_limit_per_minute >= 10
    error_message = "rate_limit_per_minute must be at least 10."
  }
}
