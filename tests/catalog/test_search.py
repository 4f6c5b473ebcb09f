"""Product search: full-text relevance, filters, sorts, keyset pages and bad queries."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from werkzeug.test import Client

from tests.catalog.conftest import counts, fields, problem


@pytest.fixture
def catalog(make_product: Any) -> dict[str, dict[str, Any]]:
    return {
        "headphones": make_product(
            "Wireless headphones", "99.00", category="electronics",
            description="Over-ear headphones with noise cancelling",
        ),
        "earbuds": make_product(
            "Compact earbuds", "49.50", category="electronics",
            description="Small wireless buds that pair with any phone",
        ),
        "speaker": make_product(
            "Bookshelf speaker", "120.00", category="electronics",
            description="Wired speaker, walnut cabinet",
        ),
        "lamp": make_product(
            "Walnut desk lamp", "35.00", category="home", description="Warm light for reading"
        ),
        "rug": make_product("Wool rug", "250.00", category="home", description="Hand woven"),
    }  # fmt: skip


def search(client: Client, **params: Any) -> dict[str, Any]:
    response = client.get(f"/products/?{urlencode(params)}")
    assert response.status_code == 200, response.get_data(as_text=True)
    page: dict[str, Any] = response.json
    return page


def names(page: dict[str, Any]) -> list[str]:
    return [p["name"] for p in page["items"]]


def test_full_text_ranks_name_matches_first(client: Client, catalog: Any) -> None:
    page = search(client, q="wireless")
    assert names(page) == ["Wireless headphones", "Compact earbuds"]  # name (A) > description (B)
    assert names(search(client, q="WALNUT")) == ["Walnut desk lamp", "Bookshelf speaker"]
    assert names(search(client, q='"noise cancelling"')) == ["Wireless headphones"]
    assert names(search(client, q="wireless -buds")) == ["Wireless headphones"]
    assert names(search(client, q="rug or lamp", sort="price")) == ["Walnut desk lamp", "Wool rug"]
    assert search(client, q="submarine")["items"] == []


def test_filters_and_sorts(client: Client, catalog: Any) -> None:
    assert names(search(client, category="home", sort="price")) == ["Walnut desk lamp", "Wool rug"]
    assert names(search(client, min_price="40", max_price="100", sort="price")) == [
        "Compact earbuds",
        "Wireless headphones",
    ]
    assert names(search(client, q="wireless", max_price="50")) == ["Compact earbuds"]
    assert names(search(client, category="electronics", q="walnut")) == ["Bookshelf speaker"]
    newest = names(search(client))
    assert newest[0] == "Wool rug"
    assert newest[-1] == "Wireless headphones"
    assert search(client, category="garden")["items"] == []


@pytest.mark.parametrize(
    "params",
    [
        {"sort": "newest"},
        {"sort": "price"},
        {"category": "electronics", "sort": "price"},
        {"category": "electronics", "sort": "newest"},
        {"q": "wireless walnut or rug or lamp or speaker", "sort": "relevance"},
        {"q": "wireless or walnut", "sort": "price"},
    ],
)
def test_keyset_pages_walk_every_result_once(
    client: Client, catalog: Any, params: dict[str, Any]
) -> None:
    everything = names(search(client, **params, limit=100))
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page = search(client, **params, limit=2, **({"cursor": cursor} if cursor else {}))
        seen += names(page)
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == everything
    assert everything


def test_relevance_pages_with_equal_ranks(client: Client, make_product: Any) -> None:
    for n in range(7):  # identical text: equal ranks, ordered by id
        make_product(f"Lamp {n}", "10.00", description="lamp")
    pages, cursor = [], None
    while True:
        page = search(client, q="lamp", limit=3, **({"cursor": cursor} if cursor else {}))
        pages.append(names(page))
        cursor = page["next_cursor"]
        if cursor is None:
            break
    flat = [n for page in pages for n in page]
    assert sorted(flat) == [f"Lamp {n}" for n in range(7)]
    assert [len(p) for p in pages] == [3, 3, 1]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"q": '!!! --- ||| ""'}, "query.q"),
        ({"q": "-"}, "query.q"),
        ({"q": "the and of"}, "query.q"),  # only stop words: no lexemes
        ({"q": "x" * 10_000}, "query.q"),
        ({"q": ""}, "query.q"),
        ({"min_price": "-1"}, "query.min_price"),
        ({"max_price": "1e20"}, "query.max_price"),
        ({"min_price": "NaN"}, "query.min_price"),
        ({"max_price": "Infinity"}, "query.max_price"),
        ({"min_price": "50", "max_price": "10"}, "query.max_price"),
        ({"sort": "relevance"}, "query.sort"),
        ({"sort": "popularity"}, "query.sort"),
        ({"category": "Not A Slug"}, "query.category"),
        ({"limit": "0"}, "query.limit"),
        ({"limit": "101"}, "query.limit"),
        ({"cursor": "garbage"}, "query.cursor"),
        ({"cursor": "x" * 600}, "query.cursor"),
        ({"colour": "red"}, "query.colour"),
    ],
)
def test_bad_queries_are_422(
    client: Client, catalog: Any, params: dict[str, Any], field: str
) -> None:
    before = counts()
    response = client.get(f"/products/?{urlencode(params)}")
    assert field in fields(problem(response, 422))
    assert counts() == before


def test_cursor_from_another_query_is_422(client: Client, catalog: Any) -> None:
    cursor = search(client, category="electronics", sort="price", limit=1)["next_cursor"]
    assert cursor
    for other in (
        {"category": "home", "sort": "price"},
        {"category": "electronics", "sort": "newest"},
        {"category": "electronics", "sort": "price", "min_price": "1"},
        {"q": "wireless"},
    ):
        response = client.get(f"/products/?{urlencode({**other, 'cursor': cursor})}")
        assert fields(problem(response, 422)) == {"query.cursor"}
    # The same query spelled differently is the same query.
    same_query = {"category": "electronics", "sort": "price", "cursor": cursor, "limit": 5}
    same = client.get(f"/products/?{urlencode(same_query)}")
    assert same.status_code == 200
    tampered = cursor[:10] + ("A" if cursor[10] != "A" else "B") + cursor[11:]
    response = client.get(
        f"/products/?{urlencode({'category': 'electronics', 'sort': 'price', 'cursor': tampered})}"
    )
    assert fields(problem(response, 422)) == {"query.cursor"}


def test_attribute_filters_and_descending_price(client: Any, make_product: Any) -> None:
    """`attribute=name:value` (repeatable, all must hold; a number matches the JSON number
    too) and `sort=price_desc`, paged by keyset."""
    make_product(name="Red mug", price="5.00", color="red", size_cm=10)
    make_product(name="Red lamp", price="30.00", color="red", size_cm=30)
    make_product(name="Blue lamp", price="20.00", color="blue", size_cm=30)

    def names(**params: Any) -> list[str]:
        page = client.get("/products/", query_string=params)
        assert page.status_code == 200, page.json
        return [p["name"] for p in page.json["items"]]

    assert names(attribute="color:red", sort="price") == ["Red mug", "Red lamp"]
    assert names(attribute="size_cm:30", sort="price") == ["Blue lamp", "Red lamp"]
    assert names(attribute=["color:red", "size_cm:30"]) == ["Red lamp"]
    assert names(attribute="color:green") == []
    first = client.get("/products/", query_string={"sort": "price_desc", "limit": 2}).json
    rest = client.get(
        "/products/", query_string={"sort": "price_desc", "cursor": first["next_cursor"]}
    ).json
    assert [p["name"] for p in first["items"] + rest["items"]] == [
        "Red lamp",
        "Blue lamp",
        "Red mug",
    ]
    for bad in ("color", ":red", "1color:red", "color:"):
        refused = client.get("/products/", query_string={"attribute": bad})
        assert refused.status_code == 422, bad


# -- relevance: exact under the threshold, windows above it -----------------------------------

LAMPS = 40


@pytest.fixture
def lamps() -> list[str]:
    """40 products matching 'lamp' at several ranks (in the name or not, once to three times
    in the description), with ids spread evenly over the id space; returns the exact order."""
    from imangor.cache import CATALOG, bump
    from tests.catalog.conftest import sql

    sql(
        "INSERT INTO products (id, name, price, stock, attributes) "
        "SELECT (lpad(to_hex(mod(n * 4093, 65536)), 4, '0') || substr(md5(n::text), 5))::uuid, "
        "'Item ' || n || CASE WHEN mod(n, 5) = 0 THEN ' lamp' ELSE '' END, 10, 1, "
        "jsonb_build_object('category', 'home', "
        "'description', repeat('lamp ', 1 + mod(n, 3)) || 'for reading') "
        "FROM generate_series(1, :n) AS n",
        n=LAMPS,
    )
    sql("ANALYZE products")
    bump(CATALOG)
    return exact_order("lamp")


def exact_order(q: str, bits: int = 0) -> list[str]:
    """Names by (window of `bits` id bits, ts_rank DESC, id), computed in full by SQL."""
    from tests.catalog.conftest import sql

    window = f"(('x' || left(id::text, 8))::bit(32)::bigint >> {32 - bits}), " if bits else ""
    rows = sql(
        f"SELECT name FROM products WHERE search_vector @@ websearch_to_tsquery('english', :q) "
        f"ORDER BY {window}ts_rank(search_vector, websearch_to_tsquery('english', :q)) DESC, id",
        q=q,
    )
    return [row[0] for row in rows]


def every_page(client: Client, limits: list[int], **params: Any) -> list[str]:
    seen: list[str] = []
    cursor = None
    for n in range(100):
        more = {"cursor": cursor} if cursor else {}
        page = search(client, **params, limit=limits[n % len(limits)], **more)
        seen += names(page)
        cursor = page["next_cursor"]
        if cursor is None:
            return seen
    raise AssertionError("more than 100 pages")


def test_relevance_under_the_threshold_is_the_full_ts_rank_order(
    client: Client, lamps: list[str]
) -> None:
    from imangor.services import products

    assert len(lamps) == LAMPS <= products.EXACT_UP_TO
    assert len(set(lamps)) == LAMPS
    assert names(search(client, q="lamp", limit=100)) == lamps
    assert every_page(client, [7, 3, 11], q="lamp") == lamps
    assert lamps[0].endswith(" lamp")  # a name match ranks first


@pytest.mark.parametrize("walk", [True, False], ids=["walked", "from-the-index"])
def test_above_the_threshold_pages_walk_windows_and_every_match_once(
    client: Client, lamps: list[str], monkeypatch: pytest.MonkeyPatch, walk: bool
) -> None:
    from imangor.services import products

    # As if the catalog were large: 40 matches estimated out of 50 products; windows of 8
    # matches give bits = 2 (4 windows of 8 to 12 lamps).
    monkeypatch.setattr(products, "EXACT_UP_TO", 5)
    monkeypatch.setattr(products, "WINDOW_MATCHES", 8)
    monkeypatch.setattr(products, "WALK_SHARE", 0.0 if walk else 2.0)
    monkeypatch.setattr(products, "_estimate", lambda session, query: (40.0, 50.0))
    windowed = exact_order("lamp", bits=2)
    assert sorted(windowed) == sorted(lamps) and windowed != lamps
    assert names(search(client, q="lamp", limit=4)) == windowed[:4]
    for limits in ([4], [3, 9, 1], [25]):
        assert every_page(client, limits, q="lamp") == windowed


def test_an_estimate_far_too_high_falls_back_to_the_exact_order(
    client: Client, lamps: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from imangor.services import products

    # The planner expects a million matches; the first window (1/16384 of the ids) holds
    # none of the 40, so the search ranks the few there are exactly.
    monkeypatch.setattr(products, "_estimate", lambda session, query: (1e6, 1e6))
    assert names(search(client, q="lamp", limit=100)) == lamps
    assert every_page(client, [6], q="lamp") == lamps


def test_an_estimate_just_above_the_threshold_is_checked_by_counting(
    lamps: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from imangor.db import session_scope
    from imangor.schemas.products import ProductQuery
    from imangor.services import products

    query = ProductQuery.model_validate({"q": "lamp"})
    with session_scope() as session:
        monkeypatch.setattr(products, "_estimate", lambda s, q: (2000.0, 1e6))
        assert products._plan(session, query)[0] == 0  # 40 counted: ranked in full
        monkeypatch.setattr(products, "_estimate", lambda s, q: (5000.0, 1e6))
        assert products._plan(session, query)[0] > 0  # beyond the check: windows
