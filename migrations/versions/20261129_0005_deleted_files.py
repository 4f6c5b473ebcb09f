"""deleted files keep their row until their upload URL has expired

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 01:20:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint(op.f("ck_files_status"), "files", type_="check")
    op.create_check_constraint(
        op.f("ck_files_status"),
        "files",
        "status IN ('pending', 'uploaded', 'ready', 'rejected', 'deleted')",
    )


def downgrade() -> None:
    # Their objects are gone already; without the status their rows cannot stay.
    op.execute("DELETE FROM files WHERE status = 'deleted'")
    op.drop_constraint(op.f("ck_files_status"), "files", type_="check")
    op.create_check_constraint(
        op.f("ck_files_status"), "files", "status IN ('pending', 'uploaded', 'ready', 'rejected')"
    )
