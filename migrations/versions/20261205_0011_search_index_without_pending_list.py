"""the full-text index takes its entries at once: searches scan no pending list

GIN's fast update queues new entries in a pending list that every search reads in full
until VACUUM (or the 4 MB limit) merges it. Each order rewrites its product's row (stock),
and a rewrite that cannot stay on its page (not HOT) re-adds every lexeme of the row: after
a few thousand orders on the bench catalog the list held 11,381 entries on 414 pages, and
a search for two words read 439 index buffers in 3.3-5.6 ms instead of 27 in 0.7-0.8 ms.
Without fast update a non-HOT rewrite pays for its entries itself (tens of them), once.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 05:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER INDEX ix_products_search_vector SET (fastupdate = off)")
    # Turning it off does not merge what is already queued.
    op.execute("SELECT gin_clean_pending_list('ix_products_search_vector'::regclass)")


def downgrade() -> None:
    op.execute("ALTER INDEX ix_products_search_vector RESET (fastupdate)")
