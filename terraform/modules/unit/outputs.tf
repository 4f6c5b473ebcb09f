output "service_name" {
  description = "Cloud Run service name."
  value       = google_cloud_run_v2_service.unit.name
}

output "uri" {
  description = "The service's run.app URL."
  value       = google_cloud_run_v2_service.unit.uri
}

output "service_account_email" {
  description = "The unit's service account."
  value       = google_service_account.unit.email
}
