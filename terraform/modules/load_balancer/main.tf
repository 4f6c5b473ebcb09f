# One API domain: a global external HTTPS load balancer whose URL map sends each path prefix
# of the registry to its unit's Cloud Run service (serverless NEGs), with a Google-managed
# certificate and a Cloud Armor policy. Units marked internal are not behind it.

terraform {
  required_providers {
    google = { source = "hashicorp/google" }
  }
}

locals {
  routed = { for name, unit in var.units : name => unit if length(unit.paths) > 0 }
}

resource "google_compute_region_network_endpoint_group" "unit" {
  for_each              = var.units
  project               = var.project_id
  name                  = "${var.name_prefix}-${each.key}"
  region                = var.region
  network_endpoint_type = "SERVERLESS"

  cloud_run {
    service = each.value.service_name
  }
}

resource "google_compute_backend_service" "unit" {
  for_each              = var.units
  project               = var.project_id
  name                  = "${var.name_prefix}-${each.key}"
  protocol              = "HTTPS"
  load_balancing_scheme = "EXTERNAL_MANAGED"
  security_policy       = google_compute_security_policy.api.id

  backend {
    group = google_compute_region_network_endpoint_group.unit[each.key].id
  }

  log_config {
    enable      = true
    sample_rate = var.log_sample_rate
  }
}

# Paths no unit claims (scanners, typos, the bare IP) get a static 404 problem document from
# a bucket: they cost no Cloud Run instance, cannot starve the health unit (the uptime check's
# target) and never reach the API code. Its one object is written here; anyone may read it
# (objects only, no listing), nobody but Terraform may write it.
resource "google_storage_bucket" "not_found" {
  #checkov:skip=CKV_GCP_114:Public read of its one static object is the point (see the comment above)
  #checkov:skip=CKV_GCP_62:Only a static 404 document; the load balancer already logs every request
  project                     = var.project_id
  name                        = "${var.project_id}-${var.name_prefix}-not-found"
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "inherited"
  force_destroy               = true # holds only what Terraform writes below

  versioning {
    enabled = true
  }

  website {
    not_found_page = google_storage_bucket_object.not_found.name
  }
}

resource "google_storage_bucket_object" "not_found" {
  bucket        = google_storage_bucket.not_found.name
  name          = "404.json"
  content_type  = "application/problem+json"
  cache_control = "public, max-age=300"
  content = jsonencode({
    type   = "about:blank"
    title  = "Not Found"
    status = 404
    detail = "No endpoint at this path. The API's paths are listed at /openapi.json."
  })
}

# objects.get only (no objects.list, unlike objectViewer): the 404 document is readable, the
# bucket's contents cannot be listed.
resource "google_storage_bucket_iam_member" "not_found_public" {
  #checkov:skip=CKV_GCP_28:objects.get on one static 404 document that only Terraform writes
  bucket = google_storage_bucket.not_found.name
  role   = "roles/storage.legacyObjectReader"
  member = "allUsers"
}

resource "google_compute_backend_bucket" "not_found" {
  project     = var.project_id
  name        = "${var.name_prefix}-not-found"
  bucket_name = google_storage_bucket.not_found.name
  description = "Static 404 for paths no unit serves."
  enable_cdn  = false
}

resource "google_compute_url_map" "api" {
  project         = var.project_id
  name            = "${var.name_prefix}-api"
  default_service = google_compute_backend_bucket.not_found.id

  host_rule {
    hosts        = [var.domain]
    path_matcher = "units"
  }

  path_matcher {
    name            = "units"
    default_service = google_compute_backend_bucket.not_found.id

    # The bare domain points people at the documentation.
    path_rule {
      paths = ["/"]
      url_redirect {
        path_redirect          = "/docs"
        redirect_response_code = "FOUND"
        strip_query            = true
      }
    }

    # From the registry: each path prefix P of a unit gives the rules P and P/*.
    dynamic "path_rule" {
      for_each = local.routed
      content {
        paths   = path_rule.value.paths
        service = google_compute_backend_service.unit[path_rule.key].id
      }
    }
  }
}

resource "google_compute_managed_ssl_certificate" "api" {
  project = var.project_id
  name    = "${var.name_prefix}-api"

  managed {
    domains = [var.domain]
  }
}

resource "google_compute_ssl_policy" "api" {
  project         = var.project_id
  name            = "${var.name_prefix}-api"
  profile         = "RESTRICTED"
  min_tls_version = "TLS_1_2"
}

resource "google_compute_target_https_proxy" "api" {
  project          = var.project_id
  name             = "${var.name_prefix}-api"
  url_map          = google_compute_url_map.api.id
  ssl_certificates = [google_compute_managed_ssl_certificate.api.id]
  ssl_policy       = google_compute_ssl_policy.api.id
}

resource "google_compute_global_address" "api" {
  project    = var.project_id
  name       = "${var.name_prefix}-api"
  ip_version = "IPV4"
}

resource "google_compute_global_forwarding_rule" "https" {
  project               = var.project_id
  name                  = "${var.name_prefix}-api-https"
  target                = google_compute_target_https_proxy.api.id
  ip_address            = google_compute_global_address.api.id
  ip_protocol           = "TCP"
  port_range            = "443"
  load_balancing_scheme = "EXTERNAL_MANAGED"
}

# Plain HTTP only answers with a permanent redirect to HTTPS.
resource "google_compute_url_map" "redirect" {
  project = var.project_id
  name    = "${var.name_prefix}-api-redirect"

  default_url_redirect {
    https_redirect         = true
    strip_query            = false
    redirect_response_code = "MOVED_PERMANENTLY_DEFAULT"
  }
}

resource "google_compute_target_http_proxy" "redirect" {
  project = var.project_id
  name    = "${var.name_prefix}-api-redirect"
  url_map = google_compute_url_map.redirect.id
}

resource "google_compute_global_forwarding_rule" "http" {
  project               = var.project_id
  name                  = "${var.name_prefix}-api-http"
  target                = google_compute_target_http_proxy.redirect.id
  ip_address            = google_compute_global_address.api.id
  ip_protocol           = "TCP"
  port_range            = "80"
  load_balancing_scheme = "EXTERNAL_MANAGED"
}

resource "google_compute_security_policy" "api" {
  project     = var.project_id
  name        = "${var.name_prefix}-api"
  description = "Imangor API edge: blocked paths, OWASP WAF, per-IP rate-based ban."
  type        = "CLOUD_ARMOR"

  advanced_options_config {
    json_parsing = "STANDARD" # the WAF inspects JSON bodies field by field
    log_level    = "NORMAL"
  }

  adaptive_protection_config {
    layer_7_ddos_defense_config {
      enable = true
    }
  }

  # Operational endpoints the public has no business reading.
  rule {
    action      = "deny(404)"
    priority    = 100
    description = "Not exposed through the load balancer"
    match {
      expr {
        expression = join(" || ", [for p in var.blocked_paths : "request.path.startsWith('${p}')"])
      }
    }
  }

  # Log4Shell and other critical CVEs: always enforced, never in preview.
  rule {
    action      = "deny(403)"
    priority    = 999
    description = "Preconfigured WAF: cve-canary"
    match {
      expr {
        expression = "evaluatePreconfiguredWaf('cve-canary')"
      }
    }
  }

  # OWASP CRS 3.3 at the lowest sensitivity (fewest false positives on a JSON API).
  rule {
    action      = "deny(403)"
    priority    = 1000
    preview     = var.waf_preview
    description = "Preconfigured WAF: sqli-v33-stable"
    match {
      expr {
        expression = "evaluatePreconfiguredWaf('sqli-v33-stable', {'sensitivity': 1})"
      }
    }
  }
  rule {
    action      = "deny(403)"
    priority    = 1001
    preview     = var.waf_preview
    description = "Preconfigured WAF: xss-v33-stable"
    match {
      expr {
        expression = "evaluatePreconfiguredWaf('xss-v33-stable', {'sensitivity': 1})"
      }
    }
  }
  rule {
    action      = "deny(403)"
    priority    = 1002
    preview     = var.waf_preview
    description = "Preconfigured WAF: lfi-v33-stable"
    match {
      expr {
        expression = "evaluatePreconfiguredWaf('lfi-v33-stable', {'sensitivity': 1})"
      }
    }
  }
  rule {
    action      = "deny(403)"
    priority    = 1003
    preview     = var.waf_preview
    description = "Preconfigured WAF: rfi-v33-stable"
    match {
      expr {
        expression = "evaluatePreconfiguredWaf('rfi-v33-stable', {'sensitivity': 1})"
      }
    }
  }
  rule {
    action      = "deny(403)"
    priority    = 1004
    preview     = var.waf_preview
    description = "Preconfigured WAF: rce-v33-stable"
    match {
      expr {
        expression = "evaluatePreconfiguredWaf('rce-v33-stable', {'sensitivity': 1})"
      }
    }
  }
  rule {
    action      = "deny(403)"
    priority    = 1005
    preview     = var.waf_preview
    description = "Preconfigured WAF: scannerdetection-v33-stable"
    match {
      expr {
        expression = "evaluatePreconfiguredWaf('scannerdetection-v33-stable', {'sensitivity': 1})"
      }
    }
  }
  rule {
    action      = "deny(403)"
    priority    = 1006
    preview     = var.waf_preview
    description = "Preconfigured WAF: protocolattack-v33-stable"
    match {
      expr {
        expression = "evaluatePreconfiguredWaf('protocolattack-v33-stable', {'sensitivity': 1})"
      }
    }
  }
  rule {
    action      = "deny(403)"
    priority    = 1007
    preview     = var.waf_preview
    description = "Preconfigured WAF: sessionfixation-v33-stable"
    match {
      expr {
        expression = "evaluatePreconfiguredWaf('sessionfixation-v33-stable', {'sensitivity': 1})"
      }
    }
  }

  # Evaluated after the WAF (a conforming request is allowed here and stops evaluation).
  rule {
    action      = "rate_based_ban"
    priority    = 2000
    description = "Per-IP rate limit; repeat offenders are banned for a while"
    match {
      versioned_expr = "SRC_IPS_V1"
      config {
        src_ip_ranges = ["*"]
      }
    }
    rate_limit_options {
      conform_action   = "allow"
      exceed_action    = "deny(429)"
      enforce_on_key   = "IP"
      ban_duration_sec = var.ban_duration_sec
      rate_limit_threshold {
        count        = var.rate_limit_per_minute
        interval_sec = 60
      }
      ban_threshold {
        count        = var.rate_limit_per_minute * 5
        interval_sec = 300
      }
    }
  }

  rule {
    action      = "allow"
    priority    = 2147483647
    description = "Default: allow"
    match {
      versioned_expr = "SRC_IPS_V1"
      config {
        src_ip_ranges = ["*"]
      }
    }
  }
}
