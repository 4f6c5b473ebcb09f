output "instance_name" {
  description = "Memorystore instance name."
  value       = google_redis_instance.cache.name
}

output "host" {
  description = "Private IP of the instance."
  value       = google_redis_instance.cache.host
}

output "port" {
  description = "TLS port of the instance."
  value       = google_redis_instance.cache.port
}

output "auth_secret_id" {
  description = "Secret holding the AUTH string."
  value       = google_secret_manager_secret.auth.secret_id
}

output "url_secret_id" {
  description = "Secret holding the REDIS_URL the units read."
  value       = google_secret_manager_secret.url.secret_id
}
