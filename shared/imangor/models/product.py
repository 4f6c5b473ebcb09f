"""Products: JSONB attributes with a generated full-text vector and category column."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, Computed, Index, Numeric, String, text
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from imangor.models.base import Base, Timestamps, UUIDPrimaryKey

# Name weighs more than description in ranking; 'english' is explicit so the expression is
# immutable (a requirement for a stored generated column).
SEARCH_VECTOR_SQL = (
    "setweight(to_tsvector('english'::regconfig, coalesce(name, '')), 'A') || "
    "setweight(to_tsvector('english'::regconfig, coalesce(attributes ->> 'description', '')), 'B')"
)


class Product(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "products"
    __table_args__ = (
        CheckConstraint("price >= 0", name="price_not_negative"),
        CheckConstraint("stock >= 0", name="stock_not_negative"),
        # Without fast update: stock writes would otherwise fill a pending list every search
        # scans in full (migration 0011).
        Index(
            "ix_products_search_vector",
            "search_vector",
            postgresql_using="gin",
            postgresql_with={"fastupdate": "off"},
        ),
        Index("ix_products_category_price", "category", "price", "id"),
        Index("ix_products_category_created", "category", "created_at", "id"),
        Index("ix_products_price", "price", "id"),
        Index("ix_products_created", "created_at", "id"),
        Index(  # attribute=name:value filters (jsonb containment)
            "ix_products_attributes",
            "attributes",
            postgresql_using="gin",
            postgresql_ops={"attributes": "jsonb_path_ops"},
        ),
    )

    name: Mapped[str] = mapped_column(String(200))
    price: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    stock: Mapped[int] = mapped_column(default=0, server_default="0")
    attributes: Mapped[dict[str, Any]] = mapped_column(
        JSONB, default=dict, server_default=text("'{}'::jsonb")
    )
    category: Mapped[str | None] = mapped_column(
        String, Computed("attributes ->> 'category'", persisted=True)
    )
    search_vector: Mapped[str] = mapped_column(
        TSVECTOR, Computed(SEARCH_VECTOR_SQL, persisted=True), deferred=True
    )
