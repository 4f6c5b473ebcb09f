"""The transactional outbox: jobs committed but not yet handed to Cloud Tasks."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from imangor.models.base import Base
from imangor.models.job import Job


class OutboxEntry(Base):
    """A job committed but not yet handed to Cloud Tasks. Deleted once pushed."""

    __tablename__ = "task_outbox"

    job_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey(Job.id, ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    push_attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
