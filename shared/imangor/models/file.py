"""Uploaded files: the row tracks an object in Cloud Storage through its life."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from imangor.models.base import Base, Timestamps, UUIDPrimaryKey
from imangor.models.user import User

FILE_STATUSES = ("pending", "uploaded", "ready", "rejected", "deleted")


class StoredFile(UUIDPrimaryKey, Timestamps, Base):
    """pending (URL issued) → uploaded (object checked) → ready (checksum recorded).

    A deleted file keeps its row (status `deleted`) until its signed upload URL has expired:
    such a URL cannot be revoked, and an object PUT through it after the delete is removed
    by the cleanup job then, instead of staying in the bucket with no row pointing at it."""

    __tablename__ = "files"
    __table_args__ = (
        CheckConstraint(
            "status IN ('pending', 'uploaded', 'ready', 'rejected', 'deleted')", name="status"
        ),
        CheckConstraint("size > 0", name="size_positive"),
        Index("ix_files_owner_created", "owner_id", "created_at", "id"),
        Index("ix_files_status_created", "status", "created_at"),
    )

    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(User.id, ondelete="CASCADE"))
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    object_name: Mapped[str] = mapped_column(String(300), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    sha256: Mapped[str | None] = mapped_column(String(64))
    crc32c: Mapped[str | None] = mapped_column(String(16))
    uploaded_at: Mapped[datetime | None]
