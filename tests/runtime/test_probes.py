"""Cloud Run's probes (issue 12, item 6): every unit answers GET /health (liveness, touches
nothing) and GET /ready (its own database and Redis answer) on its own port, exactly as
Terraform's startup and liveness probes call it; the health unit keeps its API endpoints."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.test import Client

from imangor.registry import FUNCTIONS_DIR, REGISTRY


def unit_client(unit: str) -> Client:
    """One unit as Cloud Run runs it: its own functions-framework app, nothing in front."""
    import functions_framework

    source = str(FUNCTIONS_DIR / unit / "main.py")
    return Client(functions_framework.create_app(target=unit, source=source))  # type: ignore[no-untyped-call]


@pytest.fixture(scope="module")
def clients(configured: None) -> dict[str, Client]:
    return {unit: unit_client(unit) for unit in ("products", "docs", "health", "tasks")}


def test_every_unit_answers_liveness_without_touching_anything(
    clients: dict[str, Client],
) -> None:
    for unit, client in clients.items():
        response = client.get("/health")
        assert response.status_code == 200, unit
        assert response.json == {"status": "ok"}, unit


def test_readiness_checks_what_the_unit_needs(clients: dict[str, Client]) -> None:
    products = clients["products"].get("/ready")
    assert products.status_code == 200
    assert products.json == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}
    assert products.headers["Cache-Control"] == "no-store"
    docs = clients["docs"].get("/ready")  # needs nothing
    assert docs.status_code == 200 and docs.json == {"status": "ok", "checks": {}}
    # The health unit's own endpoint answers (a problem document when down, an API shape).
    health = clients["health"].get("/ready")
    assert health.status_code == 200
    assert health.json["checks"] == {"database": "ok", "redis": "ok"}
    assert health.headers.get("X-Request-ID")  # went through the runtime, not the probe


@pytest.fixture
def redis_down(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from imangor.config import get_settings
    from imangor.redis_client import reset_redis

    # A real unreachable Redis (a closed port), not a mock.
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    get_settings.cache_clear()
    reset_redis()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()
    reset_redis()


def test_a_unit_is_not_ready_while_a_dependency_it_needs_is_down(
    clients: dict[str, Client], redis_down: None
) -> None:
    response = clients["tasks"].get("/ready")
    assert response.status_code == 503
    body: dict[str, Any] = response.json
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"].startswith("down")
    # Liveness does not care: restarting the instance would not bring Redis back.
    assert clients["tasks"].get("/health").status_code == 200
    assert clients["docs"].get("/ready").status_code == 200  # docs needs no Redis


def test_probes_are_not_api_routes(clients: dict[str, Client]) -> None:
    """Only GET/HEAD of exactly /health and /ready: other methods and paths reach the unit's
    router, and the probes appear in neither the registry nor the OpenAPI document."""
    assert clients["products"].post("/ready").status_code in (404, 405)
    assert clients["products"].get("/ready/x").status_code == 404
    assert clients["products"].head("/health").status_code == 200
    routed = {(e.unit, e.path) for e in REGISTRY.endpoints}
    assert ("products", "/ready") not in routed and ("health", "/ready") in routed
