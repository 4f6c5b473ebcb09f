"""Cache bumps that must land: a write's version bump that Redis missed becomes a
`bump_cache` task, written through the outbox before the request answers, so Cloud Tasks
retries it (the `cache` queue's backoff) even if the writing instance goes away. See
`imangor.cache` for the bound this gives.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from imangor import cache

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


def bump_after_commit(session: Session, namespace: str) -> None:
    """`cache.bump_after_commit`, with a missed bump recorded as a `bump_cache` task."""
    cache.bump_after_commit(session, namespace, on_failure=enqueue_bump)


def enqueue_bump(namespaces: list[str], committed_at: datetime) -> None:
    """Record the missed bump in a transaction of its own (the write's has committed)."""
    from imangor.db import session_scope
    from imangor.schemas.tasks import BumpCache
    from imangor.tasks.outbox import enqueue

    with session_scope() as session:
        enqueue(session, BumpCache(namespaces=namespaces, committed_at=committed_at))


def bump_now(namespaces: list[str], committed_at: datetime) -> dict[str, object]:
    """The `bump_cache` task's work: bump each namespace, or raise so the task is retried.
    Once CACHE_TTL_SECONDS have passed since the commit, every entry that could be stale has
    expired: nothing is left to do."""
    from datetime import UTC

    from imangor.config import get_settings
    from imangor.errors import ServiceUnavailable

    age = (datetime.now(UTC) - committed_at).total_seconds()
    if age > get_settings().cache_ttl_seconds:
        return {"bumped": [], "reason": "the entries it would hide have expired"}
    missed = [namespace for namespace in namespaces if not cache.bump(namespace)]
    if missed:
        raise ServiceUnavailable(f"Redis is unreachable; {', '.join(missed)} not bumped yet")
    return {"bumped": namespaces}
