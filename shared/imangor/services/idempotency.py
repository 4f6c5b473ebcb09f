"""Idempotent writes: the first answer under a client's key is replayed to its retries.

The write runs first; the key is then claimed and its answer stored in one statement, in the
write's own transaction, before commit. A key someone else holds turns the request into a
replay: its own write is rolled back and the stored answer returned. So:
- a request that fails anywhere rolls back its key too: the retry runs again from scratch;
- a concurrent duplicate blocks on the key's primary key until the first commits, then
  rolls its own work back and replays the first's answer (or, if the first rolled back,
  commits its own): one write commits per key;
- a request that fails while another holds the key (the first took the last unit, say)
  waits for that key as well, and replays its answer rather than report its own failure;
- the same key with another request (another scope or another body) is refused;
- keys expire after IDEMPOTENCY_TTL_SECONDS: an expired key is claimed anew as if unseen.
Claiming last costs a keyed write one statement (claim and answer together) instead of two;
a retry of a finished request runs its write again before finding the key (then undoes it).
That needs every effect of the write to be transactional, as this service's writes are:
background work goes through the outbox, cache bumps happen after commit.

What a request and its answer are is the caller's business (the runtime passes its method
and path as the scope, and keeps the response it sent as the answer): this module stores
them and compares them, nothing more.
"""

from __future__ import annotations

import functools
import hashlib
import json
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    Interval,
    String,
    Table,
    Uuid,
    bindparam,
    delete,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningInsert

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
    fingerprint = request_fingerprint(scope, request)
    try:
        answer = run()
    except Exception:
        # Did this fail because another request holds the key (it took the last unit)? Wait
        # for that request as a claim would, and replay its answer; otherwise the failure
        # stands and leaves nothing behind, the key included.
        session.rollback()
        stored = _claim(session, owner, key, fingerprint)
        session.rollback()
        if stored is not None:
            return stored, True
        raise
    kept = {"owner": owner, "idem_key": key, "fp": fingerprint, "ttl": _ttl(), "kept": answer}
    if session.execute(_claim_statement(), kept).first() is not None:
        return answer, False
    # Another request holds the key: undo this one's work and give that request's answer.
    session.rollback()
    stored = _stored(session, owner, key, fingerprint)
    session.rollback()
    return stored, True


def _ttl() -> timedelta:
    return timedelta(seconds=get_settings().idempotency_ttl_seconds)


# The statement every keyed write runs is built once, from bind parameters only: each
# request then costs its execution, not building and compiling it again.
@functools.cache
def _claim_statement() -> ReturningInsert[tuple[str]]:
    """Claim the key with its answer (`kept`, NULL for a bare claim): insert it, or take over
    an expired row; a live row is left alone (and a transaction still holding it waited
    for). Returns the key when claimed."""
    table = cast(Table, IdempotencyKey.__table__)
    fresh = insert(table).values(
        user_id=bindparam("owner", type_=Uuid()),
        key=bindparam("idem_key", type_=String()),
        fingerprint=bindparam("fp", type_=String()),
        expires_at=func.now() + bindparam("ttl", type_=Interval()),
        answer=bindparam("kept", type_=JSONB(none_as_null=True)),
    )
    return fresh.on_conflict_do_update(
        index_elements=[table.c.user_id, table.c.key],
        set_={
            "fingerprint": fresh.excluded.fingerprint,
            "answer": fresh.excluded.answer,
            "created_at": func.now(),
            "expires_at": fresh.excluded.expires_at,
        },
        where=table.c.expires_at <= func.now(),
    ).returning(table.c.key)


def _claim(session: Session, owner: uuid.UUID, key: str, fingerprint: str) -> Answer | None:
    """Claim the key without an answer (None: claimed), or the stored answer to replay."""
    params = {"owner": owner, "idem_key": key, "fp": fingerprint, "ttl": _ttl(), "kept": None}
    if session.execute(_claim_statement(), params).first() is not None:
        return None
    return _stored(session, owner, key, fingerprint)


def _stored(session: Session, owner: uuid.UUID, key: str, fingerprint: str) -> Answer:
    """The answer stored under a live key, or KeyReused if it was for another request."""
    table = IdempotencyKey
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
