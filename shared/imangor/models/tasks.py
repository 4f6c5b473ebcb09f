"""Background work: jobs (what happened), the outbox (what still has to reach Cloud Tasks),
scheduled-run markers, and the local dispatcher's queue (used by `make dev` and tests only)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, LargeBinary, String, Text, func
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
        Index("ix_jobs_user", "user_id"),
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


class OutboxEntry(Base):
    """A job committed but not yet handed to Cloud Tasks. Deleted once pushed."""

    __tablename__ = "task_outbox"

    job_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    push_attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)


class CronRun(Base):
    """A scheduled job that ran for one schedule time: a second delivery of it does nothing."""

    __tablename__ = "cron_runs"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    scheduled_for: Mapped[datetime] = mapped_column(primary_key=True)
    started_at: Mapped[datetime] = mapped_column(server_default=func.now())
    finished_at: Mapped[datetime | None]
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


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
