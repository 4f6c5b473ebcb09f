# Everything Terraform deploys per unit, derived from the code's registry (the generated
# inventory) and nothing else: names, URLs, sizing, ingress, load-balancer paths, and the
# environment variables and secrets each unit reads. Pure expressions, no resources and no
# provider, so the derivation is tested offline (tests/infra/test_terraform.py).

locals {
  units = var.inventory.units
  pool  = var.inventory.database_pool

  # Connections one instance of a unit may open: its pool (one per request thread, from the
  # inventory) plus the overflow (0: an overflow connection is opened and closed per use).
  connections_per_instance = {
    for name, unit in local.units : name => contains(unit.needs, "database") ? unit.pool_size + local.pool.max_overflow : 0
  }

  # Cloud Run's deterministic URL (https://SERVICE-PROJECT_NUMBER.REGION.run.app) is known
  # before the service exists, so no unit waits on another (e.g. for the tasks target URL).
  service_names = { for name, _ in local.units : name => "${var.name_prefix}-${name}" }
  urls          = { for name, svc in local.service_names : name => "https://${svc}-${var.project_number}.${var.region}.run.app" }
  tasks_url     = "https://${var.name_prefix}-tasks-${var.project_number}.${var.region}.run.app"
  cron_url      = "https://${var.name_prefix}-cron-${var.project_number}.${var.region}.run.app"

  # One audience for every service-to-service OIDC token (Cloud Tasks -> tasks, Cloud
  # Scheduler -> cron, and the tasks the units enqueue): internal services accept it as a
  # custom audience, and the app has a single OIDC_AUDIENCE to sign for and verify.
  oidc_audience = "https://internal.${var.name_prefix}.imangor"

  # One service account per unit, named like its service.
  emails = { for name, svc in local.service_names : name => "${svc}@${var.project_id}.iam.gserviceaccount.com" }

  # ---- The app's environment, in one place (pydantic-settings reads the upper-case names;
  # tests/infra/test_terraform.py checks each name against imangor.config.Settings) ----------
  common_env = merge(
    {
      ENVIRONMENT  = "production" # strict settings: placeholder secrets are refused
      GCP_PROJECT  = var.project_id
      LOG_LEVEL    = var.platform.log_level
      CORS_ORIGINS = jsonencode(var.platform.cors_origins)
    },
    var.platform.app_env,
  )
  jwt_env = merge(
    { JWT_ALGORITHM = var.platform.jwt.algorithm },
    var.platform.jwt.algorithm == "HS256" ? {} : {
      JWT_KEY_ID      = var.platform.jwt.key_id
      JWT_PUBLIC_KEYS = jsonencode(var.platform.jwt.public_keys)
    },
  )
  database_env = {
    INSTANCE_CONNECTION_NAME = var.platform.instance_connection_name
    DB_NAME                  = var.platform.database_name
    DB_IAM_AUTH              = "true"
    DB_IP_TYPE               = "private"
    DB_MAX_OVERFLOW          = tostring(local.pool.max_overflow)
  }
  tasks_env = {
    TASKS_BACKEND         = "cloud"
    TASKS_PROJECT         = var.project_id
    TASKS_LOCATION        = var.region
    TASKS_SERVICE_ACCOUNT = var.platform.tasks_invoker_email
    TASKS_TARGET_URL      = local.tasks_url
    OIDC_AUDIENCE         = local.oidc_audience
  }
  # Which account's OIDC tokens an internal unit accepts: Cloud Scheduler's for cron, Cloud
  # Tasks' for everything else.
  oidc_callers = {
    for name, unit in local.units : name => name == "cron" ? [var.platform.scheduler_email] : [var.platform.tasks_invoker_email]
  }

  # Kept apart from `deploy` (which reads resource names) so the database's connection budget
  # check depends on the inventory alone.
  max_instances = { for name, unit in local.units : name => min(unit.max_instances, var.max_instances_cap) }

  deploy = {
    for name, unit in local.units : name => {
      service_name = local.service_names[name]
      account_id   = local.service_names[name]
      email        = local.emails[name]
      url          = local.urls[name]
      needs        = sort(unit.needs)
      internal     = unit.internal
      # Internal units: Google-internal callers only. Public units: the load balancer (and the
      # VPC) only, or, without a load balancer, the internet on their own run.app URL.
      ingress = unit.internal ? "INGRESS_TRAFFIC_INTERNAL_ONLY" : (
        var.behind_load_balancer ? "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER" : "INGRESS_TRAFFIC_ALL"
      )
      audiences     = unit.internal ? [local.oidc_audience] : []
      cpu           = unit.cpu
      memory        = unit.memory
      concurrency   = unit.concurrency
      timeout       = "${unit.timeout_seconds}s"
      min_instances = min(unit.min_instances, var.max_instances_cap)
      max_instances = local.max_instances[name]
      # Each path prefix P routes P and P/* to this unit; internal units are never behind the LB.
      paths = unit.internal ? [] : flatten([for p in unit.paths : [p, "${p}/*"]])
      env = merge(
        local.common_env,
        {
          FUNCTION_TARGET = name
          # functions-framework's gunicorn threads: one per concurrent request Cloud Run sends
          # (the database pool holds one connection for each: no churn, no waiting), plus one
          # spare, so that Cloud Run's liveness probe (GET /health, no database) is answered
          # even while every request thread is busy and the instance is not restarted for it.
          THREADS = tostring(unit.concurrency + 1)
          # X-Forwarded-For entries added by our own proxies: LB + Cloud Run front end, or
          # only the front end for units called on their own URL (Cloud Tasks / Scheduler,
          # or every client when there is no load balancer).
          FORWARDED_HOPS = !unit.internal && var.behind_load_balancer ? "2" : "1"
        },
        unit.internal ? {
          OIDC_AUDIENCE         = local.oidc_audience
          OIDC_SERVICE_ACCOUNTS = jsonencode(local.oidc_callers[name]) # who may call this unit
        } : {},
        contains(unit.needs, "database") ? merge(
          local.database_env,
          local.jwt_env,
          {
            DB_USER      = trimsuffix(local.emails[name], ".gserviceaccount.com")
            DB_POOL_SIZE = tostring(unit.pool_size)
          },
        ) : {},
        contains(unit.needs, "tasks") ? local.tasks_env : {},
        contains(unit.needs, "mail") && var.platform.mail != null ? {
          EMAIL_BACKEND      = "smtp"
          SMTP_HOST          = var.platform.mail.smtp_host
          SMTP_PORT          = tostring(var.platform.mail.smtp_port)
          SMTP_USER          = var.platform.mail.smtp_user
          EMAIL_FROM         = var.platform.mail.from
          PASSWORD_RESET_URL = var.platform.mail.reset_url
        } : {},
        contains(unit.needs, "storage") ? {
          STORAGE_BUCKET          = var.platform.bucket
          STORAGE_PROJECT         = var.project_id
          STORAGE_SIGNING_ACCOUNT = local.emails[name] # signs URLs through IAM signBlob, as itself
        } : {},
      )
      # Env name => Secret Manager secret id; the unit's account may read exactly these.
      # Every unit that reaches the database authenticates users, so it signs/verifies JWTs.
      secrets = merge(
        contains(unit.needs, "database") ? { SECRET_KEY = var.platform.secret_key_secret } : {},
        contains(unit.needs, "database") && var.platform.jwt.algorithm != "HS256" ? { JWT_PRIVATE_KEY = var.platform.jwt.private_key_secret } : {},
        contains(unit.needs, "redis") ? { REDIS_URL = var.platform.redis_url_secret } : {},
        contains(unit.needs, "mail") && var.platform.mail != null ? { SMTP_PASSWORD = var.platform.smtp_password_secret } : {},
      )
    }
  }

  migrate_account_id = "${var.name_prefix}-migrate"
  migrate = {
    account_id = local.migrate_account_id
    env = merge(
      local.common_env,
      local.database_env,
      local.jwt_env,
      # The schema's owner, a built-in user with a password (see modules/api), in one
      # session: one connection, counted in the reserve.
      { DB_USER = var.platform.db_owner, DB_IAM_AUTH = "false", DB_POOL_SIZE = "1" },
      var.platform.first_admin_email == "" ? {} : { FIRST_ADMIN_EMAIL = var.platform.first_admin_email },
    )
    secrets = merge(
      { SECRET_KEY = var.platform.secret_key_secret, DB_PASSWORD = var.platform.db_owner_password_secret },
      var.platform.jwt.algorithm == "HS256" ? {} : { JWT_PRIVATE_KEY = var.platform.jwt.private_key_secret },
      var.platform.first_admin_email == "" ? {} : { FIRST_ADMIN_PASSWORD = var.platform.first_admin_password_secret },
    )
  }

  # Cloud Tasks wants durations as strings ("0.5s", "300s").
  queues = {
    for name, q in var.inventory.queues : name => {
      name                      = q.name
      max_attempts              = q.max_attempts
      min_backoff               = "${q.min_backoff_seconds}s"
      max_backoff               = "${q.max_backoff_seconds}s"
      max_doublings             = q.max_doublings
      max_dispatches_per_second = q.max_dispatches_per_second
      max_concurrent_dispatches = q.max_concurrent_dispatches
    }
  }

  # Where clients reach each public path prefix: the API domain (the load balancer routes
  # it) or the owning unit's own URL.
  endpoints = merge([
    for name, unit in local.units : {
      for prefix in unit.paths : prefix => local.urls[name]
    } if !unit.internal
  ]...)

  schedules = {
    for name, s in var.inventory.schedules : name => {
      schedule  = s.schedule
      time_zone = s.time_zone
      uri       = "${local.cron_url}${s.path}"
      audience  = local.oidc_audience
    }
  }

  # The connection budget (checked against max_connections by the database module and by
  # tests/infra/test_terraform.py). Steady: every unit at its max instances, which the release
  # sets at the service level, shared by all revisions that carry traffic, old and new
  # alike. A rollout adds, per unit, the one instance of the tagged, traffic-less revision
  # that `gcloud run deploy` starts and the smoke test calls: tagged revisions outside the
  # traffic split do not count toward the service-level maximum.
  connection_demand         = sum(concat([0], [for name, n in local.connections_per_instance : local.max_instances[name] * n]))
  rollout_connection_demand = local.connection_demand + sum(concat([0], values(local.connections_per_instance)))
}
