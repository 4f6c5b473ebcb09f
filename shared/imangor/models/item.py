"""Items: small records owned by one user."""

from __future__ import annotations

import uuid

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from imangor.models.base import Base, Timestamps, UUIDPrimaryKey
from imangor.models.user import User


class Item(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "items"
    # Owner-scoped listing pages by (created_at, id); staff list every item by the same key.
    __table_args__ = (
        Index("ix_items_owner_created", "owner_id", "created_at", "id"),
        Index("ix_items_created", "created_at", "id"),
    )

    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(User.id, ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
