"""Settings are validated at start; production refuses placeholder secrets."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from imangor.config import Settings


@pytest.fixture(autouse=True)
def bare_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests build Settings from nothing but what each one sets."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)


PRODUCTION = {
    "environment": "production",
    "database_url": "postgresql://u@h:5432/d",
    "redis_url": "redis://r:6379/0",
}


def test_production_refuses_a_placeholder_secret() -> None:
    for secret in ("changeme", "short"):
        with pytest.raises(ValidationError, match="SECRET_KEY"):
            Settings(_env_file=None, **PRODUCTION, secret_key=secret)  # type: ignore[arg-type]


def test_a_unit_that_needs_the_database_refuses_to_start_without_secret_or_database() -> None:
    unset = Settings(_env_file=None, **PRODUCTION)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        unset.check_needs(("database", "redis"))
    no_db = Settings(_env_file=None, environment="production", secret_key="x" * 40)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="DATABASE_URL"):
        no_db.check_needs(("database",))
    with pytest.raises(RuntimeError, match="REDIS_URL"):
        no_db.check_needs(("redis",))


def test_a_unit_that_needs_nothing_starts_with_nothing_set() -> None:
    """The docs unit gets no secret and no database (least privilege) and must still start."""
    bare = Settings(_env_file=None, environment="production")  # type: ignore[arg-type]
    bare.check_needs(())


def test_local_mode_runs_with_nothing_set() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.is_local
    assert settings.port == 8080


def test_bad_urls_are_clear_errors() -> None:
    with pytest.raises(ValidationError, match="postgresql://"):
        Settings(_env_file=None, database_url="mysql://x")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="redis://"):
        Settings(_env_file=None, redis_url="http://x")  # type: ignore[arg-type]


def test_values_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_POOL_SIZE", "3")
    monkeypatch.setenv("CORS_ORIGINS", '["https://a.example"]')
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.db_pool_size == 3
    assert settings.cors_origins == ["https://a.example"]
    monkeypatch.setenv("DB_POOL_SIZE", "0")
    with pytest.raises(ValidationError, match="db_pool_size"):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_database_url_gets_the_pg8000_driver() -> None:
    from imangor.db import sqlalchemy_url

    url = sqlalchemy_url("postgresql://user:pw@db:5432/app")
    assert url.drivername == "postgresql+pg8000"
    assert (url.host, url.database, url.password) == ("db", "app", "pw")


def test_a_unit_that_sends_mail_refuses_the_log_backend_in_production() -> None:
    """The log backend would put password-reset links where anyone reading logs sees them."""
    logging_mail = Settings(_env_file=None, **PRODUCTION)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="EMAIL_BACKEND=smtp"):
        logging_mail.check_needs(("mail",))
    smtp = Settings(
        _env_file=None,
        **PRODUCTION,
        email_backend="smtp",  # type: ignore[arg-type]
        smtp_host="smtp.example.com",
    )
    smtp.check_needs(("mail",))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RATE_LIMIT_DEFAULT", "120/0"),  # a 0 s window would expire the counter on every hit
        ("LOGIN_LIMIT_PER_ACCOUNT", "0/300"),  # 0 requests would refuse everyone
        ("REDIS_TIMEOUT", "inf"),  # every request would fail computing its deadline
        ("DB_POOL_TIMEOUT", "inf"),
        ("SMTP_PORT", "-5"),
    ],
)
def test_nonsensical_values_are_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=name.lower()):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_a_configuration_error_names_the_setting_never_its_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from imangor.config import ConfigurationError, get_settings

    monkeypatch.setenv("DATABASE_URL", "postgresql://app:Hunter2pw@db/app?sslmode=on")
    get_settings.cache_clear()
    try:
        with pytest.raises(ConfigurationError) as raised:
            get_settings()
    finally:
        get_settings.cache_clear()
    message = str(raised.value)
    assert "DATABASE_URL" in message and "sslmode" in message
    assert "Hunter2pw" not in message
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_production_refuses_a_weak_first_admin_password() -> None:
    strong = {**PRODUCTION, "secret_key": "s" * 40, "first_admin_email": "admin@example.com"}
    for weak in ("a", "changeme", "short-pw"):
        with pytest.raises(ValidationError, match="FIRST_ADMIN_PASSWORD") as raised:
            Settings(_env_file=None, **strong, first_admin_password=weak)  # type: ignore[arg-type]
        assert f"'{weak}'" not in str(raised.value.errors(include_input=False))
    Settings(_env_file=None, **strong, first_admin_password="a long admin passphrase")  # type: ignore[arg-type]


def test_the_database_socket_timeout_outlasts_statements_and_fits_every_unit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PostgreSQL cancels a slow statement itself (the connection stays usable) before the
    socket gives up on it; and a request that meets a frozen database (the pool's wait, a
    pre-ping and one reconnect, each bounded) is answered before its unit's deadline."""
    from imangor.registry import REGISTRY, load_all_units, unit_names

    load_all_units()
    monkeypatch.setenv("DB_SOCKET_TIMEOUT", "15")
    with pytest.raises(ValidationError, match="DB_SOCKET_TIMEOUT must exceed"):
        Settings(_env_file=None)  # type: ignore[call-arg]
    monkeypatch.setenv("DB_STATEMENT_TIMEOUT_MS", "0")  # no statement limit: any timeout
    assert Settings(_env_file=None).db_socket_timeout == 15  # type: ignore[call-arg]
    monkeypatch.delenv("DB_SOCKET_TIMEOUT")
    monkeypatch.delenv("DB_STATEMENT_TIMEOUT_MS")
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    worst = defaults.db_pool_timeout + 2 * defaults.db_socket_timeout
    for unit in unit_names():
        deploy = REGISTRY.deploys[unit]
        if "database" in deploy.needs:
            assert worst < deploy.timeout_seconds, unit


def test_every_fail_open_or_closed_choice_is_a_documented_boolean_setting() -> None:
    """Each rate limit names the setting that decides what it does while Redis is down."""
    from imangor.ratelimit import fail_closed_setting
    from imangor.registry import REGISTRY, RateLimit, load_all_units

    load_all_units()
    names = {"rate_limit_fail_closed"}
    for e in REGISTRY.endpoints:
        if isinstance(e.rate_limit, RateLimit):
            names.add(e.rate_limit.fail_closed)
        elif e.rate_limit != "off":
            names.add(fail_closed_setting(e.rate_limit))
    names |= {"login_fail_closed", "recovery_fail_closed"}
    assert "order_limit_fail_closed" in names
    for name in names:
        field = Settings.model_fields[name]
        assert field.annotation is bool, name
        assert field.description, name
