"""Background jobs: what happened to each task, as GET /jobs/{id} shows it."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from imangor.models.base import Base, Timestamps, UUIDPrimaryKey
from imangor.models.user import User

JOB_STATUSES = ("queued", "running", "succeeded", "failed", "dead")


class Job(UUIDPrimaryKey, Timestamps, Base):
    """One background task: its state is what GET /jobs/{id} shows. Its id names the Cloud
    Tasks task, so a re-push of the same job is deduplicated by Cloud Tasks itself."""

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'dead')", name="status"
        ),
        Index("ix_jobs_expires", "expires_at"),
        Index("ix_jobs_user_created", "user_id", "created_at", "id"),  # your jobs, newest first
        Index("ix_jobs_created", "created_at", "id"),  # staff list every job
    )

    kind: Mapped[str] = mapped_column(String(64))
    queue: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="queued", server_default="queued")
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(Text)
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey(User.id, ondelete="SET NULL"))
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]  # results are kept for an hour, as Celery's were
