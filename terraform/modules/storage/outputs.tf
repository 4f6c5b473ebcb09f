output "bucket" {
  description = "Bucket name (STORAGE_BUCKET)."
  value       = google_storage_bucket.files.name
}

output "url" {
  description = "gs:// URL of the bucket."
  value       = google_storage_bucket.files.url
}
