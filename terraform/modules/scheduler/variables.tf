variable "project_id" {
  description = "Google Cloud project id."
  type        = string
}

variable "region" {
  description = "Region of the scheduler jobs."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of resource names, e.g. imangor-prod."
  type        = string
}

variable "schedules" {
  description = "Registered cron jobs by name: cron expression, time zone, target URI and OIDC audience."
  type = map(object({
    schedule  = string
    time_zone = string
    uri       = string
    audience  = string
  }))

  validation {
    condition     = alltrue([for name in keys(var.schedules) : can(regex("^[a-z][a-z0-9_-]{0,40}$", name))])
    error_message = "Cron job names must be lower-case letters, digits, - or _ (at most 41 characters)."
  }
}

variable "target_service" {
  description = "Cloud Run service of the cron unit (empty while the code has none)."
  type        = string
}

variable "attempt_deadline" {
  description = "How long Scheduler waits for the cron unit to answer."
  type        = string
  default     = "300s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.attempt_deadline))
    error_message = "attempt_deadline must be a number of seconds such as 300s."
  }
}
