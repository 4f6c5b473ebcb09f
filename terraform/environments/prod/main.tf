# The prod environment: modules/api holds the whole stack (inputs documented and validated
# there, once); this root holds only what is prod's own. State lives in GCS; the bucket and
# prefix are given at init:
#   terraform init -backend-config="bucket=PROJECT-tfstate" -backend-config="prefix=imangor/prod"
# Ops supply `site` in terraform.tfvars (see terraform.tfvars.example). The sizing is committed
# here, not in tfvars, because tests/infra/test_terraform.py checks the connection budget of it.

terraform {
  required_version = ">= 1.11, < 2.0" # write-only secret values need 1.11

  required_providers {
    # Exactly the version whose schema tests/infra/test_provider_schema.py checks
    # (infra/tools/provider-google.txt); move both together.
    google = { source = "hashicorp/google", version = "6.50.0" }
    random = { source = "hashicorp/random", version = "~> 3.7" }
    time   = { source = "hashicorp/time", version = "~> 0.13" } # waits for IAM and new metrics
  }

  backend "gcs" {}
}

provider "google" {
  project        = var.site.project_id
  region         = var.site.region
  default_labels = { managed-by = "terraform" }
}

variable "site" {
  description = "project_id, region, domain, cors_origins, alert_emails, first_admin_email: modules/api/variables.tf documents and validates each."
  type        = any
}

module "api" {
  source = "../../modules/api"

  environment = "prod"
  site        = var.site
  # Units, routes, queues and schedules come from the code (make inventory), never by hand.
  inventory = jsondecode(file("${path.module}/../../generated/inventory.json"))

  # Highly available: regional Cloud SQL with 30 days of backups, replicated Redis.
  # Sized for a peak of 600 req/s of the capacity model's mix (infra/capacity.py, README
  # Capacity); tests/infra/test_capacity.py checks these sizes against it.
  max_instances_cap   = 10
  deletion_protection = true
  # One HTTPS domain behind the load balancer and Cloud Armor (WAF, per-IP bans).
  load_balancer = true
  # The OWASP rules log before they block: switch to false once their logs show no false
  # positives on real traffic (infra/README.md, Cloud Armor). cve-canary always blocks.
  waf_preview      = true
  release_approval = true # a person approves each release (gcloud builds approve)
  database = {
    tier                 = "db-custom-4-16384"
    availability_type    = "REGIONAL"
    disk_size_gb         = 20
    max_connections      = 600
    reserved_connections = 15
    retained_backups     = 30
  }
  redis = {
    tier           = "STANDARD_HA"
    memory_size_gb = 2
  }
}

output "api" {
  description = "Every output of modules/api (function_urls, api_url, load_balancer_ip, sql_connection_name, deployer_service_account, ...): terraform output -json api."
  value       = module.api
}
