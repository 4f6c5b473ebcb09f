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
    from imangor.models import Job
    from imangor.services.ownership import visible

    return JobOut.model_validate(visible(ctx.db, Job, Job.user_id, ctx.user, path.job_id))


jobs = unit.entry_point()
