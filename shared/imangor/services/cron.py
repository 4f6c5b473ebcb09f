"""Running a scheduled job once per schedule time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from imangor.errors import NotFound
from imangor.models import CronRun
from imangor.registry import REGISTRY


def run_scheduled(
    session: Session, name: str, scheduled_for: datetime
) -> tuple[bool, dict[str, Any] | None]:
    """(True, result) after running the job; (False, earlier result) if this schedule time
    already ran. The run marker commits with the job's own changes, or not at all."""
    job = REGISTRY.schedules.get(name)
    if job is None:
        raise NotFound(f"no scheduled job {name!r}")
    claimed = session.execute(
        insert(CronRun)
        .values(name=name, scheduled_for=scheduled_for)
        .on_conflict_do_nothing()
        .returning(CronRun.name)
    ).first()
    if claimed is None:
        earlier = session.scalar(
            select(CronRun.result).where(
                CronRun.name == name, CronRun.scheduled_for == scheduled_for
            )
        )
        return False, earlier
    result = job.func(scheduled_for=scheduled_for, session=session) or {}
    run = session.get(CronRun, (name, scheduled_for))
    assert run is not None
    run.result = result
    run.finished_at = datetime.now(scheduled_for.tzinfo)
    return True, result
