"""Helpers for the catalog tests: accounts, products made through the API, row counts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from werkzeug.test import Client

TABLES = ("products", "orders", "items", "idempotency_keys")


def counts() -> dict[str, int]:
    """Rows per catalog table, to assert that a refused request wrote nothing."""
    from sqlalchemy import text

    from imangor.db import get_engine

    with get_engine().connect() as connection:
        return {
            t: int(connection.execute(text(f'SELECT count(*) FROM "{t}"')).scalar_one())
            for t in TABLES
        }


def sql(statement: str, **params: Any) -> list[Any]:
    """Run SQL directly (outside the API) and return the rows, committed."""
    from sqlalchemy import text

    from imangor.db import get_engine

    with get_engine().begin() as connection:
        result = connection.execute(text(statement), params)
        return list(result.all()) if result.returns_rows else []


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = response.get_json(force=True)
    assert body["status"] == status
    return body


def fields(body: dict[str, Any]) -> set[str]:
    return {e["field"] for e in body.get("errors", [])}


@pytest.fixture
def staff(make_account: Callable[..., Any]) -> Any:
    return make_account("staff")


@pytest.fixture
def customer(make_account: Callable[..., Any]) -> Any:
    return make_account("customer")


@pytest.fixture
def make_product(client: Client, staff: Any) -> Callable[..., dict[str, Any]]:
    """make_product(name=..., price=..., stock=..., category=..., description=..., **attrs)."""

    def make(
        name: str = "Oak desk lamp",
        price: Any = "19.99",
        stock: int = 10,
        category: str = "home",
        description: str = "A warm lamp for reading",
        **extra: Any,
    ) -> dict[str, Any]:
        body = {
            "name": name,
            "price": price,
            "stock": stock,
            "attributes": {"category": category, "description": description, **extra},
        }
        response = client.post("/products/", json=body, headers=staff.headers)
        assert response.status_code == 201, response.get_data(as_text=True)
        product: dict[str, Any] = response.json
        return product

    return make
