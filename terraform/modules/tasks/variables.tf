variable "project_id" {
  description = "Google Cloud project id."
  type        = string
}

variable "region" {
  description = "Location of the queues."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of resource names, e.g. imangor-prod."
  type        = string
}

variable "queues" {
  description = "Queues by name, from the registry module (durations already as \"1s\" strings)."
  type = map(object({
    name                      = string
    max_attempts              = number
    min_backoff               = string
    max_backoff               = string
    max_doublings             = number
    max_dispatches_per_second = number
    max_concurrent_dispatches = number
  }))

  validation {
    condition     = alltrue([for q in values(var.queues) : q.max_dispatches_per_second <= 500 && q.max_concurrent_dispatches <= 5000])
    error_message = "Cloud Tasks allows at most 500 dispatches per second and 5000 concurrent dispatches."
  }
}

variable "target_service" {
  description = "Cloud Run service of the tasks unit (empty while the code has none)."
  type        = string
}

variable "logging_sampling_ratio" {
  description = "Share of task operations logged to Cloud Logging (0-1)."
  type        = number
  default     = 1.0

  validation {
    condition     = var.logging_sampling_ratio >= 0 && var.logging_sampling_ratio <= 1
    error_message = "logging_sampling_ratio must be between 0 and 1."
  }
}
