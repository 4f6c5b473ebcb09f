variable "project_id" {
  description = "Google Cloud project id."
  type        = string
}

variable "region" {
  description = "Region of the Memorystore instance."
  type        = string
}

variable "environment" {
  description = "dev or prod (shown in names)."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of resource names; the units' services are PREFIX-UNIT."
  type        = string
}

variable "domain" {
  description = "The API's domain (documentation links)."
  type        = string
}

variable "uptime_host" {
  description = "Host the uptime check calls /health on: the API domain, or the health unit's run.app host without a load balancer."
  type        = string
}

variable "sql_instance" {
  description = "Cloud SQL instance name."
  type        = string
}

variable "max_connections" {
  description = "The instance's max_connections flag."
  type        = number
}

variable "redis_instance" {
  description = "Memorystore instance name."
  type        = string
}

variable "forwarding_rule" {
  description = "Name of the load balancer's HTTPS forwarding rule (empty without a load balancer: no edge alert)."
  type        = string
  default     = ""
}

variable "alert_emails" {
  description = "Addresses notified by every alert policy (modules/api refuses an empty list in prod: alerts would reach nobody)."
  type        = list(string)
  default     = []
}

variable "error_ratio_threshold" {
  description = "Share of 5xx responses (0-1) above which a unit alerts."
  type        = number
  default     = 0.05

  validation {
    condition     = var.error_ratio_threshold > 0 && var.error_ratio_threshold < 1
    error_message = "error_ratio_threshold must be between 0 and 1."
  }
}

variable "latency_p99_ms" {
  description = "p99 request latency, in ms, above which a unit alerts."
  type        = number
  default     = 2000
}

variable "sql_cpu_threshold" {
  description = "Cloud SQL CPU utilization (0-1) that alerts."
  type        = number
  default     = 0.8
}

variable "connections_threshold" {
  description = "Share of max_connections (0-1) in use that alerts."
  type        = number
  default     = 0.8
}

variable "redis_memory_threshold" {
  description = "Redis memory usage ratio (0-1) that alerts."
  type        = number
  default     = 0.8
}

variable "log_metric_wait" {
  description = "Wait between creating a log-based metric and the alerts on it (Cloud Monitoring takes up to 10 minutes to accept it)."
  type        = string
  default     = "600s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.log_metric_wait))
    error_message = "log_metric_wait must be a number of seconds such as 600s."
  }
}

variable "queue_depth_threshold" {
  description = "Tasks waiting in one queue, for 10 minutes, that alert."
  type        = number
  default     = 1000
}

variable "task_delay_threshold_s" {
  description = "p99 delay, in seconds, of task attempts behind their schedule that alerts."
  type        = number
  default     = 300
}

variable "sql_disk_threshold" {
  description = "Cloud SQL disk utilization (0-1) that alerts."
  type        = number
  default     = 0.85
}
