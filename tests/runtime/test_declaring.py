"""What a declaration may say: the registry refuses what the runtime could not honour."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import Field

from imangor import errors
from imangor.registry import JSON, endpoint_from_function
from imangor.schemas.common import Input


class Body(Input):
    name: str


class Query(Input):
    name: str | None = None


class Headers(Input):
    trace: str | None = Field(None, alias="X-Trace")


def declare(func: Any, *, method: str = "POST", access: Any = "user", **options: Any) -> Any:
    settings: dict[str, Any] = {
        "unit": "u",
        "method": method,
        "path": "/things/",
        "access": access,
        "status": 200,
        "media_types": (JSON,),
        "rate_limit": "off",
        "cache_control": None,
        "errors": (),
        "raw": False,
        **options,
    }
    return endpoint_from_function(func, **settings)


def test_a_field_name_belongs_to_one_input() -> None:
    def clash(body: Body, query: Query) -> None: ...

    with pytest.raises(TypeError, match="'name' is in both body and query"):
        declare(clash)


def both(body: Body) -> None: ...


def listed(query: Query) -> None: ...


@pytest.mark.parametrize(
    ("func", "options"),
    [
        (both, {"access": "public"}),  # a key is its owner's: no owner, no key
        (both, {"access": "service"}),
        (both, {"method": "GET"}),
        (both, {"raw": True}),  # a raw response cannot be stored
        (listed, {}),  # the key covers path and body only
    ],
)
def test_idempotent_needs_what_it_stands_on(func: Any, options: dict[str, Any]) -> None:
    with pytest.raises(TypeError, match=r"idempotent|Idempotency-Key"):
        declare(func, idempotent=True, **options)


def test_a_service_field_error_is_placed_by_name_or_alias() -> None:
    from imangor.runtime.inputs import locate

    inputs = {"body": Body, "headers": Headers}
    raised = errors.ValidationFailed(
        [
            errors.FieldProblem(("name",), "k", "m"),
            errors.FieldProblem(("trace",), "k", "m"),  # the Python name: spelled as sent
            errors.FieldProblem(("X-Trace",), "k", "m"),
            errors.FieldProblem(("nowhere",), "k", "m"),  # declared by no input: left as is
            errors.FieldProblem(("name",), "k", "m", source="query"),  # placed already
        ],
        detail="d",
    )
    placed = locate(raised, inputs)
    assert [(p.source, p.field) for p in placed.problems] == [
        ("body", ("name",)),
        ("headers", ("X-Trace",)),
        ("headers", ("X-Trace",)),
        (None, ("nowhere",)),
        ("query", ("name",)),
    ]
    assert placed.detail == "d"
