output "function_urls" {
  description = "run.app URL of each unit."
  value       = module.api.function_urls
}

output "api_domain" {
  description = "The API's domain."
  value       = module.api.api_domain
}

output "api_url" {
  description = "Base URL clients use."
  value       = module.api.api_url
}

output "load_balancer_ip" {
  description = "Address the domain's A record must point at."
  value       = module.api.load_balancer_ip
}

output "sql_connection_name" {
  description = "Cloud SQL connection name."
  value       = module.api.sql_connection_name
}

output "redis_host" {
  description = "Memorystore private IP."
  value       = module.api.redis_host
}

output "bucket" {
  description = "Bucket for uploads and reports."
  value       = module.api.bucket
}

output "image_repository" {
  description = "Artifact Registry path for images (cloudbuild.yaml's _IMAGE)."
  value       = module.api.image_repository
}

output "deployer_service_account" {
  description = "Service account for the Cloud Build trigger."
  value       = module.api.deployer_service_account
}

output "migrate_job" {
  description = "Cloud Run migration job."
  value       = module.api.migrate_job
}

output "smoke_job" {
  description = "Cloud Run smoke-test job."
  value       = module.api.smoke_job
}

output "service_accounts" {
  description = "Service account of each unit."
  value       = module.api.service_accounts
}

output "connection_budget" {
  description = "Database connections the units may open vs. what max_connections leaves."
  value       = module.api.connection_budget
}
