"""Who may see an owned row: its owner, and staff. Anyone else is told it does not exist
("not found", never "forbidden"), so ids reveal nothing about other users' data."""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import InstrumentedAttribute, Session

from imangor.auth.principal import Principal
from imangor.errors import NotFound

M = TypeVar("M")


def visible(
    session: Session,
    model: type[M],
    owner: InstrumentedAttribute[Any],
    user: Principal,
    object_id: uuid.UUID,
    *,
    for_update: bool = False,
) -> M:
    """The row `object_id` of `model` if `user` owns it (through `owner`) or is staff.

    A plain read looks in the session first: a row the runtime loaded with the caller's
    account (`Endpoint.preload`) costs no second query; the owner is checked either way."""
    if not for_update:
        row = session.get(model, object_id)
        if row is not None and (user.is_staff or getattr(row, owner.key) == user.user_id):
            return row
        raise NotFound(f"no {model.__name__.lower()} {object_id}")
    stmt = select(model).where(model.id == object_id)  # type: ignore[attr-defined]
    if not user.is_staff:
        stmt = stmt.where(owner == user.user_id)
    if for_update:
        stmt = stmt.with_for_update()
    found = session.scalars(stmt).one_or_none()
    if found is None:
        raise NotFound(f"no {model.__name__.lower()} {object_id}")
    return found
