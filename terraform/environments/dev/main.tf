# The dev environment: modules/api holds the whole stack (inputs documented and validated
# there, once); this root holds only what is dev's own. State lives in GCS; the bucket and
# prefix are given at init:
#   terraform init -backend-config="bucket=PROJECT-tfstate" -backend-config="prefix=imangor/dev"
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

  environment = "dev"
  site        = var.site
  # Units, routes, queues and schedules come from the code (make inventory), never by hand.
  inventory = jsondecode(file("${path.module}/../../generated/inventory.json"))

  # Small and cheap: one zone, basic Redis, two instances per unit at most.
  # Sized for a peak of 20 req/s of the capacity model's mix (infra/capacity.py, README
  # Capacity); tests/infra/test_capacity.py checks these sizes against it.
  max_instances_cap   = 2
  deletion_protection = true
  # Each public unit on its own run.app URL, as the mission's clients call them (no load
  # balancer, Cloud Armor or domain to pay for): infra/README.md, Function URLs or one domain.
  load_balancer = false
  # No effect without a load balancer; preview is where a WAF starts (infra/README.md).
  waf_preview = true
  database = {
    tier                 = "db-custom-1-3840"
    availability_type    = "ZONAL"
    disk_size_gb         = 10
    max_connections      = 200
    reserved_connections = 12
    retained_backups     = 7
  }
  redis = {
    tier           = "BASIC"
    memory_size_gb = 1
  }
}

output "api" {
  description = "Every output of modules/api (function_urls, api_url, load_balancer_ip, sql_connection_name, deployer_service_account, ...): terraform output -json api."
  value       = module.api
}
