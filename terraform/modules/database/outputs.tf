output "instance_name" {
  description = "Cloud SQL instance name."
  value       = google_sql_database_instance.main.name
}

output "connection_name" {
  description = "project:region:instance, what the Cloud SQL connector takes."
  value       = google_sql_database_instance.main.connection_name
}

output "private_ip" {
  description = "Private IP address of the instance."
  value       = google_sql_database_instance.main.private_ip_address
}

output "database_name" {
  description = "Name of the application database."
  value       = google_sql_database.app.name
}

output "iam_condition" {
  description = "IAM condition expression that limits Cloud SQL roles to this instance."
  value       = "resource.name == \"projects/${var.project_id}/instances/${google_sql_database_instance.main.name}\" && resource.service == \"sqladmin.googleapis.com\""
}
