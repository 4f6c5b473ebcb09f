variable "project_id" {
  description = "Google Cloud project id."
  type        = string
}

variable "region" {
  description = "Region of the subnet used by Cloud Run's Direct VPC egress."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of every resource name, e.g. imangor-prod."
  type        = string
}

variable "run_subnet_cidr" {
  description = "CIDR of the Cloud Run egress subnet (a /22 gives about 500 instances)."
  type        = string
  default     = "10.10.0.0/22"

  validation {
    condition     = can(cidrhost(var.run_subnet_cidr, 0)) && tonumber(split("/", var.run_subnet_cidr)[1]) <= 26
    error_message = "run_subnet_cidr must be an IPv4 CIDR of /26 or larger (Direct VPC egress minimum)."
  }
}

variable "private_services_prefix_length" {
  description = "Size of the range allocated to private service access (Cloud SQL, Memorystore)."
  type        = number
  default     = 20

  validation {
    condition     = var.private_services_prefix_length >= 16 && var.private_services_prefix_length <= 24
    error_message = "private_services_prefix_length must be between 16 and 24."
  }
}
