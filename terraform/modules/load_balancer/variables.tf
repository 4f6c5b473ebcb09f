variable "project_id" {
  description = "Google Cloud project id."
  type        = string
}

variable "region" {
  description = "Region of the Cloud Run services (serverless NEGs are regional)."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of resource names, e.g. imangor-prod."
  type        = string
}

variable "domain" {
  description = "The API's domain; its DNS A record must point at the load balancer's address."
  type        = string
}

variable "units" {
  description = "Public units: Cloud Run service name and URL-map paths (P and P/* per prefix)."
  type = map(object({
    service_name = string
    paths        = list(string)
  }))

  validation {
    condition = alltrue(flatten([
      for unit in values(var.units) : [for p in unit.paths : can(regex("^/[A-Za-z0-9._~!$&'()+,;=:@/-]*(/\\*)?$", p))]
    ]))
    error_message = "URL-map paths start with / and may only end in /*."
  }
}

variable "waf_preview" {
  description = "Log what the WAF rules would block without blocking (to tune them)."
  type        = bool
  default     = false
}

variable "blocked_paths" {
  description = "Path prefixes the load balancer answers 404 to (e.g. /metrics)."
  type        = list(string)
  default     = ["/metrics"]

  validation {
    condition     = length(var.blocked_paths) > 0 && alltrue([for p in var.blocked_paths : can(regex("^/[A-Za-z0-9._/-]*$", p))])
    error_message = "blocked_paths needs at least one path prefix starting with /."
  }
}

variable "rate_limit_per_minute" {
  description = "Requests per minute one client IP may send before getting 429s."
  type        = number
  default     = 600

  validation {
    condition     = var.rate_limit_per_minute >= 10
    error_message = "rate_limit_per_minute must be at least 10."
  }
}

variable "ban_duration_sec" {
  description = "How long an IP that keeps exceeding the limit is banned, in seconds."
  type        = number
  default     = 600
}

variable "log_sample_rate" {
  description = "Share of requests logged by the load balancer (0-1)."
  type        = number
  default     = 1.0

  validation {
    condition     = var.log_sample_rate >= 0 && var.log_sample_rate <= 1
    error_message = "log_sample_rate must be between 0 and 1."
  }
}
