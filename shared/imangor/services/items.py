"""Items: owned by their creator. Customers see only their own (another user's item is "not
found", never "forbidden", so ids leak nothing); staff and admins see every item."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from imangor.auth.principal import Principal
from imangor.models import Item
from imangor.schemas.common import PageQuery
from imangor.schemas.items import ItemIn, ItemOut, ItemPage, ItemPatch
from imangor.services.ownership import visible
from imangor.services.pagination import decode_cursor, fingerprint, invalid_cursor, paginate


def create_item(session: Session, user: Principal, data: ItemIn) -> ItemOut:
    item = Item(owner_id=user.user_id, title=data.title, description=data.description)
    session.add(item)
    session.flush()
    return ItemOut.model_validate(item)


def get_item(session: Session, user: Principal, item_id: uuid.UUID) -> ItemOut:
    return ItemOut.model_validate(visible(session, Item, Item.owner_id, user, item_id))


def update_item(session: Session, user: Principal, item_id: uuid.UUID, patch: ItemPatch) -> ItemOut:
    item = visible(session, Item, Item.owner_id, user, item_id, for_update=True)
    for field, value in patch.model_dump(exclude_unset=True).items():
        setattr(item, field, value)
    session.flush()
    session.refresh(item)  # updated_at is set by the database
    return ItemOut.model_validate(item)


def delete_item(session: Session, user: Principal, item_id: uuid.UUID) -> None:
    session.delete(visible(session, Item, Item.owner_id, user, item_id, for_update=True))
    session.flush()


def list_items(session: Session, user: Principal, query: PageQuery) -> ItemPage:
    """Newest first, by the keyset (created_at, id): the owner's index, or for staff the
    (created_at, id) index over every item."""
    scope = "*" if user.is_staff else str(user.user_id)
    query_id = fingerprint("items", scope=scope, sort="newest")
    stmt = select(Item).order_by(Item.created_at.desc(), Item.id.desc()).limit(query.limit + 1)
    if not user.is_staff:
        stmt = stmt.where(Item.owner_id == user.user_id)
    if query.cursor:
        created, ident = newest_key(decode_cursor(query.cursor, query_id))
        stmt = stmt.where(tuple_(Item.created_at, Item.id) < tuple_(created, ident))
    rows = session.scalars(stmt).all()
    page, cursor = paginate(rows, query.limit, query_id, lambda i: (i.created_at, i.id))
    return ItemPage(items=[ItemOut.model_validate(i) for i in page], next_cursor=cursor)


def newest_key(key: list[Any]) -> tuple[datetime, uuid.UUID]:
    """The (created_at, id) stored in a newest-first cursor."""
    try:
        created, ident = key
        return datetime.fromisoformat(created), uuid.UUID(ident)
    except (TypeError, ValueError):
        raise invalid_cursor() from None
