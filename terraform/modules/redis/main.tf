# Memorystore for Redis: reachable only through private service access, AUTH on, TLS on.
# The AUTH string goes to Secret Manager, and so does the full REDIS_URL the units read
# (AUTH, host, TLS port and this instance's CA: the app's settings take one URL).

terraform {
  required_providers {
    google = { source = "hashicorp/google" }
  }
}

resource "google_redis_instance" "cache" {
  project        = var.project_id
  name           = var.name
  region         = var.region
  tier           = var.tier
  memory_size_gb = var.memory_size_gb
  redis_version  = var.redis_version
  labels         = var.labels

  authorized_network      = var.network_id
  connect_mode            = "PRIVATE_SERVICE_ACCESS"
  reserved_ip_range       = var.reserved_ip_range
  auth_enabled            = true
  transit_encryption_mode = "SERVER_AUTHENTICATION"

  redis_configs = {
    # A cache and rate-limit counters: evict the least recently used key when full.
    "maxmemory-policy" = "allkeys-lru"
  }

  maintenance_policy {
    weekly_maintenance_window {
      day = var.maintenance_day
      start_time {
        hours   = var.maintenance_hour
        minutes = 0
        seconds = 0
        nanos   = 0
      }
    }
  }
}

locals {
  # redis-py reads TLS options from the URL's query: the instance's own CA (unique to this
  # instance, so verifying the chain pins the server) and no host-name check, because the
  # units connect to a bare IP that the certificate does not name.
  ca_pem = join("", [for ca in google_redis_instance.cache.server_ca_certs : ca.cert])
  url = format(
    "rediss://:%s@%s:%d/0?ssl_cert_reqs=required&ssl_check_hostname=false&ssl_ca_data=%s",
    urlencode(google_redis_instance.cache.auth_string),
    google_redis_instance.cache.host,
    google_redis_instance.cache.port,
    urlencode(local.ca_pem),
  )
}

resource "google_secret_manager_secret" "auth" {
  project   = var.project_id
  secret_id = "${var.name}-auth"
  labels    = var.labels

  replication {
    auto {}
  }
}

resource "google_secret_manager_secret_version" "auth" {
  secret      = google_secret_manager_secret.auth.id
  secret_data = google_redis_instance.cache.auth_string
}

resource "google_secret_manager_secret" "url" {
  project   = var.project_id
  secret_id = "${var.name}-url"
  labels    = var.labels

  replication {
    auto {}
  }
}

resource "google_secret_manager_secret_version" "url" {
  secret      = google_secret_manager_secret.url.id
  secret_data = local.url
  # A new AUTH string or CA writes a new version before the old one goes.
  lifecycle {
    create_before_destroy = true
  }
}
