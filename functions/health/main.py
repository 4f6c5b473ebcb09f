"""health unit: liveness, readiness and Prometheus metrics."""

from flask import Response

from imangor import metrics as prometheus
from imangor.errors import ServiceUnavailable
from imangor.runtime import Deploy, Unit
from imangor.schemas.common import Output

# /ready reaches the database and Redis; the rest touches nothing.
unit = Unit("health", Deploy(memory="256Mi", max_instances=3))


class Health(Output):
    status: str


class Readiness(Output):
    status: str
    checks: dict[str, str]


@unit.get("/health", access="public", rate_limit="off")
def liveness() -> Health:
    """Liveness: the process answers; touches no dependency."""
    return Health(status="ok")


@unit.get("/ready", access="public", rate_limit="off", errors=(503,))
def readiness() -> Readiness:
    """Readiness: the database and Redis answer (503 naming what is down otherwise)."""
    from imangor.services.health import check_dependencies

    checks = check_dependencies()
    down = sorted(name for name, state in checks.items() if state != "ok")
    if down:
        raise ServiceUnavailable(f"not ready: {', '.join(down)} unavailable", checks=checks)
    return Readiness(status="ok", checks=checks)


@unit.get("/metrics", access="public", rate_limit="off", raw=True, produces=("text/plain",))
def metrics() -> Response:
    """Prometheus text exposition of this instance's metrics."""
    body, content_type = prometheus.render()
    return Response(body, content_type=content_type)


health = unit.entry_point()
