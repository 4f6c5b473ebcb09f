"""the local dispatcher's table leaves the production schema

`local_tasks` stood in for Cloud Tasks under `make dev` and the tests; the local stack now
creates it itself (infra/local/tasks.py), so production databases never carry it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 17:20:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("DROP TABLE IF EXISTS local_tasks")


def downgrade() -> None:
    # Back to revision 0005's schema, which had the table (0004 created it, and drops it
    # on its own downgrade). A local stack may have recreated it already.
    op.execute(
        """
        CREATE TABLE IF NOT EXISTS local_tasks (
            name VARCHAR(200) NOT NULL CONSTRAINT pk_local_tasks PRIMARY KEY,
            queue VARCHAR(64) NOT NULL,
            url TEXT NOT NULL,
            body BYTEA NOT NULL,
            headers JSONB NOT NULL,
            oidc_email VARCHAR(320),
            oidc_audience TEXT,
            status VARCHAR(16) DEFAULT 'pending' NOT NULL,
            dispatch_count INTEGER DEFAULT 0 NOT NULL,
            response_count INTEGER DEFAULT 0 NOT NULL,
            next_attempt_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
            leased_until TIMESTAMP WITH TIME ZONE,
            last_status INTEGER,
            last_error TEXT,
            created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL
        )
        """
    )
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_local_tasks_due ON local_tasks (status, next_attempt_at)"
    )
