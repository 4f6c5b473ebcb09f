variable "project_id" {
  description = "Google Cloud project id."
  type        = string
}

variable "region" {
  description = "Region of the Cloud Run service."
  type        = string
}

variable "name" {
  description = "Unit name as registered in the code (functions/<name>/main.py)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,11}$", var.name))
    error_message = "Unit names are 2-12 lower-case letters or digits."
  }
}

variable "spec" {
  description = "The unit's deployment as derived by the registry module from the inventory."
  type = object({
    service_name  = string
    account_id    = string
    ingress       = string
    audiences     = list(string)
    internal      = bool
    needs         = list(string)
    cpu           = string
    memory        = string
    concurrency   = number
    timeout       = string
    min_instances = number
    max_instances = number
    env           = map(string)
    secrets       = map(string)
  })

  validation {
    # Open ingress only for a public unit, and only when the environment has no load balancer.
    condition     = contains(["INGRESS_TRAFFIC_INTERNAL_ONLY", "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"], var.spec.ingress) || (var.spec.ingress == "INGRESS_TRAFFIC_ALL" && !var.spec.internal)
    error_message = "An internal unit is reachable only internally; a public one through the load balancer, or on its own URL when there is none."
  }
  validation {
    condition     = var.spec.concurrency >= 1 && var.spec.concurrency <= 1000
    error_message = "concurrency must be between 1 and 1000."
  }
}

variable "image" {
  description = "Container image for the first revision (later revisions come from Cloud Build)."
  type        = string
}

variable "network_id" {
  description = "VPC for Direct VPC egress."
  type        = string
}

variable "subnetwork_id" {
  description = "Subnet for Direct VPC egress."
  type        = string
}

variable "sql_instance" {
  description = "Cloud SQL instance name (for the IAM database user)."
  type        = string
}

variable "sql_iam_condition" {
  description = "IAM condition expression limiting Cloud SQL roles to the instance."
  type        = string
}

variable "bucket" {
  description = "Bucket for uploads and reports."
  type        = string
}

variable "queues" {
  description = "Cloud Tasks queue ids, by name, that a unit needing tasks may enqueue on."
  type        = map(string)
}

variable "tasks_invoker_account" {
  description = "Resource name (projects/P/serviceAccounts/EMAIL) of the account whose OIDC tokens Cloud Tasks sends."
  type        = string
}

variable "deployer_email" {
  description = "Cloud Build's deployer account, which must act as this unit's account to deploy it."
  type        = string
}

variable "deletion_protection" {
  description = "Refuse to delete the service from Terraform."
  type        = bool
  default     = true
}

variable "labels" {
  description = "Labels put on the service."
  type        = map(string)
  default     = {}
}

variable "iam_propagation_wait" {
  description = "How long the first revision waits after the unit's IAM grants change (IAM propagation), e.g. 60s."
  type        = string
  default     = "90s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.iam_propagation_wait))
    error_message = "iam_propagation_wait must be a number of seconds such as 90s."
  }
}
