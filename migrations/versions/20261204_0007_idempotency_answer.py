"""idempotency keys keep one opaque answer instead of a status and a body

The runtime now replays an idempotent endpoint's answer itself (status, the headers the
endpoint set, the body as sent), so the key table stores that answer as one JSON document
and knows nothing of HTTP. Keys stored before keep replaying: their status and body move
into the new document (without headers, which they never had).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 17:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "idempotency_keys",
        sa.Column("answer", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )
    op.execute(
        "UPDATE idempotency_keys SET answer = jsonb_build_object("
        "'status', response_status, 'headers', '{}'::jsonb, 'body', response_body::text) "
        "WHERE response_status IS NOT NULL"
    )
    op.drop_column("idempotency_keys", "response_body")
    op.drop_column("idempotency_keys", "response_status")


def downgrade() -> None:
    op.add_column("idempotency_keys", sa.Column("response_status", sa.Integer(), nullable=True))
    op.add_column(
        "idempotency_keys",
        sa.Column("response_body", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )
    op.execute(
        "UPDATE idempotency_keys SET response_status = (answer->>'status')::int, "
        "response_body = NULLIF(answer->>'body', '')::jsonb WHERE answer IS NOT NULL"
    )
    op.drop_column("idempotency_keys", "answer")
