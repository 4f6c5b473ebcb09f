output "network_id" {
  description = "Id of the VPC (projects/P/global/networks/N)."
  value       = google_compute_network.vpc.id
}

output "network_name" {
  description = "Name of the VPC."
  value       = google_compute_network.vpc.name
}

output "subnetwork_id" {
  description = "Id of the Cloud Run egress subnet."
  value       = google_compute_subnetwork.run.id
}

output "private_services_range" {
  description = "Name of the range allocated to private service access."
  value       = google_compute_global_address.private_services.name
}

output "private_services_connection" {
  description = "The private service access peering (depend on it before creating Cloud SQL / Redis)."
  value       = google_service_networking_connection.private_services.id
}
