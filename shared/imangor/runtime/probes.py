"""Cloud Run's container probes, answered by every unit.

Cloud Run sends its startup probe (`GET /ready`) and liveness probe (`GET /health`) straight to
each instance's port, past the load balancer (terraform/modules/unit). The health unit serves
both paths as API endpoints (the load balancer routes them there); every other unit answers
them here, before routing, so that each instance reports on itself:

- `/health`: the process answers (touches nothing; a hung instance is restarted);
- `/ready`: the database and Redis this unit needs answer (an instance gets traffic only once
  they do: the first request no longer pays for the connection, and a revision that cannot
  reach them never receives traffic, so a release with a broken network path stops at deploy).

Probe answers are not logged or counted (Cloud Run sends one every few seconds per instance).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from flask import Request, Response

log = logging.getLogger(__name__)
LIVENESS, READINESS = "/health", "/ready"
PATHS = (LIVENESS, READINESS)


def _dependency_checks() -> dict[str, Callable[[], None]]:
    from imangor.services.health import CHECKS

    return CHECKS


def readiness(needs: tuple[str, ...]) -> tuple[int, dict[str, object]]:
    """(status, body) of /ready for a unit with these needs: 200 when every dependency it
    needs answers, else 503 naming each that does not."""
    checks: dict[str, str] = {}
    for name, check in _dependency_checks().items():
        if name not in needs:
            continue
        try:
            check()
        except Exception as exc:
            log.warning("readiness check %s failed: %s", name, exc)
            checks[name] = f"down: {type(exc).__name__}"
        else:
            checks[name] = "ok"
    down = sorted(name for name, state in checks.items() if state != "ok")
    return (503 if down else 200), {"status": "unavailable" if down else "ok", "checks": checks}


def answer(request: Request, needs: tuple[str, ...]) -> Response | None:
    """The probe's answer if `request` is one (a GET or HEAD of /health or /ready), else None."""
    if request.method not in ("GET", "HEAD") or request.path not in PATHS:
        return None
    body: dict[str, object]
    if request.path == LIVENESS:
        status, body = 200, {"status": "ok"}
    else:
        status, body = readiness(needs)
    response = Response(json.dumps(body), status=status, mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response
