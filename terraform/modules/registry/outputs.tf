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
  description = "Database connections one instance of each unit may open: its pool_size + max_overflow (0 without a database)."
  value       = local.connections_per_instance
}

output "connection_demand" {
  description = "Most connections all units together may open at their max instances: sum of max_instances x connections_per_instance."
  value       = local.connection_demand
}

output "rollout_connection_demand" {
  description = "The same during a release: plus one instance per database unit (the tagged, traffic-less revision being smoke-tested)."
  value       = local.rollout_connection_demand
}

output "endpoints" {
  description = "Each public path prefix with the run.app URL of the unit that serves it."
  value       = local.endpoints
}
