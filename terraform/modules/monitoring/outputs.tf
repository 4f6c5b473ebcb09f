output "uptime_check_id" {
  description = "Id of the /health uptime check."
  value       = google_monitoring_uptime_check_config.health.uptime_check_id
}

output "dashboard_id" {
  description = "Id of the API dashboard."
  value       = google_monitoring_dashboard.api.id
}
