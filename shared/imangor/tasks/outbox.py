"""The transactional outbox: a job is enqueued in the same transaction as the change that
causes it, and handed to Cloud Tasks only after that transaction commits.

A rolled-back request therefore enqueues nothing, and a commit whose push fails (Cloud Tasks
unreachable, instance killed) leaves the outbox row for the `outbox-sweep` job to push.

The after-commit push of what this process just committed (`push_committed`) reads nothing
back: each job's request is built from what was enqueued, its outbox row is taken (deleted,
skipping rows a sweep holds) and the push made in one transaction, which rolls back, row
kept and the failure recorded, if the push fails. The sweep (`push`) reads the rows.
"""

from __future__ import annotations

import functools
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    CTE,
    Table,
    Uuid,
    bindparam,
    delete,
    event,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningDelete

from imangor.db import after_close
from imangor.models import Job, OutboxEntry
from imangor.tasks.backends import build_request, get_backend
from imangor.tasks.declare import MAX_PAYLOAD_BYTES, TaskPayload

log = logging.getLogger(__name__)
PENDING_KEY = "imangor_outbox"  # session.info: the Enqueued jobs to push after commit


@dataclass(frozen=True)
class Enqueued:
    """A job as enqueued: all `build_request` needs, so the push reads nothing back."""

    id: uuid.UUID
    kind: str
    queue: str
    payload: dict[str, Any]


def enqueue(
    session: Session,
    payload: TaskPayload,
    *,
    user_id: uuid.UUID | None = None,
    job_id: uuid.UUID | None = None,
) -> Job:
    """Record a job and its outbox row in the session's transaction; pushed after commit.
    `job_id` is the job's id when the caller has recorded it already (an order does)."""
    body = _body(payload)
    job = Job(
        id=job_id or uuid.uuid4(),
        kind=payload.task_name,
        queue=payload.queue,
        payload=body,
        user_id=user_id,
    )
    session.add(job)
    session.add(OutboxEntry(job_id=job.id))
    session.flush()
    _pending(session, Enqueued(job.id, job.kind, job.queue, body))
    return job


def job_rows(source: CTE, task: type[TaskPayload]) -> CTE:
    """`enqueue` as part of a write's own statement: CTEs inserting a `task` job and its
    outbox row once per row of `source` (a CTE of that statement), so no row, no job.

    Attach the result to the statement (`add_cte`) and execute it with `enqueued(...)`'s
    parameters (`job_id`, `job_payload`, `job_user_id`). Built from bind parameters only, a
    statement made with it can be built once and reused (its compiled SQL is cached)."""
    job = (
        insert(Job)
        .from_select(
            ["id", "kind", "queue", "payload", "user_id"],
            select(
                bindparam("job_id", type_=Uuid()),
                literal(task.task_name),
                literal(task.queue),
                bindparam("job_payload", type_=JSONB()),
                bindparam("job_user_id", type_=Uuid()),
            ).select_from(source),
            include_defaults=False,  # the columns' server defaults (status, attempts) apply
        )
        .returning(Job.__table__.c.id)
        .cte(f"job_{task.task_name}")
    )
    return (
        insert(OutboxEntry)
        .from_select(["job_id"], select(job.c.id), include_defaults=False)
        .cte("queued")
    )


def enqueued(
    session: Session, payload: TaskPayload, *, user_id: uuid.UUID, job_id: uuid.UUID
) -> dict[str, Any]:
    """The parameters of a `job_rows` statement for this job, which is pushed after commit
    (a rollback forgets it)."""
    body = _body(payload)
    _pending(session, Enqueued(job_id, payload.task_name, payload.queue, body))
    return {"job_id": job_id, "job_payload": body, "job_user_id": user_id}


def _pending(session: Session, job: Enqueued) -> None:
    session.info.setdefault(PENDING_KEY, []).append(job)


def _body(payload: TaskPayload) -> dict[str, object]:
    if len(payload.model_dump_json()) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"{payload.task_name}: payload over {MAX_PAYLOAD_BYTES} bytes")
    return payload.model_dump(mode="json")


@event.listens_for(Session, "after_commit")
def _push_after_commit(session: Session) -> None:
    jobs = session.info.pop(PENDING_KEY, None)
    if jobs:
        # Pushing needs a connection; wait until this session has returned its own.
        after_close(session, lambda: _push_quietly(jobs))


def _push_quietly(jobs: list[Enqueued]) -> None:
    """The request already succeeded: a failed push is logged and left to the sweep."""
    try:
        push_committed(jobs)
    except Exception:
        log.exception("pushing %d committed jobs failed; the outbox sweep will retry", len(jobs))


@event.listens_for(Session, "after_rollback")
def _forget_on_rollback(session: Session) -> None:
    session.info.pop(PENDING_KEY, None)


@functools.cache
def _take() -> ReturningDelete[tuple[uuid.UUID]]:
    """Delete these jobs' outbox rows, skipping rows another pusher (a sweep) holds."""
    table = cast(Table, OutboxEntry.__table__)
    held = (
        select(table.c.job_id)
        .where(table.c.job_id == bindparam("ids", type_=ARRAY(Uuid())).any_())
        .with_for_update(skip_locked=True)
    )
    return delete(table).where(table.c.job_id.in_(held.scalar_subquery())).returning(table.c.job_id)


def push_committed(jobs: list[Enqueued]) -> int:
    """Push jobs this process has just committed; returns how many were pushed.

    One transaction: take their outbox rows (rows a sweep holds are skipped: it pushes
    them), push each, commit. A failed push rolls it all back (rows kept, a backend that
    queues in the database forgets its part too) and is recorded on the job's row; the
    other jobs are pushed again without it. The sweep pushes what is left, and a job pushed
    twice is dropped by its task name."""
    pushed, remaining = 0, list(jobs)
    while remaining:
        done, failed = _push_together(remaining)
        pushed += done
        if failed is None:
            break
        remaining = [job for job in remaining if job is not failed]
    return pushed


def _push_together(jobs: list[Enqueued]) -> tuple[int, Enqueued | None]:
    """(jobs pushed, None), or (0, the job whose push failed) with everything rolled back."""
    from imangor.db import close_session, new_session

    backend = get_backend()
    session = new_session()
    try:
        connection = session.connection()
        taken = set(connection.scalars(_take(), {"ids": [job.id for job in jobs]}))
        for job in jobs:
            if job.id not in taken:
                continue
            try:
                backend.push(session, build_request(job))
            except Exception as exc:
                session.rollback()
                log.warning(
                    "could not push job %s (%s); the sweep will retry: %s", job.id, job.kind, exc
                )
                _record_failure(session, job.id, exc)
                session.commit()
                return 0, job
        session.commit()
        return len(taken), None
    finally:
        close_session(session)


def _record_failure(session: Session, job_id: uuid.UUID, exc: Exception) -> None:
    session.execute(
        update(OutboxEntry)
        .where(OutboxEntry.job_id == job_id)
        .values(push_attempts=OutboxEntry.push_attempts + 1, last_error=str(exc)[:1000])
    )


def push(job_ids: list[uuid.UUID] | None = None, limit: int = 100) -> int:
    """Push outbox rows (these jobs, or the oldest `limit`) to the backend; returns how many
    were pushed. Rows another pusher holds are skipped; failures stay for the next sweep."""
    from imangor.db import new_session

    pushed = 0
    backend = get_backend()
    with new_session() as session:  # the outbox's own session: nothing is deferred on it
        query = select(OutboxEntry).order_by(OutboxEntry.created_at).limit(limit)
        if job_ids is not None:
            query = query.where(OutboxEntry.job_id.in_(job_ids))
        entries = session.scalars(query.with_for_update(skip_locked=True)).all()
        for entry in entries:
            job = session.get(Job, entry.job_id)
            if job is None:
                continue
            try:
                with session.begin_nested():
                    backend.push(session, build_request(job))
                    session.execute(delete(OutboxEntry).where(OutboxEntry.job_id == job.id))
                pushed += 1
            except Exception as exc:
                log.warning(
                    "could not push job %s (%s); the sweep will retry: %s", job.id, job.kind, exc
                )
                _record_failure(session, job.id, exc)
        session.commit()
    return pushed


def sweep(older_than_seconds: float = 5.0) -> int:
    """Push whatever an earlier after-commit push left behind (the `outbox-sweep` job)."""
    from imangor.db import new_session

    cutoff = datetime.now(UTC).timestamp() - older_than_seconds
    with new_session() as session:
        ids = list(
            session.scalars(
                select(OutboxEntry.job_id)
                .where(OutboxEntry.created_at < datetime.fromtimestamp(cutoff, UTC))
                .limit(500)
            )
        )
    return push(ids) if ids else 0
