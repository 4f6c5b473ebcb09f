# The prod environment. State lives in GCS; the bucket and prefix are given at init:
#   terraform init -backend-config="bucket=PROJECT-tfstate" -backend-config="prefix=imangor/prod"
# Sizing is committed here (not in tfvars) because tests/infra/test_terraform.py checks the
# connection budget against it.

terraform {
  required_version = ">= 1.11, < 2.0" # write-only secret values need 1.11

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.30"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.7"
    }
  }

  backend "gcs" {}
}

provider "google" {
  project = var.project_id
  region  = var.region

  default_labels = {
    managed-by = "terraform"
  }
}

locals {
  # Units, routes, queues and schedules come from the code (make inventory), never by hand.
  inventory = jsondecode(file("${path.module}/../../generated/inventory.json"))
}

module "api" {
  source = "../../modules/api"

  environment = "prod"
  project_id  = var.project_id
  region      = var.region
  domain      = var.domain
  image       = var.image
  inventory   = local.inventory

  max_instances_cap = 10
  database = {
    tier                 = "db-custom-4-16384"
    availability_type    = "REGIONAL"
    disk_size_gb         = 20
    max_connections      = 400
    reserved_connections = 10
    retained_backups     = 30
  }
  redis = {
    tier           = "STANDARD_HA"
    memory_size_gb = 2
  }

  cors_origins          = var.cors_origins
  app_env               = var.app_env
  jwt                   = var.jwt
  alert_emails          = var.alert_emails
  first_admin_email     = var.first_admin_email
  secret_key_version    = var.secret_key_version
  waf_preview           = var.waf_preview
  rate_limit_per_minute = var.rate_limit_per_minute
}
