"""products: a GIN index for attribute filters (attribute=color:red)

Built in the migration's transaction, which blocks writes to products while it builds
(seconds per hundred thousand products). On a large live catalog, build it beforehand
without blocking, `CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_products_attributes ON
products USING gin (attributes jsonb_path_ops)`, and this migration keeps it.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 18:10:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_products_attributes",
        "products",
        ["attributes"],
        postgresql_using="gin",
        postgresql_ops={"attributes": "jsonb_path_ops"},
        if_not_exists=True,
    )


def downgrade() -> None:
    op.drop_index("ix_products_attributes", table_name="products")
