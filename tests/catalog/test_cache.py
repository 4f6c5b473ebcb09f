"""The catalog cache: hits skip the database, every write that changes an answer invalidates
it, HTTP revalidation answers 304, and a Redis outage (a real closed port) breaks nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.test import Client

from tests.catalog.conftest import sql


def cached_keys(kind: str) -> list[bytes]:
    from imangor.redis_client import get_redis

    return list(get_redis().scan_iter(f"cache:catalog:*:{kind}:*"))


def test_read_is_cached_until_a_write_bumps_the_version(
    client: Client, staff: Any, make_product: Any
) -> None:
    product = make_product(name="Original lamp")
    url = f"/products/{product['id']}"
    assert client.get(url).json["name"] == "Original lamp"
    assert len(cached_keys("product")) == 1
    # A change made behind the API's back is not seen: the answer comes from the cache.
    sql("UPDATE products SET name = 'Changed in SQL' WHERE id = :id", id=product["id"])
    assert client.get(url).json["name"] == "Original lamp"
    # A write through the API invalidates every catalog answer.
    client.patch(url, json={"stock": 3}, headers=staff.headers)
    fresh = client.get(url).json
    assert (fresh["name"], fresh["stock"]) == ("Changed in SQL", 3)


@pytest.fixture
def own_redis(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[Any]:
    """A Redis server of this test's own, so its command counts are this test's alone."""
    from imangor.config import get_settings
    from imangor.redis_client import get_redis, reset_redis
    from infra.local.embedded import EmbeddedRedis

    with EmbeddedRedis(tmp_path) as url:
        monkeypatch.setenv("REDIS_URL", url)
        get_settings.cache_clear()
        reset_redis()
        yield get_redis()
        monkeypatch.undo()
        get_settings.cache_clear()
        reset_redis()


def test_a_hit_is_one_redis_round_trip_and_survives_a_script_flush(
    client: Client, make_product: Any, own_redis: Any
) -> None:
    """The version and the entry come back from one script call (EVALSHA), not two GETs; a
    Redis that lost its scripts (restart, failover, SCRIPT FLUSH) reloads it and still hits."""
    product = make_product(name="Flushed lamp")
    url = f"/products/{product['id']}"
    assert client.get(url).status_code == 200  # fills the entry

    sql("UPDATE products SET name = 'Changed in SQL' WHERE id = :id", id=product["id"])
    with own_redis.monitor() as monitor:
        assert client.get(url).json["name"] == "Flushed lamp"  # served from the cache
        own_redis.echo("end of request")
        sent = []  # what the unit sent; commands run inside a script show as client "lua"
        for event in monitor.listen():
            if event["command"] == "ECHO end of request":
                break
            if event["client_type"] != "lua":
                sent.append(event["command"].split()[0].upper())
    # The rate limit's call, and one EVALSHA for the cache entry: no GET of its own.
    assert "GET" not in sent and 1 <= sent.count("EVALSHA") <= 2, sent
    own_redis.script_flush()
    assert client.get(url).json["name"] == "Flushed lamp"


def test_search_is_cached_by_normalised_query(client: Client, make_product: Any) -> None:
    make_product(name="Walnut lamp", price="10")
    first = client.get("/products/?q=walnut%20%20lamp&min_price=10")
    assert first.status_code == 200
    # Spacing and number spelling do not make a new entry.
    again = client.get("/products/?min_price=10.00&q=walnut+lamp")
    assert again.json == first.json
    assert len(cached_keys("search")) == 1
    # Case does: the database folds it, and not always as Python would (see below).
    client.get("/products/?q=WALNUT+lamp&min_price=10")
    client.get("/products/?q=walnut&min_price=10")
    assert len(cached_keys("search")) == 3


def test_spellings_python_folds_together_are_still_separate_searches(
    client: Client, make_product: Any
) -> None:
    """Python lower-cases "ΣΊΣΥΦΟΣ" to "σίσυφος" (a final ς), PostgreSQL to "σίσυφοσ": the
    two can be different searches. Each gets the database's own answer, whichever came first."""
    from imangor.redis_client import get_redis

    make_product(name="Σίσυφος mug")
    spellings = ["σίσυφος", "ΣΊΣΥΦΟΣ", "İstanbul", "i̇stanbul"]

    def names(q: str) -> list[str]:
        return [p["name"] for p in client.get("/products/", query_string={"q": q}).json["items"]]

    alone = {}
    for q in spellings:  # each asked with nothing cached
        for key in cached_keys("search"):
            get_redis().delete(key)
        alone[q] = names(q)
    for order in (spellings, spellings[::-1]):  # then one after another, both ways round
        for key in cached_keys("search"):
            get_redis().delete(key)
        assert {q: names(q) for q in order} == alone


def test_orders_and_deletes_invalidate(
    client: Client, staff: Any, customer: Any, make_product: Any
) -> None:
    product = make_product(stock=5)
    url = f"/products/{product['id']}"
    assert client.get(url).json["stock"] == 5
    assert client.get("/products/?category=home").json["items"][0]["stock"] == 5
    placed = client.post(
        "/orders/", json={"product_id": product["id"], "quantity": 2}, headers=customer.headers
    ).json
    assert client.get(url).json["stock"] == 3
    assert client.get("/products/?category=home").json["items"][0]["stock"] == 3
    client.post(f"/orders/{placed['id']}/cancel", headers=customer.headers)
    assert client.get(url).json["stock"] == 5
    other = make_product(name="Doomed")
    assert len(client.get("/products/?category=home").json["items"]) == 2
    client.delete(f"/products/{other['id']}", headers=staff.headers)
    assert len(client.get("/products/?category=home").json["items"]) == 1
    assert client.get(f"/products/{other['id']}").status_code == 404


def test_a_refused_write_does_not_bump(client: Client, customer: Any, make_product: Any) -> None:
    from imangor.cache import CATALOG, version

    product = make_product(stock=1)
    before = version(CATALOG)
    client.post(
        "/orders/", json={"product_id": product["id"], "quantity": 5}, headers=customer.headers
    )
    assert version(CATALOG) == before


def test_etag_and_304(client: Client, staff: Any, make_product: Any) -> None:
    product = make_product()
    url = f"/products/{product['id']}"
    first = client.get(url)
    assert first.headers["Cache-Control"] == "public, max-age=30"
    etag = first.headers["ETag"]
    again = client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.get_data() == b""
    client.patch(url, json={"stock": 1}, headers=staff.headers)
    changed = client.get(url, headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag
    listing = client.get("/products/")
    assert (
        client.get("/products/", headers={"If-None-Match": listing.headers["ETag"]}).status_code
        == 304
    )
    # Private answers are never marked cacheable.
    assert client.get("/orders/", headers=staff.headers).headers["Cache-Control"] == "no-store"


@pytest.fixture
def redis_down(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from imangor.config import get_settings
    from imangor.redis_client import reset_redis

    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # a real, closed port
    get_settings.cache_clear()
    reset_redis()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()
    reset_redis()


def test_redis_down_reads_and_writes_still_work(
    client: Client, staff: Any, customer: Any, make_product: Any, redis_down: None
) -> None:
    product = make_product(stock=4)
    url = f"/products/{product['id']}"
    assert client.get(url).json == product
    assert client.get(url).json == product
    assert client.get("/products/?q=lamp").json["items"][0]["id"] == product["id"]
    assert client.patch(url, json={"stock": 6}, headers=staff.headers).status_code == 200
    placed = client.post(
        "/orders/",
        json={"product_id": product["id"], "quantity": 1},
        headers={**customer.headers, "Idempotency-Key": "while-redis-is-down"},
    )
    assert placed.status_code == 201
    assert client.get(url).json["stock"] == 5


def test_cache_keys_ignore_unrelated_spelling() -> None:
    from imangor.cache import make_key
    from imangor.schemas.products import ProductQuery
    from imangor.services.products import normalised

    a = ProductQuery.model_validate({"q": " walnut   lamp ", "min_price": "10", "limit": "20"})
    b = ProductQuery.model_validate({"q": "walnut lamp", "min_price": "10.00"})
    c = ProductQuery.model_validate({"q": "walnut lamp", "min_price": "10.01"})
    key = make_key("catalog", 1, "search", normalised(a))
    assert key == make_key("catalog", 1, "search", normalised(b))
    assert key != make_key("catalog", 1, "search", normalised(c))
    assert key != make_key("catalog", 2, "search", normalised(a))
    assert "walnut" not in key  # a digest, never the raw query
