"""Settings: every knob comes from the environment (or a local `.env`), validated at start.

Outside local mode a missing or placeholder secret stops the process with a clear message
instead of running with a guessable key.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

KEY_ADVICE = (
    "SECRET_KEY is missing or a placeholder: set a random value of at least 32 characters "
    "(python -c 'import secrets; print(secrets.token_urlsafe(48))')"
)
SSL_MODES = ("disable", "prefer", "require", "verify-ca", "verify-full")  # libpq's, less allow
SSL_KEYS = ("sslmode", "sslrootcert")  # libpq's client certificate keys are not supported
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
# requests/seconds, both at least 1: a 0-second window would expire the counter on every hit
# (no limit at all), and 0 requests would refuse everyone.
RATE = r"^[1-9][0-9]{0,8}/[1-9][0-9]{0,8}$"
# 32 bytes and more, as HS256 wants (PyJWT warns on every signature with a shorter key); being
# public, it is refused in production.
LOCAL_SECRET = "local-dev-secret-never-use-in-production"  # noqa: S105  # nosec B105
PLACEHOLDER_SECRETS = frozenset(
    {"", "changeme", "change-me", "secret", "dev", "local-dev-secret", LOCAL_SECRET}
)


# The settings each need of a unit (`Deploy.needs`) asks for, as an operator sets them; the
# README's table of what each unit needs to run alone is generated from this.
NEED_SETTINGS = {
    "database": "DATABASE_URL or INSTANCE_CONNECTION_NAME",
    "redis": "REDIS_URL",
    "storage": "STORAGE_BUCKET",
    "tasks": "TASKS_BACKEND=cloud (with TASKS_PROJECT and OIDC_AUDIENCE)",
    "mail": "EMAIL_BACKEND=smtp and SMTP_HOST",
}


class Settings(BaseSettings):
    """Validated configuration; read once per process through `get_settings()`."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)
    # Empty lists and dicts are plain defaults (pydantic copies them), not default_factory=list:
    # pydantic reads a factory's signature, and a builtin's costs a regex compile at start-up.

    environment: Literal["local", "test", "production"] = Field(
        "local", description="local or test relax secret checks; production enforces them"
    )
    secret_key: SecretStr = Field(
        SecretStr(LOCAL_SECRET), description="HMAC key for JWTs (HS256) and signed cursors"
    )
    jwt_algorithm: Literal["HS256", "RS256", "ES256"] = Field(
        "HS256", description="signing algorithm, pinned: tokens naming another are refused"
    )
    jwt_private_key: SecretStr | None = Field(
        None, description="PEM private key that signs access tokens (RS256/ES256)"
    )
    jwt_key_id: str = Field("k1", max_length=64, description="kid header of tokens signed now")
    jwt_public_keys: dict[str, str] = Field(
        {},
        description="JSON {kid: PEM public key}: older keys still accepted during a rotation",
    )
    jwt_issuer: str = Field("imangor", description="iss claim of access tokens")
    jwt_audience: str = Field("imangor-api", description="aud claim of access tokens")
    access_token_minutes: int = Field(15, ge=1, le=1440, description="access token lifetime")
    jwt_leeway_seconds: int = Field(10, ge=0, le=300, description="clock skew tolerated")
    project_name: str = Field("Imangor API", description="title of the OpenAPI document")
    port: int = Field(8080, ge=1, le=65535, description="port of the local server")

    database_url: str | None = Field(
        None,
        description="postgresql://user:password@host:port/db[?sslmode=…&sslrootcert=…]: "
        "libpq's modes; unset: prefer, disable on loopback; none = embedded in make dev",
    )
    instance_connection_name: str | None = Field(
        None, description="project:region:instance; when set, the Cloud SQL connector is used"
    )
    db_user: str = Field("imangor", description="database user for the Cloud SQL connector")
    db_password: SecretStr | None = Field(None, description="password; unset with IAM auth")
    db_name: str = Field("imangor", description="database name for the Cloud SQL connector")
    db_iam_auth: bool = Field(False, description="IAM database authentication (connector)")
    db_ip_type: Literal["private", "public", "psc"] = Field("private", description="connector IP")
    db_pool_size: int = Field(
        4, ge=1, le=50, description="connections kept per instance (= request threads)"
    )
    db_max_overflow: int = Field(
        0, ge=0, le=50, description="extra connections; >0 opens and closes them (churn)"
    )
    db_pool_timeout: float = Field(
        10.0, gt=0, le=300, description="seconds to wait for a connection"
    )
    db_pool_recycle: int = Field(1800, ge=30, description="seconds before a connection is renewed")
    db_statement_timeout_ms: int = Field(15000, ge=0, description="per-statement limit, 0 = none")
    db_socket_timeout: float = Field(
        20.0,
        gt=0,
        le=120,
        description="seconds a database connect or read may wait before the request gets a 503 "
        "(above the statement timeout; with DB_POOL_TIMEOUT, a pre-ping and a reconnect, "
        "below the units' request timeout)",
    )

    redis_url: str | None = Field(None, description="redis://host:port/db; none = embedded")
    redis_timeout: float = Field(0.5, gt=0, le=60, description="socket timeout of Redis calls (s)")
    retry_after_seconds: int = Field(
        5,
        ge=1,
        le=3600,
        description="Retry-After of a 503 (a dependency unavailable) that does not set its own",
    )

    cors_origins: list[str] = Field(
        [], description='allowed origins, JSON list, e.g. ["https://app.x"]'
    )
    cors_max_age: int = Field(600, ge=0, description="seconds a browser caches a preflight")
    max_body_bytes: int = Field(1_048_576, ge=1024, description="largest accepted request body")
    forwarded_hops: int = Field(
        0, ge=0, le=5, description="X-Forwarded-For entries appended by our own proxies (LB: 2)"
    )
    rate_limit_default: str = Field(
        "120/60", pattern=RATE, description="requests/seconds per caller and endpoint"
    )
    signup_limit: str = Field(
        "10/3600", pattern=RATE, description="POST /auth/register per client IP"
    )
    password_reset_limit: str = Field(
        "10/3600", pattern=RATE, description="POST /auth/reset-password per client IP"
    )
    google_signin_limit: str = Field(
        "30/300", pattern=RATE, description="POST /auth/google per client IP"
    )
    order_limit: str = Field(
        "10/60", pattern=RATE, description="POST /orders/ per customer (it takes stock)"
    )
    cache_ttl_seconds: int = Field(
        60, ge=1, le=86400, description="how long a cached catalog answer lives in Redis"
    )
    idempotency_ttl_seconds: int = Field(
        86400, ge=60, le=30 * 86400, description="how long an Idempotency-Key is remembered"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="level")
    log_format: Literal["json", "text"] = Field(
        "json",
        description="json: Cloud Logging's format (production); text: a readable line per "
        "event (make dev's default)",
    )
    gcp_project: str | None = Field(None, description="project id, for trace ids in logs")

    refresh_token_days: int = Field(30, ge=1, le=365, description="refresh token lifetime")
    reset_token_minutes: int = Field(30, ge=5, le=1440, description="password reset lifetime")
    password_min_length: int = Field(10, ge=8, le=64, description="shortest accepted password")
    max_concurrent_hashes: int = Field(
        2, ge=1, le=32, description="password hashes run at once per instance (memory bound)"
    )
    login_limit_per_account: str = Field(
        "10/300", pattern=RATE, description="login attempts per e-mail"
    )
    login_limit_per_ip: str = Field(
        "50/300", pattern=RATE, description="login attempts per client IP"
    )
    recovery_limit_per_account: str = Field(
        "3/3600", pattern=RATE, description="recovery requests per e-mail"
    )
    recovery_limit_per_ip: str = Field(
        "20/3600", pattern=RATE, description="recovery requests per client IP"
    )
    login_fail_closed: bool = Field(
        True, description="refuse logins (503) when Redis is down instead of skipping limits"
    )
    recovery_fail_closed: bool = Field(
        False,
        description="refuse password recovery (503) when Redis is down instead of skipping its "
        "limits (off: it only mails the account's owner)",
    )
    rate_limit_fail_closed: bool = Field(
        False,
        description="refuse requests (503) to endpoints with a rate limit when Redis is down "
        "instead of serving them uncounted (off: a limiter outage is not an API outage)",
    )
    order_limit_fail_closed: bool = Field(
        False,
        description="refuse POST /orders/ (503) when Redis is down instead of skipping its "
        "limit (off: stock stays exact either way; the limit only slows one customer)",
    )
    google_client_ids: list[str] = Field(
        [], description="OAuth client ids accepted by POST /auth/google"
    )
    google_certs_url: str = Field(
        "https://www.googleapis.com/oauth2/v1/certs",
        description="Google's ID-token signing certificates (PEM JSON)",
    )
    oidc_audience: str | None = Field(
        None, description="audience of Cloud Tasks/Scheduler OIDC tokens (the tasks/cron URL)"
    )
    oidc_service_accounts: list[str] = Field(
        [], description="service accounts allowed to call /tasks and /cron"
    )
    oidc_certs_url: str = Field(
        "https://www.googleapis.com/oauth2/v1/certs",
        description="certificates that sign service OIDC tokens (file:// only locally)",
    )
    tasks_backend: Literal["local", "cloud"] = Field(
        "local",
        description="local: the dispatcher `make dev` runs (infra/local); cloud: Cloud Tasks",
    )
    tasks_project: str | None = Field(None, description="project of the Cloud Tasks queues")
    tasks_location: str = Field("europe-west1", description="region of the Cloud Tasks queues")
    tasks_emulator_host: str | None = Field(
        None, description="host:port of gcloud-tasks-emulator (tests; plain gRPC, no auth)"
    )
    tasks_target_url: str = Field(
        "http://127.0.0.1:8080", description="base URL Cloud Tasks pushes to (the tasks unit)"
    )
    tasks_service_account: str = Field(
        "tasks-invoker@local.test", description="account whose OIDC token Cloud Tasks sends"
    )
    storage_bucket: str = Field("imangor-local", description="bucket for uploads and reports")
    storage_project: str = Field("imangor-local", description="project of the bucket")
    storage_signing_key_file: str | None = Field(
        None, description="service-account JSON that signs URLs locally (none: IAM signBlob)"
    )
    storage_signing_account: str | None = Field(
        None, description="account whose IAM signBlob signs URLs on Cloud Run"
    )
    upload_max_bytes: int = Field(20 * 1024 * 1024, ge=1, description="largest upload")
    upload_content_types: list[str] = Field(
        default_factory=lambda: [
            "image/png",
            "image/jpeg",
            "image/webp",
            "application/pdf",
            "text/csv",
            "text/plain",
        ],
        description="content types an upload may declare",
    )
    upload_url_minutes: int = Field(10, ge=1, le=60, description="signed upload URL lifetime")
    download_url_minutes: int = Field(5, ge=1, le=60, description="signed download URL lifetime")
    email_backend: Literal["log", "smtp"] = Field(
        "log", description="log: write mail to the log and sent_emails; smtp: send it"
    )
    email_from: str = Field("no-reply@imangor.dev", description="From: of outgoing mail")
    smtp_host: str | None = Field(None, description="SMTP server (email_backend=smtp)")
    smtp_port: int = Field(587, ge=1, le=65535, description="SMTP port (STARTTLS)")
    smtp_user: str | None = Field(None, description="SMTP user")
    smtp_password: SecretStr | None = Field(None, description="SMTP password")
    password_reset_url: str | None = Field(
        None,
        pattern=r"^https?://[^?#\s]+$",
        description="the front end's reset page: reset mails link to it with ?token=…; unset: "
        "they give the token to send to POST /auth/reset-password",
    )
    argon2_time_cost: int = Field(2, ge=1, le=10, description="Argon2id iterations (t)")
    argon2_memory_kib: int = Field(19456, ge=8192, description="Argon2id memory in KiB (m)")
    argon2_parallelism: int = Field(1, ge=1, le=8, description="Argon2id lanes (p)")
    first_admin_email: str | None = Field(None, description="first admin, created idempotently")
    first_admin_password: SecretStr | None = Field(None, description="first admin's password")

    @field_validator("database_url")
    @classmethod
    def _plain_postgres_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not value.startswith(("postgresql://", "postgresql+pg8000://")):
            raise ValueError("DATABASE_URL must look like postgresql://user:password@host:port/db")
        database_tls(value)  # raises ValueError, with the reason, for a bad sslmode
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("REDIS_URL must look like redis://host:port/db")
        return value

    @model_validator(mode="after")
    def _socket_outlasts_statements(self) -> Settings:
        # PostgreSQL cancels a slow statement itself and the connection stays usable; a
        # socket timeout first would break the connection instead.
        statement = self.db_statement_timeout_ms
        if statement and self.db_socket_timeout * 1000 <= statement:
            raise ValueError("DB_SOCKET_TIMEOUT must exceed DB_STATEMENT_TIMEOUT_MS")
        return self

    @model_validator(mode="after")
    def _secrets_are_real_outside_local(self) -> Settings:
        if self.jwt_algorithm != "HS256" and self.jwt_private_key is None:
            raise ValueError(f"JWT_ALGORITHM={self.jwt_algorithm} needs JWT_PRIVATE_KEY")
        if self.environment == "production":
            if self.secret_key.get_secret_value() != LOCAL_SECRET and not self._strong_secret:
                raise ValueError(KEY_ADVICE)
            if not (
                (self.password_reset_url or "https://").startswith("https://")
                and self.google_certs_url.startswith("https://")
                and self.oidc_certs_url.startswith("https://")
            ):
                raise ValueError("certificate URLs must be https:// in production")
            if self.tasks_backend == "cloud" and not (self.tasks_project and self.oidc_audience):
                raise ValueError("TASKS_BACKEND=cloud needs TASKS_PROJECT and OIDC_AUDIENCE")
            admin_password = self.first_admin_password
            if admin_password is not None and (
                len(admin_password.get_secret_value()) < self.password_min_length
                or admin_password.get_secret_value().lower() in PLACEHOLDER_SECRETS
            ):
                raise ValueError(
                    "FIRST_ADMIN_PASSWORD is a placeholder or shorter than PASSWORD_MIN_LENGTH"
                )
        return self

    @property
    def _strong_secret(self) -> bool:
        key = self.secret_key.get_secret_value()
        return key.lower() not in PLACEHOLDER_SECRETS and len(key) >= 32

    def check_needs(self, needs: tuple[str, ...], *, serving: bool = False) -> None:
        """Stop a unit at start-up, naming the settings, when something it needs is unset.
        Units are given only what they use (least privilege), so each checks only its own
        needs: the docs unit starts without SECRET_KEY or a database, the auth unit does not.
        In production every need is checked. A unit `serving` alone anywhere else (the
        functions-framework command) needs its database and Redis, without which every
        request would fail; the dev server, the tests and the tools set them or serve nothing."""
        production = self.environment == "production"
        if not (production or serving):
            return
        missing = []
        if "database" in needs:
            if production and not self._strong_secret:
                missing.append(KEY_ADVICE)
            if self.database_url is None and self.instance_connection_name is None:
                missing.append(f"set {NEED_SETTINGS['database']}")
        if "redis" in needs and not self.redis_url:
            missing.append(f"set {NEED_SETTINGS['redis']}")
        if production and "mail" in needs and (self.email_backend != "smtp" or not self.smtp_host):
            # The log backend writes reset links where log readers would see them.
            missing.append(f"set {NEED_SETTINGS['mail']} (mail is never logged here)")
        if production and "tasks" in needs and self.tasks_backend != "cloud":
            missing.append(f"set {NEED_SETTINGS['tasks']}")
        if missing:
            raise ConfigurationError("configuration incomplete: " + "; ".join(missing))

    @property
    def is_local(self) -> bool:
        return self.environment in ("local", "test")


def database_tls(url: str) -> tuple[str, str | None]:
    """(sslmode, sslrootcert) of a postgresql:// URL, as libpq reads them.

    Unset, sslmode is `prefer` (pg8000's and libpq's default), except for a loopback host or a
    socket, where TLS protects nothing: there it is `disable`, which also spares every cold
    start the ≈40 ms pg8000 spends loading the system's CA bundle into a context that verifies
    nothing. (A local port forwarded to a remote database is loopback too: give it an
    sslmode.) `verify-ca` needs `sslrootcert`: against the system's public CAs without a
    hostname check it would accept any site's certificate.
    """
    parts = urlsplit(url)
    query = parse_qs(parts.query, keep_blank_values=True)
    for key, values in query.items():
        if key.startswith("ssl") and key not in SSL_KEYS:
            raise ValueError(f"DATABASE_URL: {key} is not supported (only {', '.join(SSL_KEYS)})")
        if key in SSL_KEYS and len(values) > 1:
            raise ValueError(f"DATABASE_URL: {key} is given more than once")
    mode = query.get("sslmode", [None])[0]
    root_cert = query.get("sslrootcert", [None])[0] or None
    if len(query.get("host", [])) > 1:
        raise ValueError("DATABASE_URL: host is given more than once")
    # The driver connects to ?host= when it is given: that host decides, not the authority's.
    host = query.get("host", [parts.hostname])[0]
    if mode is None:
        local = not host or host in _LOOPBACK or host.startswith("/")  # "/…": a socket
        mode = "disable" if local else "prefer"
    if mode not in SSL_MODES:
        raise ValueError(f"DATABASE_URL: sslmode must be one of {', '.join(SSL_MODES)}")
    if mode == "verify-ca" and root_cert is None:
        raise ValueError("DATABASE_URL: sslmode=verify-ca needs sslrootcert=<your CA's PEM file>")
    return mode, root_cert


class ConfigurationError(RuntimeError):
    """Settings that failed validation: each bad setting named with the reason, never with
    its value (a rejected DATABASE_URL or password must not reach the start-up log)."""


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, validated on first use (so a bad value fails at start)."""
    try:
        return Settings()
    except ValidationError as exc:
        reasons = [
            f"{'.'.join(str(part) for part in error['loc']).upper() or 'settings'}: {error['msg']}"
            for error in exc.errors(include_url=False, include_input=False, include_context=False)
        ]
        raise ConfigurationError("invalid configuration: " + "; ".join(reasons)) from None
