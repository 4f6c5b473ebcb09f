"""Orders: one product, a quantity, and a status that moves along a fixed path."""

from __future__ import annotations

import uuid
from decimal import Decimal

from sqlalchemy import CheckConstraint, ForeignKey, Index, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from imangor.models.base import Base, Timestamps, UUIDPrimaryKey
from imangor.models.product import Product
from imangor.models.user import User

ORDER_STATUSES = ("pending", "confirmed", "shipped", "cancelled")


class Order(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint(
            "status IN ('pending', 'confirmed', 'shipped', 'cancelled')", name="status"
        ),
        Index("ix_orders_user_created", "user_id", "created_at", "id"),
        Index("ix_orders_created", "created_at", "id"),  # staff list every order
        Index("ix_orders_product", "product_id"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(User.id, ondelete="CASCADE"))
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(Product.id, ondelete="RESTRICT"))
    quantity: Mapped[int]
    unit_price: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    # The background job that confirms it (GET /jobs/{id}). No foreign key: a job's row is
    # removed once its result has expired, and the order keeps the id it was told.
    job_id: Mapped[uuid.UUID | None]
