"""A unit used only by the runtime's tests, with its own registry (not part of the API)."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import Field

from imangor.errors import Conflict
from imangor.registry import FORM, JSON, RateLimit, Registry
from imangor.runtime import Context, Unit
from imangor.schemas.common import Input, Output

SAMPLE_REGISTRY = Registry()
unit = Unit("sample", registry=SAMPLE_REGISTRY)


class ThingPath(Input):
    thing_id: uuid.UUID


class ThingQuery(Input):
    limit: int = Field(20, ge=1, le=100)
    tag: list[str] = Field(default_factory=list)


class ThingIn(Input):
    name: str = Field(min_length=1, max_length=50)
    size: int = Field(ge=0, le=1000)
    kind: Literal["a", "b"] = "a"


class Headers(Input):
    idempotency_key: str | None = Field(None, alias="Idempotency-Key", max_length=64)


class ThingOut(Output):
    id: uuid.UUID
    name: str
    size: int
    kind: str
    tags: list[str] = []
    key: str | None = None


@unit.get("/things/{thing_id}", access="public", cache_control="public, max-age=30")
def get_thing(path: ThingPath, query: ThingQuery) -> ThingOut:
    """Read a thing."""
    return ThingOut(id=path.thing_id, name="x", size=query.limit, kind="a", tags=query.tag)


@unit.post("/things/", access="public", status=201, media_types=(JSON, FORM))
def create_thing(body: ThingIn, headers: Headers, ctx: Context) -> ThingOut:
    """Create a thing."""
    ctx.response_headers["Location"] = "/things/1"
    return ThingOut(id=uuid.uuid4(), key=headers.idempotency_key, **body.model_dump())


@unit.delete("/things/{thing_id}", access="public")
def delete_thing(path: ThingPath) -> None:
    """Delete a thing (nothing to return)."""


@unit.get("/limited", access="public", rate_limit=RateLimit(3, 60))
def limited() -> None:
    """Three calls a minute per client."""


@unit.post("/boom", access="public")
def boom() -> None:
    """Fail unexpectedly."""
    raise RuntimeError("secret internal detail")


@unit.post("/conflict", access="public")
def conflict() -> None:
    """Fail with a domain error."""
    raise Conflict("already there")


@unit.get("/private", access="user")
def private(ctx: Context) -> ThingOut:
    """Needs a signed-in caller."""
    return ThingOut(id=ctx.user.user_id, name="me", size=0, kind="a")


@unit.get("/staff-only", access="staff")
def staff_only(ctx: Context) -> None:
    """Needs staff."""


sample = unit.entry_point()
