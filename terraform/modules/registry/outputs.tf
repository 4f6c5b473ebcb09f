output "units" {
  description = "Per unit: service and account names, URL, ingress, sizing, LB paths, env and secrets."
  value       = local.deploy

  precondition {
    condition     = alltrue([for unit in values(local.deploy) : length(unit.account_id) <= 30])
    error_message = "A service account id (PREFIX-UNIT) is longer than 30 characters: shorten name_prefix."
  }
}

output "queues" {
  description = "Cloud Tasks queues with their rate limits and retry policy."
  value       = local.queues
}

output "schedules" {
  description = "Cloud Scheduler jobs: cron expression, time zone, target URI and OIDC audience."
  value       = local.schedules
}

output "migrate" {
  description = "The migration job's account id, env and secrets."
  value       = local.migrate
}

output "tasks_url" {
  description = "URL of the tasks unit (Cloud Tasks target)."
  value       = local.tasks_url
}

output "cron_url" {
  description = "URL of the cron unit (Cloud Scheduler target)."
  value       = local.cron_url
}

output "oidc_audience" {
  description = "Audience of every service-to-service OIDC token."
  value       = local.oidc_audience
}

output "connections_per_instance" {
  description = "Database connections one instance may open: pool_size + max_overflow."
  value       = local.connections_per_instance
}

output "connection_demand" {
  description = "Most connections all units together may open: sum of max_instances x (pool_size + max_overflow)."
  value       = local.connection_demand
}
