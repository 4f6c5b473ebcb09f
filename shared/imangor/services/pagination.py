"""Keyset pagination with opaque, signed cursors.

A cursor carries the sort key of the last row served and a fingerprint of the query it came
from; it is signed, so a client can neither forge one nor replay it against another query
(both are a 422 on `cursor`, never a 500 or a silently wrong page).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, select, tuple_
from sqlalchemy.orm import InstrumentedAttribute, Session

from imangor.auth.principal import Principal
from imangor.config import get_settings
from imangor.errors import FieldError
from imangor.schemas.common import PageQuery

T = TypeVar("T")
M = TypeVar("M")


def fingerprint(kind: str, **filters: Any) -> str:
    """A short stable digest of a query's identity (resource, filters, sort order)."""
    canonical = json.dumps([kind, filters], sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _sign(payload: bytes) -> bytes:
    key = get_settings().secret_key.get_secret_value().encode()
    return hmac.new(key, b"cursor:" + payload, hashlib.sha256).digest()[:16]


def encode_cursor(query: str, key: Sequence[Any]) -> str:
    payload = json.dumps({"q": query, "k": list(key)}, default=str, separators=(",", ":"))
    raw = payload.encode()
    return base64.urlsafe_b64encode(_sign(raw) + raw).decode().rstrip("=")


def decode_cursor(cursor: str, query: str) -> list[Any]:
    """The sort key stored in `cursor`, after checking it was made by us for this query."""
    try:
        blob = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        signature, raw = blob[:16], blob[16:]
        valid = hmac.compare_digest(signature, _sign(raw))
        data = json.loads(raw) if valid else None
    except ValueError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("k"), list):
        raise invalid_cursor()
    if data.get("q") != query:
        raise invalid_cursor("the cursor belongs to another query; start again without it")
    key: list[Any] = data["k"]
    return key


def invalid_cursor(message: str = "the cursor is not one this API issued") -> FieldError:
    """An error on the `cursor` field: forged, garbled, or made for another query."""
    return FieldError("cursor", "cursor_invalid", message, detail=message)


def newest_first(
    session: Session,
    model: type[M],
    owner: InstrumentedAttribute[Any],
    user: Principal,
    query: PageQuery,
    *,
    staff_see_all: bool = True,
    where: tuple[ColumnElement[bool], ...] = (),
) -> tuple[list[M], str | None]:
    """One page of `model` rows, newest first by the keyset (created_at, id): the caller's own
    (through `owner`), or every row for staff when `staff_see_all`. Each such list has an
    index on (owner, created_at, id), and on (created_at, id) when staff see every row."""
    everyone = staff_see_all and user.is_staff
    table: str = model.__tablename__  # type: ignore[attr-defined]
    query_id = fingerprint(table, scope="*" if everyone else str(user.user_id), sort="newest")
    created, ident = model.created_at, model.id  # type: ignore[attr-defined]
    stmt = select(model).where(*where).order_by(created.desc(), ident.desc()).limit(query.limit + 1)
    if not everyone:
        stmt = stmt.where(owner == user.user_id)
    if query.cursor:
        key = decode_cursor(query.cursor, query_id)
        try:
            after = datetime.fromisoformat(key[0]), uuid.UUID(key[1])
        except (IndexError, TypeError, ValueError):
            raise invalid_cursor() from None
        stmt = stmt.where(tuple_(created, ident) < tuple_(*after))
    rows = session.scalars(stmt).all()
    return paginate(rows, query.limit, query_id, lambda row: (row.created_at, row.id))  # type: ignore[attr-defined]


def paginate(
    rows: Sequence[T], limit: int, query: str, key: Callable[[T], Sequence[Any]]
) -> tuple[list[T], str | None]:
    """Cut `rows` (fetched with limit + 1) to a page and make the next page's cursor."""
    page = list(rows[:limit])
    if len(rows) <= limit or not page:
        return page, None
    return page, encode_cursor(query, key(page[-1]))
