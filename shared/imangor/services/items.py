"""Items: owned by their creator. Customers see only their own (another user's item is "not
found", never "forbidden", so ids leak nothing); staff and admins see every item."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from imangor.auth.principal import Principal
from imangor.models import Item
from imangor.schemas.common import PageQuery
from imangor.schemas.items import ItemIn, ItemOut, ItemPage, ItemPatch
from imangor.services.ownership import visible
from imangor.services.pagination import newest_first


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
    """Newest first: the caller's own items, or every item for staff."""
    page, cursor = newest_first(session, Item, Item.owner_id, user, query)
    return ItemPage(items=[ItemOut.model_validate(i) for i in page], next_cursor=cursor)
