"""catalog: idempotency keys, and the indexes for listing newest-first by category and for staff

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 19:29:42.557429
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_body", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_idempotency_keys_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "key", name=op.f("pk_idempotency_keys")),
    )
    op.create_index("ix_idempotency_keys_expires", "idempotency_keys", ["expires_at"], unique=False)
    op.create_index("ix_items_created", "items", ["created_at", "id"], unique=False)
    op.create_index("ix_orders_created", "orders", ["created_at", "id"], unique=False)
    op.create_index(
        "ix_products_category_created",
        "products",
        ["category", "created_at", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_products_category_created", table_name="products")
    op.drop_index("ix_orders_created", table_name="orders")
    op.drop_index("ix_items_created", table_name="items")
    op.drop_index("ix_idempotency_keys_expires", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
