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
