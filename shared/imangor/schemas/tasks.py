"""The payload of every background task (the name and queue are declared here, once)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import Field

from imangor.schemas.common import Output, Page
from imangor.tasks.declare import TaskPayload

# Addresses arrive here already validated (by the request that enqueued the task), so a plain
# bounded string suffices: EmailStr would load email-validator (≈20 ms) into every unit that
# enqueues or runs tasks.
Address = Annotated[str, Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")]


class PasswordRecovery(TaskPayload, task="password_recovery", queue="high-priority"):
    email: Address


class SendEmail(TaskPayload, task="send_email", queue="high-priority"):
    to: Address
    subject: str = Field(max_length=200)
    body: str = Field(max_length=50_000)


class ProcessOrder(TaskPayload, task="process_order", queue="main"):
    order_id: uuid.UUID


class ProcessUpload(TaskPayload, task="process_upload", queue="main"):
    file_id: uuid.UUID


class BumpCache(TaskPayload, task="bump_cache", queue="cache"):
    """Cache namespaces whose version bump Redis missed after a write committed at
    `committed_at` (see `imangor.cache`)."""

    namespaces: list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,39}$")]] = Field(
        min_length=1, max_length=10
    )
    committed_at: datetime


class JobOut(Output):
    id: uuid.UUID
    kind: str
    status: str
    attempts: int
    result: dict[str, Any] | None
    error: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobPage(Page[JobOut]):
    """One page of background jobs, newest first."""
