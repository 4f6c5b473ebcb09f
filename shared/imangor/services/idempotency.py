"""Idempotent writes: the first answer to an `Idempotency-Key` is replayed to its retries.

The key row is claimed at the start of the write's own transaction and the answer is stored
in it before commit, so:
- a request that fails anywhere rolls back its key too: the retry runs again from scratch;
- a concurrent duplicate blocks on the key's primary key until the first commits, then
  replays its answer (or, if the first rolled back, runs itself);
- the same key with another request (method, path or body) is refused;
- keys expire after IDEMPOTENCY_TTL_SECONDS: an expired key is claimed anew as if unseen.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from imangor.config import get_settings
from imangor.errors import Conflict, ValidationFailed
from imangor.models import IdempotencyKey

M = TypeVar("M", bound=BaseModel)

# How long a key is remembered. Becomes the setting IDEMPOTENCY_TTL_SECONDS (default 86400).
HEADER = "Idempotency-Key"


def request_fingerprint(method: str, path: str, body: Mapping[str, Any]) -> str:
    """sha256 of the method, path and the body's canonical JSON (key order is irrelevant)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{method.upper()} {path}\n{canonical}".encode()).hexdigest()


def run_once(
    session: Session,
    *,
    user_id: uuid.UUID,
    key: str,
    fingerprint: str,
    status: int,
    model: type[M],
    run: Callable[[], M],
) -> tuple[M, bool]:
    """`run()`'s answer, or the stored answer of an earlier request with this key.

    Returns (answer, replayed). Raises ValidationFailed when the key was used for another
    request. Must run inside the transaction that makes the write (the caller commits).
    """
    stored = _claim(session, user_id, key, fingerprint)
    if stored is not None:
        return model.model_validate(stored), True
    answer = run()
    session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key)
        .values(response_status=status, response_body=answer.model_dump(mode="json"))
        .execution_options(synchronize_session=False)
    )
    return answer, False


def _claim(
    session: Session, user_id: uuid.UUID, key: str, fingerprint: str
) -> dict[str, Any] | None:
    """Claim the key for this transaction (None), or the stored answer to replay."""
    table = IdempotencyKey
    fresh = insert(table).values(
        user_id=user_id,
        key=key,
        fingerprint=fingerprint,
        expires_at=func.now() + timedelta(seconds=get_settings().idempotency_ttl_seconds),
    )
    # An expired row is taken over; a live one is left alone (and its owner waited for).
    claim = fresh.on_conflict_do_update(
        index_elements=[table.user_id, table.key],
        set_={
            "fingerprint": fresh.excluded.fingerprint,
            "response_status": None,
            "response_body": None,
            "created_at": func.now(),
            "expires_at": fresh.excluded.expires_at,
        },
        where=table.expires_at <= func.now(),
    ).returning(table.key)
    if session.execute(claim).first() is not None:
        return None
    row = session.execute(
        select(table.fingerprint, table.response_status, table.response_body).where(
            table.user_id == user_id, table.key == key
        )
    ).one()
    if row.fingerprint != fingerprint:
        raise ValidationFailed(
            [
                {
                    "loc": ["headers", HEADER],
                    "field": f"headers.{HEADER}",
                    "message": "this key was already used for a different request",
                    "type": "idempotency_key_reused",
                }
            ],
            detail="the Idempotency-Key was already used with another request body",
        )
    if row.response_status is None:  # cannot happen for a committed row; never replay nothing
        raise Conflict("a request with this Idempotency-Key is still in progress")
    body: dict[str, Any] = row.response_body
    return body


def purge_expired(session: Session, now: datetime | None = None) -> int:
    """Delete expired keys (for a scheduled job); returns how many went."""
    cutoff = now if now is not None else func.now()
    result = session.execute(delete(IdempotencyKey).where(IdempotencyKey.expires_at <= cutoff))
    return int(getattr(result, "rowcount", 0) or 0)
