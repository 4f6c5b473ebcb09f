output "function_urls" {
  description = "run.app URL of each unit's Cloud Run service."
  value       = { for name, unit in module.unit : name => unit.uri }
}

output "service_names" {
  description = "Cloud Run service of each unit."
  value       = { for name, unit in module.unit : name => unit.service_name }
}

output "service_accounts" {
  description = "Service account of each unit."
  value       = { for name, unit in module.unit : name => unit.service_account_email }
}

output "api_domain" {
  description = "The API's domain (null without a load balancer: clients use endpoints)."
  value       = var.load_balancer ? var.site.domain : null
}

output "api_url" {
  description = "Base URL clients use with a load balancer (null without one: see endpoints)."
  value       = var.load_balancer ? "https://${var.site.domain}" : null
}

output "endpoints" {
  description = "Each public path prefix (/items, /auth, ...) with the URL to call: the API domain with a load balancer, else the unit's own run.app URL."
  value       = { for prefix, url in module.registry.endpoints : prefix => var.load_balancer ? "https://${var.site.domain}" : url }
}

output "load_balancer_ip" {
  description = "Point the domain's A record here; the certificate provisions once it resolves (null without a load balancer)."
  value       = one(module.load_balancer[*].ip_address)
}

output "sql_connection_name" {
  description = "Cloud SQL connection name (INSTANCE_CONNECTION_NAME)."
  value       = module.database.connection_name
}

output "sql_instance" {
  description = "Cloud SQL instance name."
  value       = module.database.instance_name
}

output "redis_host" {
  description = "Memorystore private IP."
  value       = module.redis.host
}

output "redis_auth_secret" {
  description = "Secret Manager secret holding the Redis AUTH string."
  value       = module.redis.auth_secret_id
}

output "bucket" {
  description = "Bucket for uploads and reports."
  value       = module.storage.bucket
}

output "image_repository" {
  description = "Artifact Registry path images are pushed to (cloudbuild.yaml's _IMAGE is this plus /api)."
  value       = "${var.site.region}-docker.pkg.dev/${var.site.project_id}/${google_artifact_registry_repository.images.repository_id}"
}

output "deployer_service_account" {
  description = "Service account the Cloud Build trigger runs as."
  value       = google_service_account.deployer.email
}

output "migrate_job" {
  description = "Cloud Run job that migrates the database."
  value       = module.migrate.job_name
}

output "smoke_job" {
  description = "Cloud Run job that smoke-tests tagged revisions."
  value       = module.smoke.job_name
}

output "dast_job" {
  description = "Cloud Run job that runs schemathesis against tagged revisions before traffic moves."
  value       = module.dast.job_name
}

output "queues" {
  description = "Cloud Tasks queue ids."
  value       = module.tasks.queue_ids
}

output "scheduler_jobs" {
  description = "Cloud Scheduler job of each registered cron job."
  value       = module.scheduler.job_names
}

output "connection_budget" {
  description = "Database connections: the units' demand at their max instances and during a release, against what max_connections minus the reserve allows and the 25% of it kept free."
  value = {
    demand         = module.registry.connection_demand
    rollout_demand = module.registry.rollout_connection_demand
    available      = var.database.max_connections - var.database.reserved_connections
    allowed        = floor((var.database.max_connections - var.database.reserved_connections) * 0.75)
  }
}

output "release_trigger" {
  description = "Cloud Build trigger of releases (empty without site.release); prod's waits for an approval."
  value       = one(google_cloudbuild_trigger.release[*].name)
}
