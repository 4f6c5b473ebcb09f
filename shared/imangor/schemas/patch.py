"""PATCH bodies: every field optional, and a field that is given is never null (leave it out
to keep its value), unless the model names it in `nullable` (null then clears it).

The document says exactly that: a property is nullable only when the server takes null for
it, and no property claims `default: null` (an omitted field is left as it is, not set).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import ConfigDict, ValidationInfo, field_validator

from imangor.schemas.common import Input

NULL_REFUSED = "cannot be null; leave the field out to keep it"


def without_null(schema: dict[str, Any], model: type[Any]) -> None:
    nullable: frozenset[str] = getattr(model, "nullable", frozenset())
    for name, prop in schema.get("properties", {}).items():
        prop.pop("default", None)
        if name in nullable:
            continue
        options = prop.get("anyOf")
        if options is None:
            continue
        kept = [o for o in options if o != {"type": "null"}]
        if len(kept) == 1:
            del prop["anyOf"]
            prop.update(kept[0])
        else:
            prop["anyOf"] = kept


class PatchInput(Input):
    """Base of PATCH bodies (see the module's docstring)."""

    model_config = ConfigDict(json_schema_extra=without_null)
    nullable: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="before")
    @classmethod
    def _given_means_not_null(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.field_name not in cls.nullable:
            raise ValueError(NULL_REFUSED)
        return value
