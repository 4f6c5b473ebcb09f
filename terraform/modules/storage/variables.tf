variable "project_id" {
  description = "Google Cloud project id."
  type        = string
}

variable "name" {
  description = "Globally unique bucket name."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$", var.name))
    error_message = "Bucket names are 3-63 lower-case letters, digits, dots, hyphens or underscores."
  }
}

variable "location" {
  description = "Bucket location (the region of the units keeps signed-URL traffic local)."
  type        = string
}

variable "cors_origins" {
  description = "Origins allowed to PUT/GET through signed URLs (the web app's origins)."
  type        = list(string)

  validation {
    condition     = alltrue([for o in var.cors_origins : can(regex("^https?://[^/*]+$", o))])
    error_message = "cors_origins must be origins such as https://app.example.com (no path, no wildcard)."
  }
}

variable "report_retention_days" {
  description = "Days a generated report under reports/ is kept."
  type        = number
  default     = 30

  validation {
    condition     = var.report_retention_days >= 1
    error_message = "report_retention_days must be at least 1."
  }
}

variable "uploads_nearline_after_days" {
  description = "Days after which an upload under uploads/ moves to NEARLINE storage."
  type        = number
  default     = 90

  validation {
    condition     = var.uploads_nearline_after_days >= 30
    error_message = "NEARLINE has a 30-day minimum storage duration."
  }
}

variable "noncurrent_retention_days" {
  description = "Days an overwritten or deleted object version stays recoverable, before soft delete's days (a deleted upload is gone after both)."
  type        = number
  default     = 1

  validation {
    condition     = var.noncurrent_retention_days >= 1
    error_message = "noncurrent_retention_days must be at least 1."
  }
}

variable "soft_delete_days" {
  description = "Days a deleted object stays restorable by Cloud Storage's soft delete (0 turns it off; else 7 to 90)."
  type        = number
  default     = 7

  validation {
    condition     = var.soft_delete_days == 0 || (var.soft_delete_days >= 7 && var.soft_delete_days <= 90)
    error_message = "soft_delete_days must be 0 or between 7 and 90."
  }
}

variable "labels" {
  description = "Labels put on the bucket."
  type        = map(string)
  default     = {}
}
