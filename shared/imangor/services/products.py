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

import json
import math
import uuid
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    TextClause,
    and_,
    delete,
    exists,
    func,
    literal_column,
    or_,
    select,
    text,
)
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
    if query.effective_sort == "relevance":
        return _relevance_page(session, query, query_id)
    after = _decode_after(query, query_id) if query.cursor else None
    rows = session.execute(search_statement(query, after)).all()
    if not rows and query.q and not _has_lexemes(session, query.q):
        raise _no_lexemes()
    # The key comes as text (the price as stored, the time in RFC 3339 UTC): exact, and no
    # row is converted to Python values just so the last one can make a cursor.
    page, cursor = paginate(rows, query.limit, query_id, lambda row: (row.key, row.id))
    return _page([row.doc for row in page], cursor)


# -- relevance ------------------------------------------------------------------------------
#
# The exact order is (ts_rank DESC, id ASC) over every match. ts_rank reads each matching row,
# so its cost grows with the number of matches: a word found in 6 % of a million products
# costs PostgreSQL about 230 ms. So:
#
# - A query with no more than EXACT_UP_TO matches is ranked exactly: the planner's estimate
#   decides, checked by a bounded count when it lies within VERIFY_UP_TO.
# - A broader one is ranked exactly within *windows* of the id space: window w of 2**bits
#   holds the ids whose first `bits` bits are w (ids are random UUIDs, so a window is a
#   uniform sample of about WINDOW_MATCHES matches), and the order is
#   (window ASC, ts_rank DESC, id ASC). A page reads the windows it needs, never every match.
#   Equal ranks, which most of a broad query's matches share, keep the exact order's id
#   order, so page 1 equals the exact page 1 whenever window 0 holds a page of the best rank.
#
# `bits` = 0 is one window: the exact order. Cursors carry (bits, walk, window, rank, id), so
# every page of one search uses the same windows; a (rank, id) cursor is an exact-order one.

EXACT_UP_TO = 1000  # matches up to which relevance is the full ts_rank order
VERIFY_UP_TO = 4 * EXACT_UP_TO  # estimates up to this are checked by a bounded count
WINDOW_MATCHES = 32  # matches a window holds on average above that
WALK_SHARE = 0.03  # above this share of the catalog a window is walked in id order
MAX_BITS = 24


def _relevance_page(session: Session, query: ProductQuery, query_id: str) -> ProductPage:
    assert query.q is not None  # the schema refuses relevance without q
    need = query.limit + 1
    after: tuple[float, uuid.UUID] | None = None
    if query.cursor:
        bits, walk, window, rank, ident = _decode_relevance(query, query_id)
        after, per_window = (rank, ident), float(WINDOW_MATCHES)
    else:
        bits, walk, per_window = _plan(session, query)
        window = 0
    # Read the windows a page needs, doubling the stretch whenever one comes back short; the
    # last window ends the search.
    span = _span(need, per_window)
    rows: list[Any] = []
    while True:
        end = min(window + span, 2**bits)
        stmt = relevance_statement(
            query, bits, window, end, after, walk=walk, limit=need - len(rows)
        )
        rows += session.execute(stmt).all()
        if len(rows) >= need or end >= 2**bits:
            break
        if not query.cursor and window == 0 and len(rows) * 2**bits <= EXACT_UP_TO * end:
            # The estimate was far too high (words that seldom meet): the first stretch
            # says the matches are few, so rank them all, exactly.
            bits, walk = 0, False
            rows = list(session.execute(relevance_statement(query, 0, 0, 1, None)).all())
            break
        window, after, span = end, None, span * 2
    if not rows and not _has_lexemes(session, query.q):
        raise _no_lexemes()
    page, cursor = paginate(
        rows, query.limit, query_id, lambda row: (bits, int(walk), row.win, row.rank, row.id)
    )
    return _page([row.doc for row in page], cursor)


def _plan(session: Session, query: ProductQuery) -> tuple[int, bool, float]:
    """(bits, walk, matches per window) of a new search. An estimate just above the
    threshold is checked by counting, at most EXACT_UP_TO + 1 matches: the planner assumes
    words occur independently, so it misjudges words that go together (or never do)."""
    estimate, total = _estimate(session, query)
    if EXACT_UP_TO < estimate <= VERIFY_UP_TO:
        counted = _count_up_to(session, query, EXACT_UP_TO + 1)
        if counted <= EXACT_UP_TO:
            estimate = counted
    bits, walk = _windows(estimate, total)
    return bits, walk, estimate / 2**bits


def _span(need: int, per_window: float) -> int:
    """Windows to read for `need` rows: half as many again as expected, for luck."""
    return max(1, math.ceil(1.5 * need / max(per_window, 1.0)))


def first_statement(session: Session, query: ProductQuery) -> TextClause:
    """The statement a first page of `query` starts with (the bench EXPLAINs it)."""
    if query.effective_sort != "relevance":
        return search_statement(query)
    bits, walk, per_window = _plan(session, query)
    end = min(_span(query.limit + 1, per_window), 2**bits)
    return relevance_statement(query, bits, 0, end, None, walk=walk)


def _count_up_to(session: Session, query: ProductQuery, cap: int) -> int:
    where, params = _where(query)
    sql = f"SELECT count(*) FROM (SELECT FROM products p WHERE {where} LIMIT :cap) AS m"  # noqa: S608  # nosec B608
    return int(session.execute(text(sql), {**params, "cap": cap}).scalar_one())


def _windows(estimate: float, total: float) -> tuple[int, bool]:
    """(bits, walk) of a search's windows, from the planner's estimates."""
    if estimate <= EXACT_UP_TO:
        return 0, False
    bits = min(MAX_BITS, max(0, int(math.log2(estimate / WINDOW_MATCHES))))
    return bits, bits > 0 and estimate >= WALK_SHARE * total


def _estimate(session: Session, query: ProductQuery) -> tuple[float, float]:
    """The planner's estimates of the matching rows and of all products: ANALYZE keeps each
    lexeme's frequency, so one word, or words joined by `or`, are estimated closely."""
    where, params = _where(query)
    sql = (
        f"EXPLAIN (FORMAT JSON) SELECT 1 FROM products p WHERE {where} "  # noqa: S608  # nosec B608
        "UNION ALL SELECT 1 FROM products"
    )
    plan = session.execute(text(sql), params).scalar_one()
    children = plan[0]["Plan"]["Plans"]
    return float(children[0]["Plan Rows"]), float(children[1]["Plan Rows"])


def relevance_statement(
    query: ProductQuery,
    bits: int,
    window: int,
    end: int,
    after: tuple[float, uuid.UUID] | None,
    *,
    walk: bool = False,
    limit: int | None = None,
) -> TextClause:
    """Matches in windows [window, end) of 2**bits, ordered (window, rank DESC, id), after
    the (rank, id) of the last row served from `window`. `walk` reads the windows' rows in
    id order and tests each (cheap when most rows match) rather than asking the GIN index
    (cheap when few do: it reads every match's entry either way)."""
    where, params = _where(query, match="ts_match_vq" if walk else "@@", tsquery="q")
    rank = "ts_rank(p.search_vector, q)::float8"
    win = f"(('x' || left(p.id::text, 8))::bit(32)::bigint >> {32 - bits})" if bits else "0"
    if bits:
        where += " AND p.id >= :lo"
        params["lo"] = _window_start(window, bits)
        if end < 2**bits:
            where += " AND p.id < :hi"
            params["hi"] = _window_start(end, bits)
    if after is not None:
        later = f"{rank} < :rank OR ({rank} = :rank AND p.id > :last)"
        params.update(rank=after[0], last=after[1])
        if bits and window + 1 < 2**bits:
            later = f"p.id >= :next OR {later}"
            params["next"] = _window_start(window + 1, bits)
        where += f" AND ({later})"
    params["n"] = limit if limit is not None else query.limit + 1
    # `bits` is an int and every value is a bound parameter. The product's JSON is built
    # after the LIMIT, for the page's rows only.
    sql = (
        f"SELECT s.win, s.rank, s.id, {_DOC} AS doc FROM ("  # noqa: S608  # nosec B608
        f"SELECT {win} AS win, {rank} AS rank, p.id "
        f"FROM products p, websearch_to_tsquery('english', :q) AS q WHERE {where} "
        "ORDER BY win, rank DESC, p.id LIMIT :n) AS s "
        "JOIN products p ON p.id = s.id ORDER BY s.win, s.rank DESC, s.id"
    )
    return text(sql).bindparams(**params)


def _window_start(window: int, bits: int) -> uuid.UUID:
    return uuid.UUID(int=window << (128 - bits))


def _decode_relevance(
    query: ProductQuery, query_id: str
) -> tuple[int, bool, int, float, uuid.UUID]:
    assert query.cursor is not None
    key = decode_cursor(query.cursor, query_id)
    try:
        if len(key) == 2:  # an exact-order cursor of the (rank, id) form
            key = [0, 0, 0, *key]
        bits, walk, window, rank, ident = key
        if not (isinstance(bits, int) and isinstance(window, int) and walk in (0, 1)):
            raise ValueError
        if not (0 <= bits <= MAX_BITS and 0 <= window < 2**bits):
            raise ValueError
        return bits, bool(walk), window, float(rank), uuid.UUID(ident)
    except (TypeError, ValueError):
        raise invalid_cursor() from None


# -- statements ------------------------------------------------------------------------------

# Each product as the JSON of ProductOut, made by PostgreSQL: a page reaches Python as a few
# strings, not as rows to convert and objects to validate field by field.
_DOC = (
    "json_build_object('id', p.id, 'name', p.name, 'price', p.price::text, 'stock', p.stock, "
    "'attributes', p.attributes, 'created_at', p.created_at, 'updated_at', p.updated_at)::text"
)
_RFC3339_UTC = "to_char(p.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"


def _page(docs: list[str], cursor: str | None) -> ProductPage:
    body = '{"items":[' + ",".join(docs) + '],"next_cursor":' + json.dumps(cursor) + "}"
    return ProductPage.model_validate_json(body)


def _where(
    query: ProductQuery, *, match: str = "@@", tsquery: str | None = None
) -> tuple[str, dict[str, Any]]:
    """The search's filters as SQL over `products p`, with their parameters."""
    where: list[str] = []
    params: dict[str, Any] = {}
    if query.q:
        params["q"] = query.q
        q = tsquery or "websearch_to_tsquery('english', :q)"
        where.append(
            f"p.search_vector @@ {q}" if match == "@@" else f"{match}(p.search_vector, {q})"
        )
    if query.category:
        where.append("p.category = :category")
        params["category"] = query.category
    if query.min_price is not None:
        where.append("p.price >= :min_price")
        params["min_price"] = query.min_price
    if query.max_price is not None:
        where.append("p.price <= :max_price")
        params["max_price"] = query.max_price
    for i, spec in enumerate(sorted(set(query.attribute))):
        forms = _attribute_forms(spec)
        names = [f"attr{i}_{j}" for j in range(len(forms))]
        params.update(zip(names, forms, strict=True))
        where.append("(" + " OR ".join(f"p.attributes @> CAST(:{n} AS jsonb)" for n in names) + ")")
    return " AND ".join(where) or "TRUE", params


def _attribute_forms(spec: str) -> list[str]:
    """`name:value` as the JSON objects a product's attributes must contain: the value as
    text, or as the JSON number or boolean it spells (size_cm:30 finds 30 and "30"); each
    containment is served by the GIN index ix_products_attributes."""
    name, _, value = spec.partition(":")
    wanted: list[Any] = [value]
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = None
    if isinstance(parsed, bool | int | float) and math.isfinite(parsed):
        wanted.append(parsed)
    return [json.dumps({name: v}) for v in wanted]


def search_statement(query: ProductQuery, after: tuple[Any, uuid.UUID] | None = None) -> TextClause:
    """The SELECT for a search page (limit + 1 rows); tests EXPLAIN it. Relevance here is the
    exact order (one window); `search` picks windows for broad queries."""
    if query.effective_sort == "relevance":
        return relevance_statement(query, 0, 0, 1, after)
    where, params = _where(query)
    sort = query.effective_sort
    if sort == "price":
        key, order, keyset = "p.price::text", "p.price, p.id", "(p.price, p.id) > (:key, :last)"
    elif sort == "price_desc":  # the same keyset read backwards
        key, order = "p.price::text", "p.price DESC, p.id DESC"
        keyset = "(p.price, p.id) < (:key, :last)"
    else:
        key, order = _RFC3339_UTC, "p.created_at DESC, p.id DESC"
        keyset = "(p.created_at, p.id) < (:key, :last)"
    if after is not None:
        where += f" AND {keyset}"
        params.update(key=after[0], last=after[1])
    params["n"] = query.limit + 1
    sql = (
        f"SELECT s.key, s.id, {_DOC} AS doc FROM ("  # noqa: S608  # nosec B608
        f"SELECT p.id, {key} AS key FROM products p WHERE {where} ORDER BY {order} LIMIT :n"
        f") AS s JOIN products p ON p.id = s.id ORDER BY {order}"
    )
    return text(sql).bindparams(**params)


def _decode_after(query: ProductQuery, query_id: str) -> tuple[Any, uuid.UUID]:
    assert query.cursor is not None
    key = decode_cursor(query.cursor, query_id)
    try:
        value, ident = key
        parsed: Any
        if query.effective_sort in ("price", "price_desc"):
            parsed = Decimal(str(value))
            if not parsed.is_finite():
                raise ValueError
        else:
            parsed = datetime.fromisoformat(value)
            if parsed.tzinfo is None:
                raise ValueError
        return parsed, uuid.UUID(ident)
    except (TypeError, ValueError, ArithmeticError):
        raise invalid_cursor() from None


def _has_lexemes(session: Session, q: str) -> bool:
    count = session.scalar(select(func.numnode(func.websearch_to_tsquery(ENGLISH, q))))
    return bool(count)


def _no_lexemes() -> FieldError:
    return FieldError(
        "q", "query_empty", "q has no searchable words (only operators or stop words)"
    )


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
