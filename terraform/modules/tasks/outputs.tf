output "queue_ids" {
  description = "Queue name => queue id."
  value       = { for name, q in google_cloud_tasks_queue.queue : name => q.name }
}

output "invoker_email" {
  description = "Account whose OIDC tokens queued tasks carry (TASKS_SERVICE_ACCOUNT)."
  value       = google_service_account.invoker.email
}

output "invoker_name" {
  description = "Resource name of the invoker account (for actAs grants)."
  value       = google_service_account.invoker.name
}
