"""Idempotency keys: the first answer to a keyed write, replayed to its retries."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from imangor.models.base import Base
from imangor.models.user import User


class IdempotencyKey(Base):
    """One client-chosen key per user. The row commits in the same transaction as the write it
    guards, so a request that failed leaves no row and its retry runs again from scratch."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_expires", "expires_at"),)

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey(User.id, ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    # sha256 of the request (for the runtime: method, path and canonical body): the same key
    # with another request is refused.
    fingerprint: Mapped[str] = mapped_column(String(64))
    # The answer to replay, as the caller gave it (the runtime: status, headers, body); NULL
    # only while the claiming transaction is still open.
    answer: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    expires_at: Mapped[datetime]
