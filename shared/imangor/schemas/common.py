"""Base models shared by every resource's schemas."""

from __future__ import annotations

import re
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

T = TypeVar("T")


# A unit declares dozens of models but its first request uses one or two: each model's
# validator is built on first use (defer_build), not at import, which keeps cold starts short.
class Input(BaseModel):
    """Request models refuse fields they do not know, so a typo is an error, not a no-op."""

    model_config = ConfigDict(extra="forbid", defer_build=True)


class Output(BaseModel):
    """Response models are read straight from ORM objects."""

    model_config = ConfigDict(from_attributes=True, defer_build=True)


class Page(Output, Generic[T]):
    """One page of a list; pass `next_cursor` back as `cursor` for the next one."""

    items: list[T]
    next_cursor: str | None = None


_PLAIN_INTEGER = re.compile(r"-?[0-9]{1,18}")


def plain_integer(value: Any) -> Any:
    """A query or header value as an integer only when it is written as one: an optional
    minus and ASCII digits. pydantic (like Python's int()) also takes "1.0", "1_0", "+5",
    " 5 " and other scripts' digits, which no client means as a page size."""
    if isinstance(value, str) and not _PLAIN_INTEGER.fullmatch(value):
        raise ValueError("must be a plain integer (digits only, e.g. 20)")
    return value


# The integer type of every query and header field: a string is parsed only when it is plain
# digits (the OpenAPI schema is still {"type": "integer"}).
PlainInt = Annotated[int, BeforeValidator(plain_integer)]


class PageQuery(Input):
    limit: PlainInt = Field(20, ge=1, le=100, description="page size")
    cursor: str | None = Field(None, max_length=512, description="opaque; from next_cursor")


class Problem(BaseModel):
    """RFC 9457 problem document (application/problem+json)."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    request_id: str
    errors: list[dict[str, Any]] | None = Field(
        None, description="for 422: each failing field's loc/field path, message and type"
    )
