"""The catalog: product writes, cached reads, full-text search and the order-count report.

Search uses the stored `search_vector` (GIN index) with `websearch_to_tsquery('english', q)`
and ranks by `ts_rank`. Every sort is a keyset over an index-friendly key:
- relevance: (rank DESC, id ASC). Each page re-ranks the matching rows, so a deep page costs
  what the first one does; the rank (as float8) is stored exactly in the signed cursor.
- price: (price ASC, id ASC) on ix_products_price or ix_products_category_price; price_desc
  is the same keyset read backwards (price DESC, id DESC).
- newest: (created_at DESC, id DESC) on ix_products_created or ix_products_category_created.

An `attribute=name:value` filter is a jsonb containment (`attributes @> {"name": value}`),
which the GIN index ix_products_attributes (jsonb_path_ops) serves.

Public reads go through the `catalog` cache namespace; every product write (and every order
that changes stock, in services/orders.py) bumps it after commit.
"""

from __future__ import annotations

import contextlib
import json
import math
import uuid
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Select,
    and_,
    cast,
    delete,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from imangor import cache
from imangor.errors import Conflict, FieldError, NotFound
from imangor.models import Order, Product
from imangor.schemas.products import (
    ProductIn,
    ProductOrderCount,
    ProductOut,
    ProductPage,
    ProductPatch,
    ProductQuery,
    ProductReport,
    ReportQuery,
)
from imangor.services.pagination import decode_cursor, fingerprint, invalid_cursor, paginate
from imangor.tasks.bumps import bump_after_commit

ENGLISH: ColumnElement[Any] = literal_column("'english'::regconfig")


# -- writes ----------------------------------------------------------------------------------


def create_product(session: Session, data: ProductIn) -> ProductOut:
    product = Product(
        name=data.name,
        price=data.price,
        stock=data.stock,
        attributes=data.attributes.model_dump(),
    )
    session.add(product)
    session.flush()
    session.refresh(product)  # price as stored, generated columns, timestamps
    bump_after_commit(session, cache.CATALOG)
    return ProductOut.model_validate(product)


def update_product(session: Session, product_id: uuid.UUID, patch: ProductPatch) -> ProductOut:
    product = session.get(Product, product_id, with_for_update=True)
    if product is None:
        raise NotFound(f"no product {product_id}")
    # Top-level fields only: a given `attributes` replaces the whole object, defaults included.
    changes = {f: v for f, v in patch.model_dump().items() if f in patch.model_fields_set}
    if changes:
        for field, value in changes.items():
            setattr(product, field, value)
        session.flush()
        session.refresh(product)
        bump_after_commit(session, cache.CATALOG)
    return ProductOut.model_validate(product)


def delete_product(session: Session, product_id: uuid.UUID) -> None:
    """Delete a product that was never ordered (orders keep their product: 409 then)."""
    if session.scalar(select(exists().where(Order.product_id == product_id))):
        raise Conflict("the product has orders; set its stock to 0 instead of deleting it")
    deleted = session.execute(
        delete(Product).where(Product.id == product_id).execution_options(synchronize_session=False)
    )
    if not getattr(deleted, "rowcount", 0):
        raise NotFound(f"no product {product_id}")
    bump_after_commit(session, cache.CATALOG)


# -- reads -----------------------------------------------------------------------------------


def get_product(session: Session, product_id: uuid.UUID) -> ProductOut:
    product = session.get(Product, product_id)
    if product is None:
        raise NotFound(f"no product {product_id}")
    return ProductOut.model_validate(product)


def read_product(open_session: Callable[[], Session], product_id: uuid.UUID) -> ProductOut:
    """A product by id, from the cache when it can be (a hit touches no database)."""
    return cache.read_through(
        cache.CATALOG,
        "product",
        {"id": str(product_id)},
        ProductOut,
        lambda: get_product(open_session(), product_id),
    )


def search_products(open_session: Callable[[], Session], query: ProductQuery) -> ProductPage:
    """A page of search results, from the cache when the same normalised query was seen."""
    return cache.read_through(
        cache.CATALOG,
        "search",
        normalised(query),
        ProductPage,
        lambda: search(open_session(), query),
    )


def normalised(query: ProductQuery) -> dict[str, Any]:
    """The query's identity: equal searches give equal dicts (whitespace and number spelling
    do not matter), so they share a cache entry and their cursors. Case does matter here:
    Python's lower() and PostgreSQL's differ (final sigma, dotted İ), so two spellings that
    Python folds together can be different searches to the database."""
    return {
        "q": query.q,
        "category": query.category,
        "min_price": _money(query.min_price),
        "max_price": _money(query.max_price),
        "attribute": sorted(set(query.attribute)),
        "sort": query.effective_sort,
        "limit": query.limit,
        "cursor": query.cursor,
    }


def _money(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:.2f}"


def search(session: Session, query: ProductQuery) -> ProductPage:
    identity = normalised(query)
    del identity["limit"], identity["cursor"]
    query_id = fingerprint("products", **identity)
    after = _decode_after(query, query_id) if query.cursor else None
    stmt = search_statement(query, after)
    rows = session.execute(stmt).all()
    if not rows and query.q and not _has_lexemes(session, query.q):
        raise FieldError(
            "q", "query_empty", "q has no searchable words (only operators or stop words)"
        )
    sort = query.effective_sort
    key: Callable[[Any], tuple[Any, ...]]
    if sort == "relevance":
        key = lambda row: (row.rank, row.Product.id)  # noqa: E731
    elif sort in ("price", "price_desc"):
        key = lambda row: (row.Product.price, row.Product.id)  # noqa: E731
    else:
        key = lambda row: (row.Product.created_at, row.Product.id)  # noqa: E731
    page, cursor = paginate(rows, query.limit, query_id, key)
    return ProductPage(
        items=[ProductOut.model_validate(row.Product) for row in page], next_cursor=cursor
    )


def search_statement(
    query: ProductQuery, after: tuple[Any, uuid.UUID] | None = None
) -> Select[Any]:
    """The SELECT for a search page (limit + 1 rows); tests EXPLAIN it."""
    conditions: list[ColumnElement[bool]] = []
    rank: ColumnElement[float] | None = None
    if query.q:
        tsquery = func.websearch_to_tsquery(ENGLISH, query.q)
        conditions.append(Product.search_vector.op("@@")(tsquery))
        # float8, so the value a cursor carries round-trips exactly through text and JSON
        # (a float4 printed as text would come back as a slightly different double).
        rank = cast(func.ts_rank(Product.search_vector, tsquery), Float(precision=53))
    if query.category:
        conditions.append(Product.category == query.category)
    if query.min_price is not None:
        conditions.append(Product.price >= query.min_price)
    if query.max_price is not None:
        conditions.append(Product.price <= query.max_price)
    conditions.extend(_has_attribute(spec) for spec in sorted(set(query.attribute)))

    sort = query.effective_sort
    stmt: Select[Any]
    if sort == "relevance":
        assert rank is not None  # the schema refuses relevance without q
        stmt = select(Product, rank.label("rank")).order_by(rank.desc(), Product.id)  # type: ignore[assignment]
        if after is not None:
            last_rank, last_id = after
            bound = literal(last_rank, Float(precision=53))
            conditions.append(or_(rank < bound, and_(rank == bound, Product.id > last_id)))
    elif sort == "price":
        stmt = select(Product).order_by(Product.price, Product.id)
        if after is not None:
            conditions.append(tuple_(Product.price, Product.id) > tuple_(*after))
    elif sort == "price_desc":
        stmt = select(Product).order_by(Product.price.desc(), Product.id.desc())
        if after is not None:
            conditions.append(tuple_(Product.price, Product.id) < tuple_(*after))
    else:
        stmt = select(Product).order_by(Product.created_at.desc(), Product.id.desc())
        if after is not None:
            conditions.append(tuple_(Product.created_at, Product.id) < tuple_(*after))
    return stmt.where(*conditions).limit(query.limit + 1)


def _has_attribute(spec: str) -> ColumnElement[bool]:
    """`name:value` as containment: the value as text, or as the JSON number or boolean it
    spells (size_cm:30 finds 30 and "30"); each form is served by the GIN index."""
    name, _, value = spec.partition(":")
    wanted: list[Any] = [value]
    with contextlib.suppress(ValueError):
        parsed = json.loads(value)
        if isinstance(parsed, bool | int | float) and math.isfinite(parsed):
            wanted.append(parsed)
    return or_(*(Product.attributes.op("@>")(cast({name: v}, JSONB)) for v in wanted))


def _decode_after(query: ProductQuery, query_id: str) -> tuple[Any, uuid.UUID]:
    assert query.cursor is not None
    key = decode_cursor(query.cursor, query_id)
    try:
        value, ident = key
        parsed: Any
        sort = query.effective_sort
        if sort == "relevance":
            parsed = float(value)
        elif sort in ("price", "price_desc"):
            parsed = Decimal(str(value))
        else:
            parsed = datetime.fromisoformat(value)
        return parsed, uuid.UUID(ident)
    except (TypeError, ValueError, ArithmeticError):
        raise invalid_cursor() from None


def _has_lexemes(session: Session, q: str) -> bool:
    count = session.scalar(select(func.numnode(func.websearch_to_tsquery(ENGLISH, q))))
    return bool(count)


# -- report ----------------------------------------------------------------------------------


def order_counts(session: Session, query: ReportQuery) -> ProductReport:
    """Each product of a category with how often it was ordered (LEFT JOIN, so products never
    ordered count 0), most ordered first, keeping those with at least `min_orders`."""
    query_id = fingerprint("product-report", category=query.category, min=query.min_orders)
    count = func.count(Order.id)
    units = func.coalesce(func.sum(Order.quantity), 0)
    having: list[ColumnElement[bool]] = [count >= query.min_orders]
    if query.cursor:
        key = decode_cursor(query.cursor, query_id)
        try:
            last_count, last_id = int(key[0]), uuid.UUID(key[1])
        except (TypeError, ValueError, IndexError):
            raise invalid_cursor() from None
        having.append(or_(count < last_count, and_(count == last_count, Product.id > last_id)))
    stmt = (
        select(
            Product.id,
            Product.name,
            Product.price,
            Product.stock,
            count.label("order_count"),
            units.label("units_ordered"),
        )
        .outerjoin(Order, and_(Order.product_id == Product.id, Order.status != "cancelled"))
        .where(Product.category == query.category)
        .group_by(Product.id)
        .having(*having)
        .order_by(count.desc(), Product.id)
        .limit(query.limit + 1)
    )
    rows = session.execute(stmt).all()
    page, cursor = paginate(rows, query.limit, query_id, lambda r: (r.order_count, r.id))
    return ProductReport(
        items=[ProductOrderCount.model_validate(row) for row in page],
        next_cursor=cursor,
    )
