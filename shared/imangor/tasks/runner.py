"""Running one delivery of a task, honestly: idempotent, retried on failure, never lost.

The job row is locked for the run, so two deliveries of the same task at once run it once:
the second waits, then finds it finished and does nothing. The handler's changes and the
job's `succeeded` commit together. A failure rolls the handler's changes back, records the
attempt and answers 5xx so Cloud Tasks retries with backoff; after the queue's last attempt
the job is `dead`, with its error, and counted in `tasks_dead_total`.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from imangor import metrics
from imangor.errors import NotFound, ServiceUnavailable
from imangor.models import Job
from imangor.registry import REGISTRY

log = logging.getLogger(__name__)
RESULT_TTL = timedelta(hours=1)


class TaskFailed(ServiceUnavailable):
    """The handler failed this attempt; a 503 makes Cloud Tasks retry it."""

    title, slug = "Task Failed", "task-failed"


def run(session: Session, name: str, job_id: uuid.UUID, payload: Any, attempt: int) -> Job:
    handler = REGISTRY.handlers.get(name)
    job = session.get(Job, job_id, with_for_update=True)
    if handler is None or job is None or job.kind != name:
        raise NotFound(f"no {name} job {job_id}")
    if job.status in ("succeeded", "dead"):
        metrics.count_task_run(name, "duplicate")
        return job  # a duplicate delivery: the work is done (or given up on)
    now = datetime.now(UTC)
    job.status, job.attempts, job.started_at = "running", job.attempts + 1, job.started_at or now
    try:
        data = handler.payload.model_validate(payload)
    except ValidationError as exc:
        # Retrying cannot fix a malformed payload: give up now, and say why.
        _finish(job, "dead", error=f"invalid payload: {exc}")
        metrics.count_dead_task(name)
        return job
    kwargs: dict[str, Any] = {"payload": data}
    if handler.wants_session:
        kwargs["session"] = session
    try:
        # The handler's changes, undone alone if it fails. The failure leaves the block first,
        # so the savepoint is rolled back (which also ends an aborted transaction, as after a
        # statement timeout) before the attempt is recorded.
        with session.begin_nested():
            result = handler.func(**kwargs)
    except Exception as exc:
        return _failed(session, job, attempt, _public_error(exc), exc)
    _finish(job, "succeeded", result=result or {})
    metrics.count_task_run(name, "succeeded")
    return job


def _failed(session: Session, job: Job, attempt: int, error: str, exc: Exception) -> Job:
    last = attempt >= REGISTRY.queues[job.queue].max_attempts
    if last:
        _finish(job, "dead", error=error)
        metrics.count_dead_task(job.kind)
        message = "task %s %s is dead after %d attempts: %s"
        log.error(message, job.kind, job.id, attempt, error, exc_info=exc)
        return job
    job.status, job.error = "failed", error
    metrics.count_task_run(job.kind, "failed")
    session.commit()  # keep the attempt's record; the error answer must not roll it back
    log.warning("task %s %s failed attempt %d: %s", job.kind, job.id, attempt, error, exc_info=exc)
    raise TaskFailed(f"attempt {attempt} failed; Cloud Tasks will retry")


def _public_error(exc: Exception) -> str:
    """What the job's owner reads in GET /jobs/{id}: the error's type and first line, at most
    500 characters. A database error's later lines carry the SQL and its parameters; those
    go to the log (with the stack) only."""
    first_line = next(iter(str(exc).splitlines()), "")
    return f"{type(exc).__name__}: {first_line}"[:500]


def _finish(
    job: Job, status: str, *, result: dict[str, Any] | None = None, error: str | None = None
) -> None:
    now = datetime.now(UTC)
    job.status, job.result, job.error = status, result, error
    job.finished_at, job.expires_at = now, now + RESULT_TTL
