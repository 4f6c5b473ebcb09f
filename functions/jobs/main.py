"""jobs unit: the state of your background jobs (their owner or staff only)."""

import uuid

from imangor.runtime import Context, Deploy, Unit
from imangor.schemas.common import Input, PageQuery
from imangor.schemas.tasks import JobOut, JobPage

unit = Unit("jobs", Deploy(needs=("database", "redis")))


class JobPath(Input):
    job_id: uuid.UUID


@unit.get("/jobs/")
def list_jobs(query: PageQuery, ctx: Context) -> JobPage:
    """Your background jobs, newest first (staff: every job); each expires an hour after
    it finishes."""
    from imangor.services.jobs import list_jobs as listed

    return listed(ctx.db, ctx.user, query)


@unit.get("/jobs/{job_id}")
def read_job(path: JobPath, ctx: Context) -> JobOut:
    """Status, attempts, result and error of a background job."""
    from imangor.services.jobs import get_job

    return get_job(ctx.db, ctx.user, path.job_id)


jobs = unit.entry_point()
