# Every input of an environment is declared, documented and validated here, once. An
# environment root (terraform/environments/ENV) passes `site` through from its terraform.tfvars
# and commits its sizing in the module call; everything else keeps the defaults below.

# ---- What ops supply (terraform.tfvars of each environment) ------------------------------

variable "site" {
  description = <<-EOT
    Where and for whom the environment runs, from the root's terraform.tfvars:
    project_id (one Google Cloud project per environment), region (of every regional
    resource), domain (the API's public name; its A record points at the load balancer),
    cors_origins (web origins allowed by the API and the bucket's CORS), alert_emails (who
    gets the alerts), first_admin_email (created by the migration job, its password
    generated into Secret Manager; empty: none) and mail (the SMTP relay the tasks unit sends
    password-reset mail through; its password goes into the <prefix>-smtp-password secret by
    hand). Without mail the tasks unit refuses to start: production never logs mail.
    release (optional): the GitHub repository (connected to Cloud Build once, by hand) whose
    pushes to `branch` run cloudbuild.yaml here as the deployer; promote_from, for prod, is
    dev's image path (its image_repository output plus /api): prod then deploys the digests
    dev built and tested, never builds its own. image_readers: accounts of other
    environments allowed to pull this one's images (dev: prod's deployer).
  EOT
  type = object({
    project_id        = string
    region            = string
    domain            = string
    cors_origins      = optional(list(string), [])
    alert_emails      = optional(list(string), [])
    first_admin_email = optional(string, "")
    mail = optional(object({
      smtp_host = string
      smtp_port = optional(number, 587)
      smtp_user = optional(string, "")
      from      = string
      reset_url = string
    }))
    release = optional(object({
      github_owner = string
      github_repo  = string
      branch       = optional(string, "main")
      promote_from = optional(string, "")
    }))
    image_readers = optional(list(string), [])
  })

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.site.project_id))
    error_message = "site.project_id must be a Google Cloud project id (6-30 lower-case letters, digits, hyphens)."
  }
  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.site.region))
    error_message = "site.region must be a Google Cloud region such as europe-west1."
  }
  validation {
    condition     = can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,}$", var.site.domain))
    error_message = "site.domain must be a lower-case DNS name such as api.example.com."
  }
  validation {
    condition     = alltrue([for o in var.site.cors_origins : can(regex("^https://[^/*]+$", o))])
    error_message = "site.cors_origins must be https origins without path or wildcard."
  }
  validation {
    condition     = alltrue([for e in var.site.alert_emails : can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", e))])
    error_message = "site.alert_emails must be e-mail addresses."
  }
  validation {
    # Every alert notifies these addresses: none would silence them all.
    condition     = var.environment != "prod" || length(var.site.alert_emails) > 0
    error_message = "site.alert_emails: prod needs at least one address, or no alert reaches anyone."
  }
  validation {
    # A conditional, not ||: Terraform evaluates both sides of || even when the left is true.
    condition = var.site.mail == null ? true : (
      can(regex("^[a-z0-9.-]+$", var.site.mail.smtp_host)) &&
      var.site.mail.smtp_port > 0 && var.site.mail.smtp_port < 65536 &&
      length(var.site.mail.smtp_user) < 256 &&
      can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.site.mail.from))
    )
    error_message = "site.mail needs an SMTP host name, a port, a user (may be empty) and a From address."
  }
  validation {
    condition     = var.site.mail == null ? true : can(regex("^https://", var.site.mail.reset_url))
    error_message = "site.mail.reset_url must be an https URL (the page that takes ?token=...)."
  }
  validation {
    condition = var.site.release == null ? true : (
      can(regex("^[A-Za-z0-9-]+$", var.site.release.github_owner)) &&
      can(regex("^[A-Za-z0-9._-]+$", var.site.release.github_repo)) &&
      can(regex("^[A-Za-z0-9._/-]+$", var.site.release.branch)) &&
      (var.site.release.promote_from == "" || can(regex("^[a-z0-9-]+-docker\\.pkg\\.dev/[a-z][a-z0-9-]+/[a-z0-9-]+/[a-z0-9-]+$", var.site.release.promote_from)))
    )
    error_message = "site.release needs a GitHub owner, repository and branch; promote_from is empty or an Artifact Registry image path (REGION-docker.pkg.dev/PROJECT/imangor/api)."
  }
  validation {
    condition     = alltrue([for m in var.site.image_readers : can(regex("^serviceAccount:[a-z0-9-]+@[a-z0-9-]+\\.iam\\.gserviceaccount\\.com$", m))])
    error_message = "site.image_readers must be serviceAccount:NAME@PROJECT.iam.gserviceaccount.com members."
  }
  validation {
    condition     = var.site.first_admin_email == "" || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.site.first_admin_email))
    error_message = "site.first_admin_email must be empty or an e-mail address."
  }
}

# ---- What each environment commits in its module call --------------------------------------

variable "environment" {
  description = "Stage name: dev or prod (prefixes every resource: imangor-ENV-...)."
  type        = string

  validation {
    condition     = contains(["dev", "prod"], var.environment)
    error_message = "environment must be dev or prod."
  }
}

variable "inventory" {
  description = "Decoded terraform/generated/inventory.json (generated from the code's registry; the registry module validates it)."
  type        = any
}

variable "max_instances_cap" {
  description = "Upper bound on every unit's max_instances in this environment (the connection budget counts with it)."
  type        = number

  validation {
    condition     = var.max_instances_cap >= 1 && floor(var.max_instances_cap) == var.max_instances_cap
    error_message = "max_instances_cap must be a positive integer."
  }
}

variable "database" {
  description = "Cloud SQL sizing (the database module validates each field). max_connections must hold every unit's pool plus the reserve."
  type = object({
    tier                 = string
    availability_type    = optional(string, "ZONAL")
    disk_size_gb         = optional(number, 10)
    max_connections      = number
    reserved_connections = optional(number, 10)
    retained_backups     = optional(number, 14)
  })
}

variable "redis" {
  description = "Memorystore sizing (the redis module validates each field)."
  type = object({
    tier           = optional(string, "BASIC")
    memory_size_gb = optional(number, 1)
  })
  default = {}
}

variable "load_balancer" {
  description = "One HTTPS domain behind the external load balancer with Cloud Armor (true), or each public unit on its own run.app URL (false); each environment commits its choice (infra/README.md, Function URLs or one domain)."
  type        = bool
}

variable "deletion_protection" {
  description = "Protect the database (Terraform and the Cloud SQL API), services and jobs against deletion; switch off and apply before destroying."
  type        = bool
}

# ---- Settings with defaults (set them in the module call when an environment differs) ------

variable "image" {
  description = "Image of the first revision of each unit and job (Cloud Build deploys the following ones); any public image works for the first apply."
  type        = string
  default     = "us-docker.pkg.dev/cloudrun/container/hello"

  validation {
    condition     = can(regex("^[a-z0-9.-]+(:[0-9]+)?/[a-z0-9._/-]+(:[A-Za-z0-9._-]+|@sha256:[a-f0-9]{64})?$", var.image)) && !endswith(var.image, ":latest")
    error_message = "image must be a registry path (tag or digest, never :latest)."
  }
}

variable "dast_image" {
  description = "schemathesis image of the DAST job, pinned by digest (v4.28.0); cloudbuild.yaml's _DAST_IMAGE must name the same one (Cloud Build sets it before each run)."
  type        = string
  default     = "docker.io/schemathesis/schemathesis@sha256:0a71757c60ccdba270c154a859d9dd3d019625f782f23ab36ad604771e15f78b"

  validation {
    condition     = can(regex("@sha256:[a-f0-9]{64}$", var.dast_image))
    error_message = "dast_image must be pinned by digest (IMAGE@sha256:...)."
  }
}

variable "log_level" {
  description = "LOG_LEVEL of the units."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR"], var.log_level)
    error_message = "log_level must be DEBUG, INFO, WARNING or ERROR."
  }
}

variable "app_env" {
  description = "Extra plain settings for every unit and the migration job, e.g. { GOOGLE_CLIENT_IDS = jsonencode([\"id.apps.googleusercontent.com\"]) }."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.app_env) : can(regex("^[A-Z][A-Z0-9_]*$", k))])
    error_message = "app_env keys are upper-case setting names."
  }
  validation {
    condition = length(setintersection(keys(var.app_env), [
      "ENVIRONMENT", "SECRET_KEY", "REDIS_URL", "DATABASE_URL", "DB_PASSWORD", "JWT_PRIVATE_KEY", "FIRST_ADMIN_PASSWORD", "SMTP_PASSWORD",
    ])) == 0
    error_message = "app_env cannot set ENVIRONMENT or secrets (those come from Secret Manager)."
  }
}

variable "jwt" {
  description = "Token signing: HS256 with SECRET_KEY, or RS256/ES256 with JWT_PRIVATE_KEY (secret PREFIX-jwt-private-key), a key id and the public keys by kid (see infra/README.md, rotating secrets)."
  type = object({
    algorithm   = optional(string, "HS256")
    key_id      = optional(string, "k1")
    public_keys = optional(map(string), {})
  })
  default = {}

  validation {
    condition     = contains(["HS256", "RS256", "ES256"], var.jwt.algorithm) && can(regex("^[A-Za-z0-9._-]{1,64}$", var.jwt.key_id))
    error_message = "jwt.algorithm must be HS256, RS256 or ES256 and jwt.key_id 1-64 letters, digits, . _ -."
  }
}

variable "secret_key_version" {
  description = "Bump to rotate SECRET_KEY: a new random key is written (write-only, never in state) and the previous version disabled."
  type        = number
  default     = 1

  validation {
    condition     = var.secret_key_version >= 1 && floor(var.secret_key_version) == var.secret_key_version
    error_message = "secret_key_version must be a positive integer."
  }
}

variable "waf_preview" {
  description = "Let the OWASP WAF rules only log (a new environment starts so, to tune them on real traffic) instead of blocking; each environment commits its choice (infra/README.md, Cloud Armor). cve-canary always blocks."
  type        = bool
}

variable "rate_limit_per_minute" {
  description = "Requests per minute one client IP may send through the load balancer."
  type        = number
  default     = 600

  validation {
    condition     = var.rate_limit_per_minute >= 10
    error_message = "rate_limit_per_minute must be at least 10."
  }
}

variable "release_approval" {
  description = "Builds of the release trigger wait for an approver (gcloud builds approve) before they run. Required in prod."
  type        = bool
  default     = false

  validation {
    condition     = var.environment != "prod" || var.release_approval
    error_message = "prod releases need an approval: set release_approval = true."
  }
}

variable "db_owner_password_version" {
  description = "Bump to rotate the schema owner's database password (generated, write-only: never in state)."
  type        = number
  default     = 1

  validation {
    condition     = var.db_owner_password_version >= 1 && floor(var.db_owner_password_version) == var.db_owner_password_version
    error_message = "db_owner_password_version must be a positive integer."
  }
}
