"""Numbers and booleans in JSON bodies, read as JSON Schema reads them (models attach these as
`field_validator(..., mode="before")`, which keeps the fields' constraints in the document).

pydantic's lax mode takes `false` as 0, `"5"` as 5 and `0` or `"yes"` as a boolean, which the
document (`type: integer`, `type: boolean`) refuses; its strict mode refuses 5.0, which JSON
Schema counts as an integer. These take exactly what the schema allows: an integer is a JSON
number with no fraction (5 or 5.0), a boolean is true or false. Query strings stay lax: there
every value is text.
"""

from __future__ import annotations

from typing import Any


def json_integer(value: Any) -> Any:
    if value is None:  # the field's own type (or a PATCH body's rule) answers for null
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a JSON integer")
    return value


def json_boolean(value: Any) -> Any:
    if value is not None and not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value
