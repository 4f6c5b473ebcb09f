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


def test_production_refuses_a_missing_or_placeholder_secret() -> None:
    for secret in (None, "changeme", "short"):
        env = {"environment": "production", "database_url": "postgresql://u@h:5432/d"}
        if secret is not None:
            env["secret_key"] = secret
        with pytest.raises(ValidationError, match="SECRET_KEY"):
            Settings(_env_file=None, **env)  # type: ignore[arg-type]


def test_production_needs_a_database() -> None:
    with pytest.raises(ValidationError, match="DATABASE_URL"):
        Settings(_env_file=None, environment="production", secret_key="x" * 40)  # type: ignore[arg-type]


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
