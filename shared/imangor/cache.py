"""Read-through cache for public reads, in Redis, invalidated by a versioned namespace.

Every key of a namespace embeds its current version number (`cache:catalog:<version>:...`).
A write that changes any answer of the namespace bumps the version *after its transaction
commits*, so later reads miss and refill from the database, while a reader that raced the
write can only have filled a key of the old version, which nobody reads again and which
expires by TTL. Keys are digests of the normalised query, never of `str(args)`.

Redis is an optimisation here, not a dependency: when it is down or unset, reads go to the
database and writes skip the bump, and nothing errors.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from imangor.config import get_settings

if TYPE_CHECKING:
    from redis import Redis
    from sqlalchemy.orm import Session

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)

CATALOG = "catalog"  # products by id and product searches: product writes and orders bump it
_PENDING = "imangor.cache.bump"  # session.info key: namespaces to bump after commit
_LISTENING = "imangor.cache.listening"


def _client() -> Redis | None:
    try:
        from imangor.redis_client import get_redis

        return get_redis()
    except RuntimeError:  # no REDIS_URL: run uncached
        return None


def _version_key(namespace: str) -> str:
    return f"cache:{namespace}:version"


def version(namespace: str) -> int | None:
    """The namespace's current version, or None when Redis cannot be reached."""
    from redis.exceptions import RedisError

    client = _client()
    if client is None:
        return None
    key = _version_key(namespace)
    try:
        current: Any = client.get(key)
        if current is None:
            # A fresh (or evicted) version starts at the clock, never back at an old number
            # whose keys might still be alive.
            client.set(key, time.time_ns() // 1000, nx=True)
            current = client.get(key)
        return int(current) if current is not None else None
    except (RedisError, ValueError) as exc:
        log.warning("cache unavailable, reading from the database: %s", exc)
        return None


def make_key(namespace: str, version: int, kind: str, params: Mapping[str, Any]) -> str:
    """`cache:<ns>:<version>:<kind>:<digest of the canonical JSON of params>`."""
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:32]
    return f"cache:{namespace}:{version}:{kind}:{digest}"


def read_through(
    namespace: str,
    kind: str,
    params: Mapping[str, Any],
    model: type[M],
    load: Callable[[], M],
) -> M:
    """The cached answer for (kind, params), else `load()`'s, stored for CACHE_TTL_SECONDS
    (a version bump makes it unreachable sooner)."""
    from redis.exceptions import RedisError

    current = version(namespace)
    client = _client()
    if current is None or client is None:
        return load()
    key = make_key(namespace, current, kind, params)
    try:
        raw: Any = client.get(key)
    except RedisError as exc:
        log.warning("cache read failed, reading from the database: %s", exc)
        return load()
    if raw is not None:
        try:
            return model.model_validate_json(raw)
        except ValidationError:  # written by an older release: refill
            log.info("discarding an unreadable cache entry %s", key)
    value = load()
    try:
        client.set(key, value.model_dump_json(), ex=get_settings().cache_ttl_seconds)
    except RedisError as exc:
        log.warning("cache write failed: %s", exc)
    return value


def bump(namespace: str) -> None:
    """Make every cached answer of the namespace unreachable (best effort)."""
    from redis.exceptions import RedisError

    client = _client()
    if client is None:
        return
    try:
        key = _version_key(namespace)
        if client.incr(key) == 1:  # the key had vanished: restart from the clock instead
            client.set(key, time.time_ns() // 1000)
    except RedisError as exc:
        log.warning("cache version bump failed for %s: %s", namespace, exc)


def bump_after_commit(session: Session, namespace: str) -> None:
    """Bump `namespace` once the session's transaction commits; a rollback bumps nothing."""
    from sqlalchemy import event

    if not session.info.get(_LISTENING):
        session.info[_LISTENING] = True
        event.listen(session, "after_commit", _bump_pending)
    session.info.setdefault(_PENDING, set()).add(namespace)


def _bump_pending(session: Session) -> None:
    for namespace in sorted(session.info.pop(_PENDING, ())):
        bump(namespace)
