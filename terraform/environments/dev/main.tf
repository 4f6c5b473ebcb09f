# The dev environment. State lives in GCS; the bucket and prefix are given at init:
#   terraform init -backend-config="bucket=PROJECT-tfstate" -backend-config="prefix=imangor/dev"
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

  environment = "dev"
  project_id  = var.project_id
  region      = var.region
  domain      = var.domain
  image       = var.image
  inventory   = local.inventory

  max_instances_cap = 2
  database = {
    tier                 = "db-custom-1-3840"
    availability_type    = "ZONAL"
    disk_size_gb         = 10
    max_connections      = 100
    reserved_connections = 10
    retained_backups     = 7
  }
  redis = {
    tier           = "BASIC"
    memory_size_gb = 1
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
