# The bucket for uploads (signed-URL PUTs from browsers) and generated reports. Objects are
# private: clients only ever get time-limited signed URLs.

terraform {
  required_providers {
    google = { source = "hashicorp/google" }
  }
}

resource "google_storage_bucket" "files" {
  #checkov:skip=CKV_GCP_62:Object access is recorded by Cloud Audit Logs (Data Access), not legacy usage-log buckets
  project                     = var.project_id
  name                        = var.name
  location                    = var.location
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false
  labels                      = var.labels

  versioning {
    enabled = true
  }

  # A user's deleted upload stays recoverable for noncurrent_retention_days (1) as a
  # noncurrent version, then soft_delete_days (7): 8 days in all, not the 37 that 30 days of
  # versions plus soft delete kept (infra/README.md, Uploads).
  soft_delete_policy {
    retention_duration_seconds = var.soft_delete_days * 24 * 3600
  }

  # Browsers PUT uploads straight to a signed URL, and GET downloads from one.
  dynamic "cors" {
    for_each = length(var.cors_origins) > 0 ? [var.cors_origins] : []
    content {
      origin          = cors.value
      method          = ["GET", "HEAD", "PUT"]
      response_header = ["Content-Type", "Content-MD5", "Content-Length", "ETag", "x-goog-content-sha256"]
      max_age_seconds = 3600
    }
  }

  # Uploads abandoned half-way are cleaned up after a day.
  lifecycle_rule {
    condition {
      age = 1
    }
    action {
      type = "AbortIncompleteMultipartUpload"
    }
  }

  # Reports are regenerated on demand: keep them for a while only.
  lifecycle_rule {
    condition {
      age            = var.report_retention_days
      matches_prefix = ["reports/"]
    }
    action {
      type = "Delete"
    }
  }

  # Old uploads move to a cheaper class.
  lifecycle_rule {
    condition {
      age            = var.uploads_nearline_after_days
      matches_prefix = ["uploads/"]
    }
    action {
      type          = "SetStorageClass"
      storage_class = "NEARLINE"
    }
  }

  # Overwritten or deleted objects stay recoverable for a while, then go.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_retention_days
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      num_newer_versions = 3
      with_state         = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }
}

# Who read or wrote which object: Data Access audit logs for Cloud Storage (the reason the
# legacy usage-log bucket, CKV_GCP_62, is not used).
resource "google_project_iam_audit_config" "storage" {
  project = var.project_id
  service = "storage.googleapis.com"

  audit_log_config {
    log_type = "DATA_READ"
  }
  audit_log_config {
    log_type = "DATA_WRITE"
  }
}
