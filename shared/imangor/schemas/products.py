"""Products: request and response models, money, attributes and the search query.

Prices are exact decimals with two places. They are accepted as a JSON string ("19.99") or a
number (19.99) and always answered as a string with two places, so no client ever parses
money through a binary float.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from imangor.schemas.common import Input, Output, Page, PageQuery, PlainInt
from imangor.schemas.patch import PatchInput
from imangor.schemas.scalars import json_integer

MAX_PRICE = Decimal("9999999999.99")  # Numeric(12, 2)
MAX_STOCK = 1_000_000_000

# Input money: non-negative, at most two decimal places, never NaN or Infinity. A string is
# plain digits ("19.99", "5", "0.5"; no sign, exponent, spaces, underscores or other digits),
# a JSON number has at most two decimals; the document says exactly that.
MONEY_PATTERN = r"^(0|[1-9][0-9]{0,9})(\.[0-9]{1,2})?$"
_MONEY = re.compile(MONEY_PATTERN)


def _money_spelling(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a price is a number or a decimal string, not a boolean")
    if isinstance(value, str) and not _MONEY.fullmatch(value):
        raise ValueError('a price string is plain digits with at most two decimals, e.g. "19.99"')
    return value


Money = Annotated[
    Decimal,
    BeforeValidator(_money_spelling),
    Field(ge=0, le=MAX_PRICE, max_digits=12, decimal_places=2, allow_inf_nan=False),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0, "maximum": float(MAX_PRICE), "multipleOf": 0.01},
                {"type": "string", "pattern": MONEY_PATTERN},
            ],
            "description": 'a decimal with at most two places, as a string ("19.99") or a number',
        }
    ),
]
# Output money: a string with exactly two decimals ("19.90").
MoneyOut = Annotated[
    Decimal,
    PlainSerializer(lambda value: f"{value:.2f}", return_type=str, when_used="json"),
    Field(description='exact decimal as a string with two places, e.g. "19.99"'),
]

Slug = Annotated[
    str,
    Field(min_length=1, max_length=50, pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$"),
]

# Free-form attributes are bounded so one product cannot bloat every page it appears on.
MAX_EXTRA_KEYS = 20
MAX_DEPTH = 3  # an attribute value may nest objects/arrays this many levels deep
MAX_ATTRIBUTES_BYTES = 8192
MAX_STRING = 500
_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,39}")  # the whole name: fullmatch, not $


def _nested(levels: int) -> dict[str, Any]:
    """The JSON schema of a free-form attribute value with up to `levels` nested arrays or
    objects (strings at most MAX_STRING characters)."""
    scalar: dict[str, Any] = {
        "anyOf": [
            {"type": "string", "maxLength": MAX_STRING},
            {"type": ["number", "boolean", "null"]},
        ]
    }
    if levels == 0:
        return scalar
    inner = _nested(levels - 1)
    return {
        "anyOf": [
            *scalar["anyOf"],
            {"type": "array", "items": inner},
            {"type": "object", "additionalProperties": inner},
        ]
    }


def _attributes_schema(schema: dict[str, Any]) -> None:
    schema["propertyNames"] = {"pattern": f"^{_KEY.pattern}$"}
    schema["maxProperties"] = MAX_EXTRA_KEYS + 2
    schema["additionalProperties"] = _nested(MAX_DEPTH)


class ProductAttributes(BaseModel):
    """`category` and `description` are known and validated; other keys are free-form but
    bounded: at most 20 of them, names like `color` or `size_cm`, values nested at most 3
    levels, strings up to 500 characters, and the whole object at most 8 KB as JSON."""

    model_config = ConfigDict(extra="allow", defer_build=True, json_schema_extra=_attributes_schema)

    category: Slug = Field(description="lower-case slug, e.g. home-garden")
    description: str = Field("", max_length=2000)

    @model_validator(mode="after")
    def _bounded_extras(self) -> ProductAttributes:
        extras = self.model_extra or {}
        if len(extras) > MAX_EXTRA_KEYS:
            raise ValueError(f"at most {MAX_EXTRA_KEYS} attributes besides category/description")
        for key, value in extras.items():
            if not _KEY.fullmatch(key):
                raise ValueError(f"attribute name {key[:40]!r} must match {_KEY.pattern}")
            _check_value(key, value, depth=0)
        size = len(json.dumps(self.model_dump(), ensure_ascii=False).encode())
        if size > MAX_ATTRIBUTES_BYTES:
            raise ValueError(f"attributes are limited to {MAX_ATTRIBUTES_BYTES} bytes of JSON")
        return self


def _check_value(path: str, value: Any, depth: int) -> None:
    if isinstance(value, dict | list):
        if depth >= MAX_DEPTH:
            raise ValueError(f"attribute {path} nests deeper than {MAX_DEPTH} levels")
        children = value.items() if isinstance(value, dict) else enumerate(value)
        for name, child in children:
            _check_value(f"{path}.{name}", child, depth + 1)
    elif isinstance(value, str) and len(value) > MAX_STRING:
        raise ValueError(f"attribute {path} is longer than {MAX_STRING} characters")
    elif isinstance(value, float) and not math.isfinite(value):
        # JSON has no NaN or Infinity, but 1e400 parses to inf, and PostgreSQL's jsonb
        # refuses it: refused here as a 422 instead of failing there as a 500.
        raise ValueError(f"attribute {path} is not a finite number")


# A name holds at least one character no whitespace definition counts (ECMAScript's, the
# regex engine's, Python's strip()): so what the OpenAPI pattern allows, the validator keeps.
NAME_HAS_TEXT = r"[^\s\x1c-\x1f\x85\ufeff]"


class ProductIn(Input):
    name: str = Field(min_length=1, max_length=200, pattern=NAME_HAS_TEXT)
    price: Money
    stock: int = Field(0, ge=0, le=MAX_STOCK)
    attributes: ProductAttributes

    _json = field_validator("stock", mode="before")(json_integer)

    @field_validator("name")
    @classmethod
    def _name_has_text(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("name must not be blank")
        return value.strip()


class ProductPatch(PatchInput):
    """Fields to change; `attributes`, when given, replaces the whole object."""

    name: str | None = Field(None, min_length=1, max_length=200, pattern=NAME_HAS_TEXT)
    price: Money | None = None
    stock: int | None = Field(None, ge=0, le=MAX_STOCK)
    attributes: ProductAttributes | None = None

    _json = field_validator("stock", mode="before")(json_integer)

    @field_validator("name")
    @classmethod
    def _name_has_text(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("name must not be blank")
        return value.strip() if value is not None else None


class ProductPath(Input):
    product_id: uuid.UUID


class ProductOut(Output):
    id: uuid.UUID
    name: str
    price: MoneyOut
    stock: int
    attributes: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class ProductPage(Page[ProductOut]):
    """One page of products."""


Sort = Literal["relevance", "price", "price_desc", "newest"]
# `attribute=color:red`: a free-form attribute's name and the value it must have (a number
# or true/false matches the JSON value too); repeat the parameter to require several.
AttributeFilter = Annotated[
    str,
    Field(
        max_length=240,
        pattern=r"^[A-Za-z][A-Za-z0-9_]{0,39}:.{1,200}$",
        examples=["color:red"],
    ),
]


class ProductQuery(PageQuery):
    """Search and filters. Without `sort`, results come by relevance when `q` is given and
    newest first otherwise; `relevance` needs `q`."""

    q: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description='full-text query in web-search syntax: words, "a phrase", or, -not',
    )
    category: Slug | None = None
    min_price: Money | None = None
    max_price: Money | None = Field(None, description="at least min_price")
    attribute: list[AttributeFilter] = Field(
        [],
        max_length=5,
        description="`name:value` of a free-form attribute, e.g. color:red (repeatable, up to 5)",
    )
    sort: Sort | None = Field(
        None, description="relevance (needs q), price (low first), price_desc, newest"
    )

    @field_validator("q")
    @classmethod
    def _q_has_words(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = " ".join(value.split())
        if not any(ch.isalnum() for ch in value):
            raise ValueError("q needs at least one word to search for")
        return value

    @field_validator("max_price")
    @classmethod
    def _range(cls, value: Decimal | None, info: ValidationInfo) -> Decimal | None:
        low = info.data.get("min_price")
        if value is not None and low is not None and low > value:
            raise ValueError("max_price is below min_price")
        return value

    @field_validator("sort")
    @classmethod
    def _relevance_needs_q(cls, value: Sort | None, info: ValidationInfo) -> Sort | None:
        if value == "relevance" and info.data.get("q") is None:
            raise ValueError("sort=relevance needs q")
        return value

    @property
    def effective_sort(self) -> Sort:
        return self.sort or ("relevance" if self.q else "newest")


class ReportQuery(PageQuery):
    category: Slug
    min_orders: PlainInt = Field(0, ge=0, le=1_000_000, description="keep products with this many")


class ProductOrderCount(Output):
    """A product with how often it was ordered (cancelled orders do not count)."""

    id: uuid.UUID
    name: str
    price: MoneyOut
    stock: int
    order_count: int
    units_ordered: int


class ProductReport(Page[ProductOrderCount]):
    """Products of a category by order count, most ordered first."""
