"""Liveness, readiness (with a dependency really down) and the whole-API dispatch."""

from __future__ import annotations

import pytest
import requests
from werkzeug.test import Client


def test_health_answers_without_dependencies(client: Client) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_ready_checks_database_and_redis(client: Client) -> None:
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.json == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}


def test_ready_is_503_naming_what_is_down(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    from imangor.config import get_settings
    from imangor.redis_client import reset_redis

    # A real unreachable Redis (a closed port), not a mock.
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    get_settings.cache_clear()
    reset_redis()
    try:
        response = client.get("/ready")
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
        reset_redis()
    assert response.status_code == 503
    body = response.json
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"].startswith("down")
    assert "redis" in body["detail"]


def test_unknown_prefix_is_a_404_problem(client: Client) -> None:
    response = client.get("/no-such-thing")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"


def test_served_over_real_http(live_server: str) -> None:
    response = requests.get(f"{live_server}/health", timeout=5)
    assert response.status_code == 200
    assert response.headers["X-Request-ID"]
