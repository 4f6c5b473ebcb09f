"""Dependency outages: which errors mean the database, Redis or a Google API (Cloud Storage,
Cloud Tasks) cannot answer right now.

A request that fails because a dependency is down, frozen or out of connections is answered
503 with `Retry-After` (the client may retry; nothing was committed), not 500: that is for
bugs. Services never see this: they let the driver's error through and the runtime
classifies it here, by type, without importing a driver a unit does not load.
"""

from __future__ import annotations

import sys
from typing import Any

# SQLSTATEs that say "not now" rather than "never": class 08 (connection exception), class 53
# (insufficient resources: too many connections, out of memory, disk full), the server shutting
# down or starting up (57P01-57P03), a statement cancelled by statement_timeout (57014), and the
# two a retry resolves (serialization failure, deadlock).
TRANSIENT_SQLSTATES = ("08", "53", "57P01", "57P02", "57P03", "57014", "40001", "40P01")


def unavailable_dependency(exc: BaseException) -> str | None:
    """The dependency `exc` says is unavailable ("the database", "Redis", or "a service it
    needs" for a bare socket error), or None for any other error. Follows explicit chaining
    (`raise … from exc`), not an error raised while handling another."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 5:
        found = _classify(current)
        if found is not None:
            return found
        current, seen = current.__cause__, seen + 1
    return None


def _classify(exc: BaseException) -> str | None:
    sa = sys.modules.get("sqlalchemy.exc")
    if sa is not None:
        if isinstance(exc, sa.TimeoutError):  # the pool had no connection free in time
            return "the database"
        if isinstance(exc, (sa.OperationalError, sa.InterfaceError, sa.DisconnectionError)):
            return "the database"
        if isinstance(exc, sa.DBAPIError) and (exc.connection_invalidated or _transient(exc.orig)):
            return "the database"
    pg = sys.modules.get("pg8000.exceptions")
    if pg is not None:
        if isinstance(exc, pg.InterfaceError):
            return "the database"
        if isinstance(exc, pg.DatabaseError) and _transient(exc):
            return "the database"
    redis = sys.modules.get("redis.exceptions")
    if redis is not None and isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
        return "Redis"
    # Cloud Storage and the other Google APIs: no usable credentials (none found, a refresh
    # refused, the metadata server unreachable) or the API itself saying "not now". Missing
    # credentials are a deployment's fault, not a bug in the request: ops fix them without a
    # release, and until then the client gets a 503 it may retry, never a 500.
    auth = sys.modules.get("google.auth.exceptions")
    if auth is not None and isinstance(exc, auth.GoogleAuthError):
        return "Google Cloud (credentials)"
    api = sys.modules.get("google.api_core.exceptions")
    if api is not None and isinstance(exc, _google_not_now(api)):
        return "a Google Cloud API"
    if isinstance(exc, (ConnectionError, TimeoutError)):  # a socket error nobody wrapped
        return _raised_by(exc) or "a service it needs"
    return None


def _google_not_now(api: Any) -> tuple[type[BaseException], ...]:
    return (api.ServiceUnavailable, api.GatewayTimeout, api.DeadlineExceeded, api.TooManyRequests)


# Where a bare socket error came from, by the package it was raised in: pg8000 lets a read
# timeout on the first byte of a reply through unwrapped, and SQLAlchemy passes it on.
_PACKAGES = (
    ("pg8000", "the database"),
    ("sqlalchemy", "the database"),
    ("google.cloud.sql", "the database"),
    ("imangor.db", "the database"),
    ("redis", "Redis"),
)


def _raised_by(exc: BaseException) -> str | None:
    found = None
    tb = exc.__traceback__
    while tb is not None:  # outermost to innermost: the innermost known package wins
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        for package, name in _PACKAGES:
            if module == package or module.startswith(package + "."):
                found = name
        tb = tb.tb_next
    return found


def _transient(error: Any) -> bool:
    """Whether a pg8000 server error carries one of the transient SQLSTATEs (pg8000 gives the
    server's error fields as a dict, the code under "C")."""
    fields = error.args[0] if getattr(error, "args", None) else None
    code = fields.get("C", "") if isinstance(fields, dict) else ""
    return isinstance(code, str) and code.startswith(TRANSIENT_SQLSTATES)
