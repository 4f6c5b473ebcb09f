"""Orders: one product and a quantity; the answer carries the price paid and the status."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field, field_validator

from imangor.schemas.common import Input, Output, Page
from imangor.schemas.products import MoneyOut
from imangor.schemas.scalars import json_integer

MAX_QUANTITY = 1000
OrderStatus = Literal["pending", "confirmed", "shipped", "cancelled"]


class OrderIn(Input):
    product_id: uuid.UUID
    quantity: int = Field(ge=1, le=MAX_QUANTITY)

    _json = field_validator("quantity", mode="before")(json_integer)


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
    job_id: uuid.UUID | None = Field(
        None, description="the background job confirming it: GET /jobs/{job_id}"
    )
    created_at: datetime
    updated_at: datetime


class OrderPage(Page[OrderOut]):
    """One page of orders, newest first."""
