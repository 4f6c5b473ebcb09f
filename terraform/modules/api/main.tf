# The whole Imangor API in one environment: network, Cloud SQL, Memorystore, bucket, one
# Cloud Run service per registered unit, Cloud Tasks queues, Cloud Scheduler jobs, the HTTPS
# load balancer, the migration and smoke-test jobs, delivery identity and monitoring.
# What is deployed per unit comes from the code's registry through the registry module.
# Each environment root (terraform/environments/ENV) calls this module once, with its own
# sizing; every input is documented and validated in variables.tf, every output in outputs.tf.

terraform {
  required_providers {
    google = { source = "hashicorp/google" }
    random = { source = "hashicorp/random" }
    time   = { source = "hashicorp/time" }
  }
}

data "google_project" "this" {
  project_id = var.site.project_id
}

locals {
  name_prefix = "imangor-${var.environment}"
  labels      = { app = "imangor", environment = var.environment }

  secret_key_secret_id      = "${local.name_prefix}-secret-key"
  smtp_password_secret_id   = "${local.name_prefix}-smtp-password"
  first_admin_secret_id     = "${local.name_prefix}-first-admin-password"
  jwt_private_key_secret_id = "${local.name_prefix}-jwt-private-key"
  db_owner_secret_id        = "${local.name_prefix}-db-owner-password"
  db_owner                  = "imangor_owner"

  # Secret ids handed to the units and jobs come from the secret resources (or, for secrets ops
  # create at bootstrap, from data sources), never from plain strings: every IAM binding on a
  # secret then depends on the secret existing.
  first_admin_secret   = one(google_secret_manager_secret.first_admin_password[*].secret_id)
  smtp_password_secret = one(data.google_secret_manager_secret.smtp_password[*].secret_id)
  jwt_private_secret   = one(data.google_secret_manager_secret.jwt_private_key[*].secret_id)

  units        = module.registry.units
  public_units = { for name, unit in local.units : name => unit if !unit.internal }

}

module "registry" {
  source = "../registry"

  inventory         = var.inventory
  project_id        = var.site.project_id
  project_number    = data.google_project.this.number
  region            = var.site.region
  name_prefix       = local.name_prefix
  max_instances_cap = var.max_instances_cap

  behind_load_balancer = var.load_balancer

  platform = {
    instance_connection_name    = module.database.connection_name
    database_name               = module.database.database_name
    bucket                      = module.storage.bucket
    secret_key_secret           = google_secret_manager_secret.secret_key.secret_id
    redis_url_secret            = module.redis.url_secret_id
    first_admin_password_secret = local.first_admin_secret
    db_owner                    = local.db_owner
    db_owner_password_secret    = google_secret_manager_secret.db_owner_password.secret_id
    first_admin_email           = var.site.first_admin_email
    mail                        = var.site.mail
    smtp_password_secret        = local.smtp_password_secret
    tasks_invoker_email         = module.tasks.invoker_email
    scheduler_email             = module.scheduler.service_account_email
    cors_origins                = var.site.cors_origins
    log_level                   = var.log_level
    app_env                     = var.app_env
    jwt = {
      algorithm          = var.jwt.algorithm
      key_id             = var.jwt.key_id
      public_keys        = var.jwt.public_keys
      private_key_secret = local.jwt_private_secret
    }
  }
}

# ---- Network, data stores --------------------------------------------------------------

module "network" {
  source = "../network"

  project_id  = var.site.project_id
  region      = var.site.region
  name_prefix = local.name_prefix
}

module "database" {
  source = "../database"

  project_id                = var.site.project_id
  region                    = var.site.region
  name                      = "${local.name_prefix}-pg"
  network_id                = module.network.network_id
  allocated_ip_range        = module.network.private_services_range
  tier                      = var.database.tier
  availability_type         = var.database.availability_type
  disk_size_gb              = var.database.disk_size_gb
  max_connections           = var.database.max_connections
  reserved_connections      = var.database.reserved_connections
  retained_backups          = var.database.retained_backups
  connection_demand         = module.registry.connection_demand
  rollout_connection_demand = module.registry.rollout_connection_demand
  deletion_protection       = var.deletion_protection
  labels                    = local.labels

  depends_on = [module.network] # private service access must exist first
}

module "redis" {
  source = "../redis"

  project_id        = var.site.project_id
  region            = var.site.region
  name              = "${local.name_prefix}-redis"
  network_id        = module.network.network_id
  reserved_ip_range = module.network.private_services_range
  tier              = var.redis.tier
  memory_size_gb    = var.redis.memory_size_gb
  labels            = local.labels

  depends_on = [module.network]
}

module "storage" {
  source = "../storage"

  project_id   = var.site.project_id
  name         = "${var.site.project_id}-${local.name_prefix}-files"
  location     = var.site.region
  cors_origins = var.site.cors_origins
  labels       = local.labels
}

# ---- Secrets ----------------------------------------------------------------------------

# The JWT signing key. Generated at apply time and written write-only: it never enters the
# Terraform state. Bump secret_key_version to rotate (see infra/README.md).
resource "google_secret_manager_secret" "secret_key" {
  project   = var.site.project_id
  secret_id = local.secret_key_secret_id
  labels    = local.labels

  replication {
    auto {}
  }
}

ephemeral "random_password" "secret_key" {
  length  = 64
  special = false
}

resource "google_secret_manager_secret_version" "secret_key" {
  secret                 = google_secret_manager_secret.secret_key.id
  secret_data_wo         = ephemeral.random_password.secret_key.result
  secret_data_wo_version = var.secret_key_version
  # A rotated-out key is disabled, not destroyed: re-enable it to roll back.
  deletion_policy = "DISABLE"

  # Rotation writes the new version before the old one is disabled: `latest` always names
  # an enabled key (destroy-then-create left a moment where new instances could not start).
  lifecycle {
    create_before_destroy = true
  }
}

# The first admin's password (only when first_admin_email is set); read it once with
# `gcloud secrets versions access latest --secret=...`.
resource "google_secret_manager_secret" "first_admin_password" {
  count     = var.site.first_admin_email == "" ? 0 : 1
  project   = var.site.project_id
  secret_id = local.first_admin_secret_id
  labels    = local.labels

  replication {
    auto {}
  }
}

ephemeral "random_password" "first_admin_password" {
  count  = var.site.first_admin_email == "" ? 0 : 1
  length = 32
}

resource "google_secret_manager_secret_version" "first_admin_password" {
  count                  = var.site.first_admin_email == "" ? 0 : 1
  secret                 = google_secret_manager_secret.first_admin_password[0].id
  secret_data_wo         = ephemeral.random_password.first_admin_password[0].result
  secret_data_wo_version = 1
}

# Secrets only ops know (the SMTP relay's password, an RS256/ES256 signing key) are created,
# with their first version, by the bootstrap before the apply that first mounts them
# (infra/README.md, "Secrets ops supply"): a revision that mounts `latest` of a secret
# without a version never starts. Terraform reads only their metadata (never a payload, so
# nothing reaches the state) and grants access to them; a missing one stops the plan with
# "secret not found" before anything is created.
data "google_secret_manager_secret" "smtp_password" {
  count     = var.site.mail == null ? 0 : 1
  project   = var.site.project_id
  secret_id = local.smtp_password_secret_id
}

data "google_secret_manager_secret" "jwt_private_key" {
  count     = var.jwt.algorithm == "HS256" ? 0 : 1
  project   = var.site.project_id
  secret_id = local.jwt_private_key_secret_id
}

# ---- Container images and delivery identity ---------------------------------------------

resource "google_artifact_registry_repository" "images" {
  #checkov:skip=CKV_GCP_84:Images hold no customer data; Google-managed encryption is enough
  project       = var.site.project_id
  location      = var.site.region
  repository_id = "imangor"
  format        = "DOCKER"
  description   = "Imangor API images, tagged with the commit they were built from."
  labels        = local.labels

  docker_config {
    immutable_tags = true
  }

  cleanup_policy_dry_run = false
  cleanup_policies {
    id     = "keep-recent-releases"
    action = "KEEP"
    most_recent_versions {
      keep_count = 30
    }
  }
  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      older_than = "${90 * 24 * 3600}s"
    }
  }
}

# Layer cache of the Docker build (mutable tag, so kept out of the immutable repository).
resource "google_artifact_registry_repository" "build_cache" {
  #checkov:skip=CKV_GCP_84:Build cache layers only; Google-managed encryption is enough
  project       = var.site.project_id
  location      = var.site.region
  repository_id = "imangor-build-cache"
  format        = "DOCKER"
  description   = "Docker layer cache of the Imangor image build."
  labels        = local.labels

  cleanup_policy_dry_run = false
  cleanup_policies {
    id     = "delete-stale"
    action = "DELETE"
    condition {
      older_than = "${14 * 24 * 3600}s"
    }
  }
}

resource "google_service_account" "deployer" {
  project      = var.site.project_id
  account_id   = "${local.name_prefix}-deployer"
  display_name = "Imangor Cloud Build deployer"
  description  = "Runs cloudbuild.yaml: pushes images, runs the migration and smoke jobs, deploys revisions."
}

# run.developer: revisions, traffic, jobs; logWriter: the build's logs; builds.viewer: a
# release waits for older builds of the environment (one at a time); monitoring.viewer: it
# reads the new revisions' 5xx ratio before keeping them. The scan gate reads Artifact
# Registry's scan of the digest (`gcloud artifacts docker images describe
# --show-package-vulnerability`): occurrences.viewer lists the scan's occurrences (read
# only, no notes or IAM), serviceUsageViewer lets gcloud check that the Container Analysis
# API is on, which every `images describe` does first.
resource "google_project_iam_member" "deployer" {
  for_each = toset([
    "roles/run.developer", "roles/logging.logWriter", "roles/cloudbuild.builds.viewer", "roles/monitoring.viewer",
    "roles/containeranalysis.occurrences.viewer", "roles/serviceusage.serviceUsageViewer",
  ])
  project = var.site.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.deployer.email}"
}

resource "google_artifact_registry_repository_iam_member" "deployer_push" {
  for_each   = { images = google_artifact_registry_repository.images.name, cache = google_artifact_registry_repository.build_cache.name }
  project    = var.site.project_id
  location   = var.site.region
  repository = each.value
  role       = "roles/artifactregistry.writer"
  member     = "serviceAccount:${google_service_account.deployer.email}"
}

# Other environments' deployers that promote this one's digests (dev: prod's) may read them.
resource "google_artifact_registry_repository_iam_member" "readers" {
  for_each   = toset(var.site.image_readers)
  project    = var.site.project_id
  location   = var.site.region
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.reader"
  member     = each.value
}

# ... and describe them: `images describe` (how a promotion finds and checks the digest)
# reads this project's scan metadata of the image as well.
resource "google_project_iam_member" "reader_occurrences" {
  for_each = toset(var.site.image_readers)
  project  = var.site.project_id
  role     = "roles/containeranalysis.occurrences.viewer"
  member   = each.value
}

resource "google_project_iam_member" "reader_service_usage" {
  for_each = toset(var.site.image_readers)
  project  = var.site.project_id
  role     = "roles/serviceusage.serviceUsageViewer"
  member   = each.value
}

# Pushes to the branch run cloudbuild.yaml as the deployer. In prod the build waits for an
# approver (`gcloud builds approve`) and deploys the digest dev built and tested.
resource "google_cloudbuild_trigger" "release" {
  count              = var.site.release == null ? 0 : 1
  project            = var.site.project_id
  location           = "global"
  name               = "${local.name_prefix}-release"
  description        = "Imangor ${var.environment} release: cloudbuild.yaml on every push to ${var.site.release.branch}."
  filename           = "cloudbuild.yaml"
  service_account    = google_service_account.deployer.id
  include_build_logs = "INCLUDE_BUILD_LOGS_WITH_STATUS"

  github {
    owner = var.site.release.github_owner
    name  = var.site.release.github_repo
    push {
      branch = "^${var.site.release.branch}$"
    }
  }

  substitutions = {
    _ENV          = var.environment
    _REGION       = var.site.region
    _PROMOTE_FROM = var.site.release.promote_from
  }

  approval_config {
    approval_required = var.release_approval
  }
}

# ---- Background work ----------------------------------------------------------------------

module "tasks" {
  source = "../tasks"

  project_id     = var.site.project_id
  region         = var.site.region
  name_prefix    = local.name_prefix
  queues         = module.registry.queues
  target_service = contains(keys(local.units), "tasks") ? module.unit["tasks"].service_name : ""
}

module "scheduler" {
  source = "../scheduler"

  project_id     = var.site.project_id
  region         = var.site.region
  name_prefix    = local.name_prefix
  schedules      = module.registry.schedules
  target_service = contains(keys(local.units), "cron") ? module.unit["cron"].service_name : ""
}

# ---- The function units -----------------------------------------------------------------

module "unit" {
  source   = "../unit"
  for_each = local.units

  project_id            = var.site.project_id
  region                = var.site.region
  name                  = each.key
  spec                  = each.value
  image                 = var.image
  network_id            = module.network.network_id
  subnetwork_id         = module.network.subnetwork_id
  sql_instance          = module.database.instance_name
  sql_iam_condition     = module.database.iam_condition
  bucket                = module.storage.bucket
  queues                = module.tasks.queue_ids
  tasks_invoker_account = module.tasks.invoker_name
  deployer_email        = google_service_account.deployer.email
  deletion_protection   = var.deletion_protection
  labels                = local.labels

  # Revisions read SECRET_KEY and REDIS_URL at start: their first versions must exist.
  depends_on = [google_secret_manager_secret_version.secret_key, module.redis]
}

# ---- Migrations and smoke tests (Cloud Run jobs on the same image) ------------------------

module "migrate" {
  source = "../job"

  project_id          = var.site.project_id
  region              = var.site.region
  name                = "migrate"
  job_name            = "${local.name_prefix}-migrate"
  account_id          = module.registry.migrate.account_id
  description         = "Runs python -m imangor.migrate as the schema's owner (a built-in database user)."
  image               = var.image
  command             = ["python", "-m", "imangor.migrate"]
  env                 = module.registry.migrate.env
  secrets             = module.registry.migrate.secrets
  timeout             = "900s"
  network_id          = module.network.network_id
  subnetwork_id       = module.network.subnetwork_id
  deployer_email      = google_service_account.deployer.email
  deletion_protection = var.deletion_protection
  labels              = local.labels

  depends_on = [
    google_secret_manager_secret_version.secret_key,
    google_secret_manager_secret_version.first_admin_password,
    google_secret_manager_secret_version.db_owner_password,
    google_sql_user.owner,
  ]
}

# The migration job connects (through the Cloud SQL connector) as the schema's owner, a
# built-in user: Cloud SQL makes built-in users members of cloudsqlsuperuser, which may
# create the schema's tables in the database Terraform made, CREATE EXTENSION pgaudit and
# grant the units' IAM users their table rights; each release's migration job re-asserts
# all of it (imangor.migrate), so no one ever connects by hand. Its password is generated at
# apply and written write-only to the user and to the secret only the job reads: never in
# state. Bump db_owner_password_version to rotate (the next release reads the new one).
resource "google_project_iam_member" "migrate_sql" {
  project = var.site.project_id
  role    = "roles/cloudsql.client"
  member  = "serviceAccount:${module.migrate.service_account_email}"

  condition {
    title       = "only-${module.database.instance_name}"
    description = "The Imangor instance only."
    expression  = module.database.iam_condition
  }
}

ephemeral "random_password" "db_owner" {
  length  = 40
  special = false
}

resource "google_sql_user" "owner" {
  project             = var.site.project_id
  instance            = module.database.instance_name
  name                = local.db_owner
  type                = "BUILT_IN"
  password_wo         = ephemeral.random_password.db_owner.result
  password_wo_version = var.db_owner_password_version
  # It owns every table: never dropped by Terraform.
  deletion_policy = "ABANDON"
}

resource "google_secret_manager_secret" "db_owner_password" {
  project   = var.site.project_id
  secret_id = local.db_owner_secret_id
  labels    = local.labels

  replication {
    auto {}
  }
}

resource "google_secret_manager_secret_version" "db_owner_password" {
  secret                 = google_secret_manager_secret.db_owner_password.id
  secret_data_wo         = ephemeral.random_password.db_owner.result
  secret_data_wo_version = var.db_owner_password_version
  deletion_policy        = "DISABLE"

  lifecycle {
    create_before_destroy = true
  }
}

# Runs infra/tools/smoke.py against the tagged, traffic-less revisions of a release. Its
# egress goes through the VPC so that its calls to run.app count as internal traffic (public
# units only accept the load balancer and internal callers). It needs no role.
module "smoke" {
  source = "../job"

  project_id          = var.site.project_id
  region              = var.site.region
  name                = "smoke"
  job_name            = "${local.name_prefix}-smoke"
  account_id          = "${local.name_prefix}-smoke"
  description         = "Smoke-tests tagged revisions before they get traffic; holds no role."
  image               = var.image
  command             = ["python", "infra/tools/smoke.py"]
  timeout             = "300s"
  egress              = "ALL_TRAFFIC"
  network_id          = module.network.network_id
  subnetwork_id       = module.network.subnetwork_id
  deployer_email      = google_service_account.deployer.email
  deletion_protection = var.deletion_protection
  labels              = local.labels
}

# DAST before traffic: schemathesis (var.dast_image; Cloud Build sets the same pin,
# _DAST_IMAGE, before each run) against each public unit's tagged revision, from inside the
# VPC like the smoke job, running dast.sh. Cloud Build passes the schema URL (the tagged docs unit's
# /openapi.json), then per unit its tagged URL and the operationIds it may call
# (release.py dast-args: reads and the public sign-in calls, nothing that writes). It calls
# the API anonymously: its account holds no role and reads no secret. Bounded: at most
# DAST_MAX_EXAMPLES generated cases per operation and phase, DAST_UNIT_SECONDS per unit, and
# the job's timeout in all.
module "dast" {
  source = "../job"

  project_id  = var.site.project_id
  region      = var.site.region
  name        = "dast"
  job_name    = "${local.name_prefix}-dast"
  account_id  = "${local.name_prefix}-dast"
  description = "Runs schemathesis against tagged revisions before they get traffic; holds no role."
  image       = var.dast_image
  command     = ["/bin/sh", "-c", file("${path.module}/dast.sh"), "dast"]
  env = {
    DAST_CHECKS           = "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,ignored_auth"
    DAST_MAX_EXAMPLES     = "25"
    DAST_UNIT_SECONDS     = "150"
    SCHEMATHESIS_COVERAGE = "false"
  }
  timeout             = "1500s"
  egress              = "ALL_TRAFFIC"
  network_id          = module.network.network_id
  subnetwork_id       = module.network.subnetwork_id
  deployer_email      = google_service_account.deployer.email
  deletion_protection = var.deletion_protection
  labels              = local.labels
}


# ---- The API domain -----------------------------------------------------------------------

# Without it (load_balancer = false) each public unit answers on its own run.app URL:
# infra/README.md, "Function URLs or one domain", says what each mode costs and protects.
module "load_balancer" {
  source = "../load_balancer"
  count  = var.load_balancer ? 1 : 0

  project_id            = var.site.project_id
  region                = var.site.region
  name_prefix           = local.name_prefix
  domain                = var.site.domain
  units                 = { for name, unit in local.public_units : name => { service_name = module.unit[name].service_name, paths = unit.paths } }
  waf_preview           = var.waf_preview
  rate_limit_per_minute = var.rate_limit_per_minute
}

module "monitoring" {
  source = "../monitoring"

  project_id      = var.site.project_id
  region          = var.site.region
  environment     = var.environment
  name_prefix     = local.name_prefix
  domain          = var.site.domain
  sql_instance    = module.database.instance_name
  max_connections = var.database.max_connections
  redis_instance  = module.redis.instance_name
  forwarding_rule = try(module.load_balancer[0].forwarding_rule, "")
  uptime_host     = var.load_balancer ? var.site.domain : trimprefix(module.registry.units["health"].url, "https://")
  alert_emails    = var.site.alert_emails
}
