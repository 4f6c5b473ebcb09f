"""Readiness: can this instance reach the database and Redis right now?"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger(__name__)


def _database() -> None:
    from sqlalchemy import text

    from imangor.db import get_engine

    with get_engine().connect() as connection:
        connection.execute(text("SELECT 1"))


def _redis() -> None:
    from imangor.redis_client import get_redis

    get_redis().ping()


CHECKS = {"database": _database, "redis": _redis}


def check_dependencies() -> dict[str, str]:
    """Each dependency's state, "ok" or the error's class name, checked concurrently."""

    def run(name: str) -> str:
        try:
            CHECKS[name]()
        except Exception as exc:
            log.warning("readiness check %s failed: %s", name, exc)
            return f"down: {type(exc).__name__}"
        return "ok"

    with ThreadPoolExecutor(max_workers=len(CHECKS)) as pool:
        return dict(zip(CHECKS, pool.map(run, CHECKS), strict=True))
