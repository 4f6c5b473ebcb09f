"""jobs unit: the state of a background job (its owner or staff only)."""

import uuid

from imangor.runtime import Context, Deploy, Unit
from imangor.schemas.common import Input
from imangor.schemas.tasks import JobOut

unit = Unit("jobs", Deploy(needs=("database", "redis")))


class JobPath(Input):
    job_id: uuid.UUID


@unit.get("/jobs/{job_id}")
def read_job(path: JobPath, ctx: Context) -> JobOut:
    """Status, attempts, result and error of a background job."""
    from imangor.errors import NotFound
    from imangor.models import Job

    job = ctx.db.get(Job, path.job_id)
    if job is None or (job.user_id != ctx.user.user_id and not ctx.user.is_staff):
        raise NotFound("no such job")  # another user's job looks exactly like a missing one
    return JobOut.model_validate(job)


jobs = unit.entry_point()
