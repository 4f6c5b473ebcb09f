"""The local dispatcher's queue (`make dev` and tests only; Cloud Tasks in production)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, LargeBinary, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from imangor.models.base import Base


class LocalTask(Base):
    """The local dispatcher's queue (stands in for Cloud Tasks under `make dev` and tests).
    It lives in PostgreSQL so that stopping the dev server loses nothing."""

    __tablename__ = "local_tasks"
    __table_args__ = (Index("ix_local_tasks_due", "status", "next_attempt_at"),)

    name: Mapped[str] = mapped_column(String(200), primary_key=True)  # dedupe, like Cloud Tasks
    queue: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(Text)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    headers: Mapped[dict[str, str]] = mapped_column(JSONB)
    oidc_email: Mapped[str | None] = mapped_column(String(320))  # signed in at each dispatch
    oidc_audience: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    dispatch_count: Mapped[int] = mapped_column(default=0, server_default="0")
    response_count: Mapped[int] = mapped_column(default=0, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(server_default=func.now())
    leased_until: Mapped[datetime | None]
    last_status: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
