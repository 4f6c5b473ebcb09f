"""Orders: one product and a quantity; the answer carries the price paid and the status."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field

from imangor.schemas.common import Input, Output, Page
from imangor.schemas.products import MoneyOut

MAX_QUANTITY = 1000
OrderStatus = Literal["pending", "confirmed", "shipped", "cancelled"]


class OrderIn(Input):
    product_id: uuid.UUID
    quantity: int = Field(ge=1, le=MAX_QUANTITY)


class OrderHeaders(Input):
    idempotency_key: str | None = Field(
        None,
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description=(
            "any unique string (a UUID is best): a retry with the same key and body gets the "
            "first answer; the same key with another body is a 422. Keys live 24 hours"
        ),
    )


class OrderPath(Input):
    order_id: uuid.UUID


class OrderOut(Output):
    id: uuid.UUID
    user_id: uuid.UUID
    product_id: uuid.UUID
    quantity: int
    unit_price: MoneyOut
    total: MoneyOut
    status: OrderStatus
    created_at: datetime
    updated_at: datetime


class OrderPage(Page[OrderOut]):
    """One page of orders, newest first."""
