output "service_account_email" {
  description = "Account whose OIDC tokens scheduled jobs carry."
  value       = google_service_account.scheduler.email
}

output "job_names" {
  description = "Scheduler job names by registered cron job."
  value       = { for name, job in google_cloud_scheduler_job.job : name => job.name }
}
