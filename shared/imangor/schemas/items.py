"""Items: small records owned by the user who created them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field, field_validator

from imangor.schemas.common import Input, Output, Page
from imangor.schemas.patch import PatchInput

MAX_DESCRIPTION = 10_000


class ItemIn(Input):
    title: str = Field(min_length=1, max_length=200)
    description: str | None = Field(None, max_length=MAX_DESCRIPTION)

    @field_validator("title")
    @classmethod
    def _title_has_text(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("title must not be blank")
        return value.strip()


class ItemPatch(PatchInput):
    """Fields to change; `description` may be set to null to clear it."""

    nullable = frozenset({"description"})
    title: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=MAX_DESCRIPTION)

    @field_validator("title", mode="before")
    @classmethod
    def _title_not_blank(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise ValueError("title must not be blank")
        return value.strip() if isinstance(value, str) else value


class ItemPath(Input):
    item_id: uuid.UUID


class ItemOut(Output):
    id: uuid.UUID
    owner_id: uuid.UUID
    title: str
    description: str | None
    created_at: datetime
    updated_at: datetime


class ItemPage(Page[ItemOut]):
    """One page of items, newest first."""
