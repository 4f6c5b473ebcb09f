"""Idempotent writes: the first answer under a client's key is replayed to its retries.

The key row is claimed at the start of the write's own transaction and the answer is stored
in it before commit, so:
- a request that fails anywhere rolls back its key too: the retry runs again from scratch;
- a concurrent duplicate blocks on the key's primary key until the first commits, then
  replays its answer (or, if the first rolled back, runs itself);
- the same key with another request (another scope or another body) is refused;
- keys expire after IDEMPOTENCY_TTL_SECONDS: an expired key is claimed anew as if unseen.

What a request and its answer are is the caller's business (the runtime passes its method
and path as the scope, and keeps the response it sent as the answer): this module stores
them and compares them, nothing more.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from imangor.config import get_settings
from imangor.errors import Conflict
from imangor.models import IdempotencyKey

Answer = dict[str, Any]  # any JSON object; stored as given, returned as stored


class KeyReused(Exception):
    """The key was already used for another request; its caller decides how to say so."""


def request_fingerprint(scope: str, request: Mapping[str, Any]) -> str:
    """sha256 of the scope and the request's canonical JSON (key order is irrelevant)."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{scope}\n{canonical}".encode()).hexdigest()


def run_once(
    session: Session,
    *,
    owner: uuid.UUID,
    key: str,
    scope: str,
    request: Mapping[str, Any],
    run: Callable[[], Answer],
) -> tuple[Answer, bool]:
    """`run()`'s answer, or the stored answer of an earlier request with this key.

    Returns (answer, replayed). Raises KeyReused when `owner` used the key for another
    `scope` or `request`. Must run inside the transaction that makes the write (the caller
    commits).
    """
    stored = _claim(session, owner, key, request_fingerprint(scope, request))
    if stored is not None:
        return stored, True
    answer = run()
    session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.user_id == owner, IdempotencyKey.key == key)
        .values(answer=answer)
        .execution_options(synchronize_session=False)
    )
    return answer, False


def _claim(session: Session, owner: uuid.UUID, key: str, fingerprint: str) -> Answer | None:
    """Claim the key for this transaction (None), or the stored answer to replay."""
    table = IdempotencyKey
    fresh = insert(table).values(
        user_id=owner,
        key=key,
        fingerprint=fingerprint,
        expires_at=func.now() + timedelta(seconds=get_settings().idempotency_ttl_seconds),
    )
    # An expired row is taken over; a live one is left alone (and its owner waited for).
    claim = fresh.on_conflict_do_update(
        index_elements=[table.user_id, table.key],
        set_={
            "fingerprint": fresh.excluded.fingerprint,
            "answer": None,
            "created_at": func.now(),
            "expires_at": fresh.excluded.expires_at,
        },
        where=table.expires_at <= func.now(),
    ).returning(table.key)
    if session.execute(claim).first() is not None:
        return None
    row = session.execute(
        select(table.fingerprint, table.answer).where(table.user_id == owner, table.key == key)
    ).one()
    if row.fingerprint != fingerprint:
        raise KeyReused(key)
    if row.answer is None:  # cannot happen for a committed row; never replay nothing
        raise Conflict("a request with this key is still in progress")
    answer: Answer = row.answer
    return answer


def purge_expired(session: Session, now: datetime | None = None) -> int:
    """Delete expired keys (for a scheduled job); returns how many went."""
    cutoff = now if now is not None else func.now()
    result = session.execute(delete(IdempotencyKey).where(IdempotencyKey.expires_at <= cutoff))
    return int(getattr(result, "rowcount", 0) or 0)
