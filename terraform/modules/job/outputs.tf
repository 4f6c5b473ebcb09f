output "job_name" {
  description = "Cloud Run job name."
  value       = google_cloud_run_v2_job.job.name
}

output "service_account_email" {
  description = "The job's service account."
  value       = google_service_account.job.email
}

output "service_account_name" {
  description = "Resource name of the job's service account."
  value       = google_service_account.job.name
}
