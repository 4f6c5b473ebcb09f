"""Mail the local sender 'sent' (local and test only)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from imangor.models.base import Base, UUIDPrimaryKey


class SentEmail(UUIDPrimaryKey, Base):
    """What the local e-mail sender 'sent' (local and test only), so people and tests read it."""

    __tablename__ = "sent_emails"

    recipient: Mapped[str] = mapped_column(String(320), index=True)
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
