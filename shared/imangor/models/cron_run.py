"""Scheduled-run markers: each scheduled job runs at most once per schedule time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from imangor.models.base import Base


class CronRun(Base):
    """A scheduled job that ran for one schedule time: a second delivery of it does nothing."""

    __tablename__ = "cron_runs"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    scheduled_for: Mapped[datetime] = mapped_column(primary_key=True)
    started_at: Mapped[datetime] = mapped_column(server_default=func.now())
    finished_at: Mapped[datetime | None]
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
