"""cron unit: Cloud Scheduler's targets (OIDC-authenticated, internal).

Each job is registered with its schedule (Terraform creates one Scheduler job per entry) and
runs at most once per schedule time: a retried or duplicated trigger does nothing.
"""

# The runtime comes first: it pauses the garbage collector while the unit starts.
# isort: off
from imangor.runtime import Context, Deploy, Unit

# isort: on
from datetime import UTC, datetime
from typing import Any

from pydantic import Field
from sqlalchemy.orm import Session

from imangor.schemas.common import Input, Output
from imangor.tasks import scheduled

unit = Unit(
    "cron",
    Deploy(
        needs=("database", "redis", "storage", "tasks"),
        internal=True,
        max_instances=2,
        timeout_seconds=600,
    ),
)


class CronPath(Input):
    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,63}$")


class CronHeaders(Input):
    schedule_time: datetime | None = Field(None, alias="X-CloudScheduler-ScheduleTime")


class CronRunOut(Output):
    name: str
    scheduled_for: datetime
    ran: bool  # false when this schedule time had already run
    result: dict[str, Any] | None


@unit.post("/cron/{name}", access="service", rate_limit="off")
def run_job(path: CronPath, headers: CronHeaders, ctx: Context) -> CronRunOut:
    """Run a scheduled job for its schedule time (Cloud Scheduler only)."""
    from imangor.services.cron import run_scheduled

    scheduled_for = headers.schedule_time or datetime.now(UTC).replace(second=0, microsecond=0)
    ran, result = run_scheduled(ctx.db, path.name, scheduled_for)
    return CronRunOut(name=path.name, scheduled_for=scheduled_for, ran=ran, result=result)


@scheduled("outbox-sweep", "* * * * *")
def outbox_sweep(scheduled_for: datetime, session: Session) -> dict[str, Any]:
    """Push outbox rows an after-commit push left behind."""
    from imangor.tasks.outbox import sweep

    return {"pushed": sweep()}


@scheduled("cleanup", "17 * * * *")
def cleanup(scheduled_for: datetime, session: Session) -> dict[str, Any]:
    """Delete expired refresh tokens, idempotency keys, job results and abandoned uploads."""
    from imangor.services.cleanup import remove_expired

    return remove_expired(session)


@scheduled("daily-report", "30 1 * * *")
def daily_report(scheduled_for: datetime, session: Session) -> dict[str, Any]:
    """Write yesterday's orders per category as CSV to Cloud Storage."""
    from imangor.services.reports import write_daily_report

    return write_daily_report(session, scheduled_for.date())


cron = unit.entry_point()
