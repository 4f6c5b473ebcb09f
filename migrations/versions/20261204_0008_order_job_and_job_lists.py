"""orders know the job that confirms them; jobs are listed newest first per owner and for staff

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("orders", sa.Column("job_id", sa.Uuid(), nullable=True))
    # Orders placed before this revision: their process_order job, while its row is kept.
    op.execute(
        """
        UPDATE orders SET job_id = jobs.id FROM jobs
        WHERE jobs.kind = 'process_order' AND jobs.payload->>'order_id' = orders.id::text
        """
    )
    # The composite index serves the user_id lookups of the old one too (its first column).
    op.drop_index("ix_jobs_user", table_name="jobs")
    op.create_index("ix_jobs_user_created", "jobs", ["user_id", "created_at", "id"])
    op.create_index("ix_jobs_created", "jobs", ["created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_jobs_created", table_name="jobs")
    op.drop_index("ix_jobs_user_created", table_name="jobs")
    op.create_index("ix_jobs_user", "jobs", ["user_id"])
    op.drop_column("orders", "job_id")
