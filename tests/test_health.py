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
    assert int(response.headers["Retry-After"]) >= 1
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


def test_text_log_lines_are_readable_and_carry_the_request() -> None:
    """LOG_FORMAT=text (make dev): one line per event with time, level, logger, message,
    latency and request id; JSON stays the production format."""
    import logging

    from imangor.observability import TextFormatter, request_id_var

    record = logging.LogRecord("imangor.request", logging.INFO, "x", 1, "GET /health 200", (), None)
    record.fields = {"httpRequest": {"latency": "0.012345s"}}
    token = request_id_var.set("req-12345678")
    try:
        line = TextFormatter().format(record)
    finally:
        request_id_var.reset(token)
    assert line.endswith(" INFO  imangor.request  GET /health 200 (12.3 ms) [req-12345678]")
    assert line[:8].count(":") == 2
    mail = logging.LogRecord("imangor.mail", logging.INFO, "x", 1, "e-mail to a@b.c", (), None)
    mail.fields = {"email_body": "first line\nsecond line"}
    assert (
        TextFormatter()
        .format(mail)
        .endswith("e-mail to a@b.c\n    email_body:\n      first line\n      second line")
    )
