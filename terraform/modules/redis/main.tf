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

  # Replacing it (a tier or network change forces that) drops every cached key and rate-limit
  # counter and changes its address and AUTH string under running instances: a plan that
  # would do so stops here. Remove this line to replace or destroy it on purpose.
  lifecycle {
    prevent_destroy = true
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

# The versions are written write-only, so their values are not copied into the state again.
# (The instance's auth_string is: the provider records it; see infra/README.md.) Their
# version numbers follow a hash of the value, so a new AUTH string or CA writes a new one.
resource "google_secret_manager_secret_version" "auth" {
  secret                 = google_secret_manager_secret.auth.id
  secret_data_wo         = google_redis_instance.cache.auth_string
  secret_data_wo_version = parseint(substr(sha256(google_redis_instance.cache.auth_string), 0, 8), 16)

  lifecycle {
    create_before_destroy = true
  }
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
  secret                 = google_secret_manager_secret.url.id
  secret_data_wo         = local.url
  secret_data_wo_version = parseint(substr(sha256(local.url), 0, 8), 16)
  # A new AUTH string or CA writes a new version before the old one goes.
  lifecycle {
    create_before_destroy = true
  }
}
