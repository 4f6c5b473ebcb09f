"""Background jobs as their owners see them: one job, or theirs newest first (staff: all)."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from imangor.auth.principal import Principal
from imangor.models import Job
from imangor.schemas.common import PageQuery
from imangor.schemas.tasks import JobOut, JobPage
from imangor.services.ownership import visible
from imangor.services.pagination import newest_first


def get_job(session: Session, user: Principal, job_id: uuid.UUID) -> JobOut:
    return JobOut.model_validate(visible(session, Job, Job.user_id, user, job_id))


def list_jobs(session: Session, user: Principal, query: PageQuery) -> JobPage:
    page, cursor = newest_first(session, Job, Job.user_id, user, query)
    return JobPage(items=[JobOut.model_validate(j) for j in page], next_cursor=cursor)
