"""The catalog cache never outlives a committed write by more than the stated bound
(`imangor.cache.STALE_BOUND_SECONDS` after Redis answers again), even when Redis stalls while
the write's version bump is due.

Each test starts a Redis server of its own (`EmbeddedRedis`) and freezes it with SIGSTOP:
never the shared server other suites use.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import Client

pytestmark = pytest.mark.slow


class FrozenRedis:
    """A Redis server this test owns, which it can pause (SIGSTOP) and resume (SIGCONT)."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.paused = False

    def pause(self) -> None:
        os.kill(self.server.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        os.kill(self.server.pid, signal.SIGCONT)
        self.paused = False


@pytest.fixture
def own_redis(server_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FrozenRedis]:
    from imangor import cache
    from imangor.config import get_settings
    from imangor.redis_client import reset_redis
    from infra.local.embedded import EmbeddedRedis

    cache.forget_pending_bumps()  # an earlier test's missed bumps, aimed at its own server
    server = EmbeddedRedis(server_dir / "redis")
    url = server.start()
    frozen = FrozenRedis(server)
    monkeypatch.setenv("REDIS_URL", url)
    monkeypatch.setenv("RATE_LIMIT_DEFAULT", "100000/60")  # the polling reads below
    get_settings.cache_clear()
    reset_redis()
    try:
        yield frozen
    finally:
        if frozen.paused:
            frozen.resume()
        cache.forget_pending_bumps()
        monkeypatch.undo()
        get_settings.cache_clear()
        reset_redis()
        server.stop()


def change_price(product_id: str, price: str) -> float:
    """A committed product write made the way an endpoint makes it (the service in a
    session scope, bump after commit), without the HTTP request's rate limit, which needs
    Redis before the write. Returns when the commit (and its bump attempt) is over."""
    import uuid

    from imangor.db import session_scope
    from imangor.schemas.products import ProductPatch
    from imangor.services.products import update_product

    with session_scope() as session:
        update_product(session, uuid.UUID(product_id), ProductPatch(price=price))
    return time.monotonic()


def price_of(client: Client, product_id: str) -> str:
    response = client.get(f"/products/{product_id}")
    assert response.status_code == 200, response.get_data(as_text=True)
    price: str = response.json["price"]
    return price


def first_fresh_read(client: Client, product_id: str, price: str, within: float) -> float:
    """Seconds until GET /products/{id} answers `price`, polling; fails after `within`."""
    began = time.monotonic()
    while time.monotonic() - began < within:
        if price_of(client, product_id) == price:
            return time.monotonic() - began
        time.sleep(0.05)
    raise AssertionError(f"still stale {within} s after Redis resumed")


def cached_products(redis_url: str) -> int:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        return len(list(client.scan_iter("cache:catalog:*:product:*")))
    finally:
        client.close()


def test_a_bump_missed_while_redis_is_frozen_lands_within_the_bound(
    client: Client, make_product: Any, own_redis: FrozenRedis
) -> None:
    from imangor import cache
    from imangor.config import get_settings
    from imangor.redis_client import reset_redis

    product = make_product(price="10.00")
    assert price_of(client, product["id"]) == "10.00"  # now cached
    assert cached_products(get_settings().redis_url or "") == 1
    assert price_of(client, product["id"]) == "10.00"  # a hit

    # The writer connects afresh (a new instance, or its connection dropped while idle): its
    # handshake times out, so the bump is never sent. (A command already written to a live
    # connection would sit in the frozen server's socket and run when it resumes.)
    reset_redis()
    own_redis.pause()
    change_price(product["id"], "20.00")  # its bump times out: Redis is frozen
    assert cache.pending_bumps() == {cache.CATALOG}
    time.sleep(2.0)  # the stall goes on after the commit
    own_redis.resume()

    took = first_fresh_read(client, product["id"], "20.00", within=cache.STALE_BOUND_SECONDS)
    print(f"fresh {took:.2f} s after Redis resumed")
    assert took <= cache.STALE_BOUND_SECONDS
    # and it stays fresh: the stale entry is unreachable, not merely skipped once
    for _ in range(5):
        assert price_of(client, product["id"]) == "20.00"
    assert cache.pending_bumps() == set()


def test_the_durable_bump_task_lands_when_the_writer_cannot(
    client: Client,
    make_product: Any,
    own_redis: FrozenRedis,
    dispatcher: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The writing instance's own retries stop (as when Cloud Run takes its CPU or the
    instance goes away): the `bump_cache` task, retried by Cloud Tasks' backoff, lands it."""
    from imangor import cache
    from imangor.db import session_scope
    from imangor.models import Job
    from imangor.redis_client import reset_redis
    from tests.conftest import wait_for

    monkeypatch.setattr(cache, "_retry_in_background", lambda *args: None)
    product = make_product(price="10.00")
    assert price_of(client, product["id"]) == "10.00"

    reset_redis()
    own_redis.pause()
    change_price(product["id"], "30.00")
    time.sleep(2.0)  # the task's first deliveries fail: Redis is still frozen

    def bump_jobs() -> list[tuple[str, int]]:
        from sqlalchemy import select

        with session_scope() as session:
            rows = session.execute(select(Job.status, Job.attempts).where(Job.kind == "bump_cache"))
            return [(row.status, row.attempts) for row in rows]

    (status, attempts), *others = wait_for(bump_jobs)
    assert not others
    assert status == "failed" or attempts >= 1
    own_redis.resume()

    took = first_fresh_read(client, product["id"], "30.00", within=cache.STALE_BOUND_SECONDS)
    print(f"fresh {took:.2f} s after Redis resumed")
    assert took <= cache.STALE_BOUND_SECONDS
    assert wait_for(lambda: bump_jobs() == [("succeeded", bump_jobs()[0][1])])


def test_a_write_while_redis_answers_enqueues_nothing(
    client: Client, make_product: Any, own_redis: FrozenRedis
) -> None:
    """The durable path costs nothing while bumps land: no job, no pending bump."""
    from sqlalchemy import func, select

    from imangor import cache
    from imangor.db import session_scope
    from imangor.models import Job

    product = make_product(price="10.00")
    change_price(product["id"], "11.00")
    assert price_of(client, product["id"]) == "11.00"
    assert cache.pending_bumps() == set()
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 0
