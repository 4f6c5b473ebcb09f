output "ip_address" {
  description = "The load balancer's IPv4 address: point the domain's A record here."
  value       = google_compute_global_address.api.address
}

output "url_map" {
  description = "Name of the URL map."
  value       = google_compute_url_map.api.name
}

output "forwarding_rule" {
  description = "Name of the HTTPS forwarding rule (monitoring filters use it)."
  value       = google_compute_global_forwarding_rule.https.name
}

output "security_policy" {
  description = "Name of the Cloud Armor policy."
  value       = google_compute_security_policy.api.name
}

output "not_found_bucket" {
  description = "Bucket whose 404 document answers every path no unit serves."
  value       = google_storage_bucket.not_found.name
}
