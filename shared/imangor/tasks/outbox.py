"""The transactional outbox: a job is enqueued in the same transaction as the change that
causes it, and handed to Cloud Tasks only after that transaction commits.

A rolled-back request therefore enqueues nothing, and a commit whose push fails (Cloud Tasks
unreachable, instance killed) leaves the outbox row for the `outbox-sweep` job to push.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

from sqlalchemy import CTE, String, Uuid, delete, event, insert, literal, select, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from imangor.db import after_close
from imangor.models import Job, OutboxEntry
from imangor.tasks.backends import build_request, get_backend
from imangor.tasks.declare import MAX_PAYLOAD_BYTES, TaskPayload

log = logging.getLogger(__name__)
PENDING_KEY = "imangor_outbox"


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
    session.info.setdefault(PENDING_KEY, []).append(job.id)
    return job


def enqueue_with(
    session: Session, source: CTE, payload: TaskPayload, *, user_id: uuid.UUID, job_id: uuid.UUID
) -> CTE:
    """`enqueue` as part of a write's own statement: the job and its outbox row are inserted
    once per row of `source` (a CTE of that statement), so no row, no job. Returns the CTE to
    attach (`add_cte`); the job is pushed after commit like any other."""
    job = (
        insert(Job)
        .from_select(
            ["id", "kind", "queue", "payload", "user_id"],
            select(
                literal(job_id, Uuid()),
                literal(payload.task_name, String()),
                literal(payload.queue, String()),
                literal(_body(payload), JSONB()),
                literal(user_id, Uuid()),
            ).select_from(source),
            include_defaults=False,  # the columns' server defaults (status, attempts) apply
        )
        .returning(Job.__table__.c.id)
        .cte(f"job_{payload.task_name}")
    )
    session.info.setdefault(PENDING_KEY, []).append(job_id)
    return (
        insert(OutboxEntry)
        .from_select(["job_id"], select(job.c.id), include_defaults=False)
        .cte("queued")
    )


def _body(payload: TaskPayload) -> dict[str, object]:
    if len(payload.model_dump_json()) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"{payload.task_name}: payload over {MAX_PAYLOAD_BYTES} bytes")
    return payload.model_dump(mode="json")


@event.listens_for(Session, "after_commit")
def _push_after_commit(session: Session) -> None:
    job_ids = session.info.pop(PENDING_KEY, None)
    if job_ids:
        # Pushing needs a connection; wait until this session has returned its own.
        after_close(session, lambda: _push_quietly(job_ids))


def _push_quietly(job_ids: list[uuid.UUID]) -> None:
    """The request already succeeded: a failed push is logged and left to the sweep."""
    try:
        push(job_ids)
    except Exception:
        log.exception("pushing %d committed jobs failed; the outbox sweep will retry", len(job_ids))


@event.listens_for(Session, "after_rollback")
def _forget_on_rollback(session: Session) -> None:
    session.info.pop(PENDING_KEY, None)


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
                session.execute(
                    update(OutboxEntry)
                    .where(OutboxEntry.job_id == job.id)
                    .values(push_attempts=OutboxEntry.push_attempts + 1, last_error=str(exc)[:1000])
                )
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
