variable "project_id" {
  description = "Google Cloud project id."
  type        = string
}

variable "region" {
  description = "Region of the job."
  type        = string
}

variable "name" {
  description = "Short name of the job (migrate, smoke)."
  type        = string
}

variable "job_name" {
  description = "Cloud Run job name."
  type        = string
}

variable "account_id" {
  description = "Service account id the job runs as."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.account_id))
    error_message = "account_id must be 6-30 lower-case letters, digits or hyphens."
  }
}

variable "description" {
  description = "What the job's account is for."
  type        = string
}

variable "image" {
  description = "Container image for the first version (Cloud Build updates it per release)."
  type        = string
}

variable "command" {
  description = "Container command."
  type        = list(string)
}

variable "args" {
  description = "Default arguments (an execution may override them)."
  type        = list(string)
  default     = []
}

variable "env" {
  description = "Plain environment variables."
  type        = map(string)
  default     = {}
}

variable "secrets" {
  description = "Env name => Secret Manager secret id; the job's account may read exactly these."
  type        = map(string)
  default     = {}
}

variable "timeout" {
  description = "Longest a task may run, e.g. 600s."
  type        = string
  default     = "600s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.timeout))
    error_message = "timeout must be a number of seconds such as 600s."
  }
}

variable "max_retries" {
  description = "Retries of a failed task."
  type        = number
  default     = 0
}

variable "egress" {
  description = "PRIVATE_RANGES_ONLY, or ALL_TRAFFIC so that calls to run.app count as internal."
  type        = string
  default     = "PRIVATE_RANGES_ONLY"

  validation {
    condition     = contains(["PRIVATE_RANGES_ONLY", "ALL_TRAFFIC"], var.egress)
    error_message = "egress must be PRIVATE_RANGES_ONLY or ALL_TRAFFIC."
  }
}

variable "network_id" {
  description = "VPC for Direct VPC egress."
  type        = string
}

variable "subnetwork_id" {
  description = "Subnet for Direct VPC egress."
  type        = string
}

variable "deployer_email" {
  description = "Cloud Build's deployer account, which updates and runs the job."
  type        = string
}

variable "deletion_protection" {
  description = "Refuse to delete the job from Terraform."
  type        = bool
  default     = true
}

variable "labels" {
  description = "Labels put on the job."
  type        = map(string)
  default     = {}
}

variable "iam_propagation_wait" {
  description = "How long the job waits after its secret grants change (IAM propagation), e.g. 60s."
  type        = string
  default     = "90s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.iam_propagation_wait))
    error_message = "iam_propagation_wait must be a number of seconds such as 90s."
  }
}
