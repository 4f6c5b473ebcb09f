"""tasks unit: Cloud Tasks delivers every background task here (OIDC-authenticated, internal).

Each handler is a small idempotent function; the runtime and `imangor.tasks.runner` do the
locking, retries, dead-lettering and job bookkeeping around it.
"""

# The runtime comes first: it pauses the garbage collector while the unit starts.
# isort: off
from imangor.runtime import Context, Deploy, Unit

# isort: on
import uuid
from typing import Any

from pydantic import Field
from sqlalchemy.orm import Session

from imangor.schemas.common import Input, Output, PlainInt
from imangor.schemas.tasks import (
    BumpCache,
    PasswordRecovery,
    ProcessOrder,
    ProcessUpload,
    SendEmail,
)
from imangor.tasks import task

unit = Unit(
    "tasks",
    Deploy(
        needs=("database", "redis", "storage", "tasks", "mail"), internal=True, timeout_seconds=300
    ),
)


class TaskPath(Input):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")


class Envelope(Input):
    job_id: uuid.UUID
    payload: dict[str, Any]


class DeliveryHeaders(Input):
    # Bounded so the documented range is what a plain integer (18 digits at most) can spell.
    retry_count: PlainInt = Field(0, ge=0, le=1_000_000, alias="X-CloudTasks-TaskRetryCount")
    execution_count: PlainInt = Field(
        0, ge=0, le=1_000_000, alias="X-CloudTasks-TaskExecutionCount"
    )
    task_name: str | None = Field(None, alias="X-CloudTasks-TaskName", max_length=500)
    queue_name: str | None = Field(None, alias="X-CloudTasks-QueueName", max_length=100)


class Delivered(Output):
    job_id: uuid.UUID
    status: str
    attempts: int


@unit.post("/tasks/{name}", access="service", rate_limit="off", errors=(503,))
def run_task(path: TaskPath, body: Envelope, headers: DeliveryHeaders, ctx: Context) -> Delivered:
    """Run one delivery of a task (Cloud Tasks only: Google-signed OIDC token required)."""
    from imangor.tasks.runner import run

    job = run(ctx.db, path.name, body.job_id, body.payload, attempt=headers.retry_count + 1)
    return Delivered(job_id=job.id, status=job.status, attempts=job.attempts)


@task
def process_order(payload: ProcessOrder, session: Session) -> dict[str, Any]:
    """Confirm a pending order (a no-op for one already confirmed; a cancelled order stays
    cancelled: retrying could not change that, so it is not an error)."""
    from imangor.errors import Conflict
    from imangor.services.orders import confirm_order

    try:
        return {"status": confirm_order(session, payload.order_id).status}
    except Conflict as exc:
        return {"status": "skipped", "reason": exc.detail}


@task
def send_email(payload: SendEmail, session: Session) -> None:
    """Send one e-mail through the configured sender."""
    from imangor.mail import send_email as send

    send(session, payload.to, payload.subject, payload.body)


@task
def password_recovery(payload: PasswordRecovery, session: Session) -> None:
    """For an existing account, create a reset token and mail the link; else nothing.
    The mail is sent here, not through send_email, so the raw token is never stored."""
    from imangor.config import get_settings
    from imangor.mail import send_email as send
    from imangor.services.sessions import create_reset_token

    created = create_reset_token(session, payload.email)
    if created is None:
        return
    user, token = created
    settings = get_settings()
    minutes = settings.reset_token_minutes
    if settings.password_reset_url:  # the front end's page takes it from there
        how = (
            f"Use this link within {minutes} minutes to choose a new password:\n\n"
            f"{settings.password_reset_url}?token={token}"
        )
    else:  # no page configured: the API's own documented flow
        body = f'{{"token": "{token}", "new_password": "<your new password>"}}'  # URL-safe token
        how = (
            f"Within {minutes} minutes, choose a new password by sending this to the API's "
            f"POST /auth/reset-password (see /docs):\n\n{body}"
        )
    send(
        session,
        user.email,
        "Reset your Imangor password",
        f"{how}\n\nIf you did not ask for it, ignore this message.",
    )


@task
def process_upload(payload: ProcessUpload, session: Session) -> dict[str, Any]:
    """Record an uploaded file's checksum and metadata; the file becomes ready."""
    from imangor.services.files import process_upload as process

    return process(session, payload.file_id)


tasks = unit.entry_point()


@task
def bump_cache(payload: BumpCache) -> dict[str, Any]:
    """Bump cache namespaces whose bump Redis missed after a write (retried until Redis
    answers, so the cache never outlives the write by more than a few seconds)."""
    from imangor.tasks.bumps import bump_now

    return bump_now(list(payload.namespaces), payload.committed_at)
