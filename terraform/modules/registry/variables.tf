variable "inventory" {
  description = "Decoded terraform/generated/inventory.json: units, queues, schedules and the database pool, as the code's registry declares them."
  type        = any

  validation {
    condition     = try(!var.inventory.units["health"].internal, false)
    error_message = "The inventory needs a public `health` unit: the uptime check and the release smoke test call its /health and /ready."
  }
  validation {
    condition = alltrue([
      for unit in values(var.inventory.units) :
      length(setsubtract(unit.needs, ["database", "redis", "storage", "tasks", "mail"])) == 0
    ])
    error_message = "A unit's needs must be a subset of database, redis, storage, tasks, mail."
  }
  validation {
    condition     = length(var.inventory.schedules) == 0 || contains(keys(var.inventory.units), "cron")
    error_message = "Scheduled jobs are registered but there is no `cron` unit to receive them."
  }
  validation {
    condition     = alltrue([for unit in values(var.inventory.units) : unit.max_instances >= unit.min_instances])
    error_message = "A unit's max_instances must be at least its min_instances."
  }
  validation {
    # A request thread that found no pooled connection would wait (or open and close one).
    condition = alltrue([
      for unit in values(var.inventory.units) : !contains(unit.needs, "database") || unit.pool_size >= unit.concurrency
    ])
    error_message = "A database unit's pool_size must be at least its concurrency (one connection per request thread)."
  }
}

variable "project_id" {
  description = "Google Cloud project id."
  type        = string
}

variable "project_number" {
  description = "Google Cloud project number (Cloud Run's deterministic URLs contain it)."
  type        = string
}

variable "region" {
  description = "Region of the Cloud Run services and Cloud Tasks queues."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of every resource name, e.g. imangor-prod."
  type        = string

  validation {
    # A unit's service account id is PREFIX-UNIT and must fit in 30 characters.
    condition     = can(regex("^[a-z][a-z0-9-]{2,16}$", var.name_prefix))
    error_message = "name_prefix: 3-17 lower-case letters, digits or hyphens, starting with a letter."
  }
}

variable "max_instances_cap" {
  description = "Upper bound on every unit's max_instances in this environment (the registry's value applies below it)."
  type        = number

  validation {
    condition     = var.max_instances_cap >= 1 && floor(var.max_instances_cap) == var.max_instances_cap
    error_message = "max_instances_cap must be a positive integer."
  }
}

variable "platform" {
  description = "Names of the shared resources the units are configured with."
  type = object({
    instance_connection_name    = string
    database_name               = string
    bucket                      = string
    secret_key_secret           = string
    redis_url_secret            = string
    first_admin_password_secret = string
    first_admin_email           = string
    db_owner                    = string
    db_owner_password_secret    = string
    mail = optional(object({
      smtp_host = string
      smtp_port = number
      smtp_user = string
      from      = string
      reset_url = string
    }))
    smtp_password_secret = string
    tasks_invoker_email  = string
    scheduler_email      = string
    cors_origins         = list(string)
    log_level            = string
    app_env              = map(string)
    jwt = object({
      algorithm          = string
      key_id             = string
      public_keys        = map(string)
      private_key_secret = string
    })
  })

  validation {
    condition     = contains(["HS256", "RS256", "ES256"], var.platform.jwt.algorithm)
    error_message = "jwt.algorithm must be HS256, RS256 or ES256."
  }
}

variable "behind_load_balancer" {
  description = "Public units sit behind the HTTPS load balancer (ingress: internal and load balancer) or answer on their own run.app URL (ingress: all)."
  type        = bool
  default     = true
}
