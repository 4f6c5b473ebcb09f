"""Dependency outages are 503 problem documents with Retry-After, on every kind of endpoint,
and the API recovers by itself when the dependency is back.

The database and Redis are the real servers of the test session, reached through a TCP proxy
the test controls (tests/faults/proxy.py): it refuses connections (stopped), holds every byte
(frozen) or lets them through. The shared servers themselves are never stopped or frozen.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from werkzeug.test import Client

from tests.faults.proxy import TcpProxy

pytestmark = pytest.mark.xdist_group("outages")


def _apply(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    from imangor.config import get_settings
    from imangor.db import dispose_engine
    from imangor.redis_client import reset_redis

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    dispose_engine()
    reset_redis()


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """Change settings for one test; the session's come back afterwards."""
    yield lambda **env: _apply(monkeypatch, **env)
    monkeypatch.undo()
    _apply(monkeypatch)


@pytest.fixture
def database(services: dict[str, str], settings_env: Callable[..., None]) -> Iterator[TcpProxy]:
    """The session's database behind a proxy, with short timeouts (1 s socket, 0.5 s
    statements, 1 s pool wait)."""
    from sqlalchemy.engine import make_url

    url = make_url(services["DATABASE_URL"])
    with TcpProxy((url.host or "127.0.0.1", url.port or 5432)) as proxy:
        proxied = url.set(port=proxy.port).render_as_string(hide_password=False)
        settings_env(
            DATABASE_URL=proxied,
            DB_SOCKET_TIMEOUT="1",
            DB_STATEMENT_TIMEOUT_MS="500",
            DB_POOL_TIMEOUT="1",
        )
        yield proxy


@pytest.fixture
def redis(services: dict[str, str], settings_env: Callable[..., None]) -> Iterator[TcpProxy]:
    """The session's Redis behind a proxy (0.3 s socket timeout)."""
    from urllib.parse import urlsplit

    url = urlsplit(services["REDIS_URL"])
    with TcpProxy((url.hostname or "127.0.0.1", url.port or 6379)) as proxy:
        settings_env(REDIS_URL=f"redis://127.0.0.1:{proxy.port}{url.path}", REDIS_TIMEOUT="0.3")
        yield proxy


def unavailable(response: Any, what: str) -> dict[str, Any]:
    """A 503 problem document naming `what`, with a Retry-After in seconds."""
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert int(response.headers["Retry-After"]) >= 1
    body: dict[str, Any] = response.get_json(force=True)
    assert body["type"] == "https://imangor.dev/problems/service-unavailable"
    assert body["status"] == 503
    assert what in body["detail"]
    assert body["request_id"] == response.headers["X-Request-ID"]
    return body


def within(seconds: float, call: Callable[[], Any]) -> tuple[Any, float]:
    """`call()`'s result and how long it took; fails (instead of hanging) past `seconds`."""
    pool = ThreadPoolExecutor(max_workers=1)
    started = time.monotonic()
    try:
        return pool.submit(call).result(timeout=seconds), time.monotonic() - started
    finally:
        pool.shutdown(wait=False)  # a call still stuck is released when the proxy thaws


def _every_kind_of_endpoint(client: Client, account: Any) -> dict[str, Any]:
    """A public read, a sign-in, an authenticated read and an idempotent write."""
    key = {"Idempotency-Key": uuid.uuid4().hex}
    return {
        "GET /products/": client.get(f"/products/?category=c{uuid.uuid4().hex[:8]}"),
        "POST /auth/token": client.post(
            "/auth/token", data={"username": account.email, "password": account.password}
        ),
        "GET /orders/": client.get("/orders/", headers=account.headers),
        "POST /orders/": client.post(
            "/orders/",
            json={"product_id": str(uuid.uuid4()), "quantity": 1},
            headers={**account.headers, **key},
        ),
    }


def test_database_stopped_is_503_everywhere_then_recovers(
    client: Client, make_account: Any, database: TcpProxy
) -> None:
    account = make_account()
    database.stop()
    for name, response in _every_kind_of_endpoint(client, account).items():
        assert response.status_code == 503, name
        unavailable(response, "the database is unavailable")
    database.start()  # back, on the same address: no restart of anything
    answers = _every_kind_of_endpoint(client, account)
    assert {name: r.status_code for name, r in answers.items()} == {
        "GET /products/": 200,
        "POST /auth/token": 200,
        "GET /orders/": 200,
        "POST /orders/": 422,  # no such product: the database answered
    }


def test_database_frozen_is_503_within_the_socket_timeout_then_recovers(
    client: Client, make_account: Any, database: TcpProxy
) -> None:
    account = make_account()
    assert client.get("/orders/", headers=account.headers).status_code == 200  # pooled
    database.freeze()
    response, took = within(10, lambda: client.get("/orders/", headers=account.headers))
    unavailable(response, "the database is unavailable")
    assert took < 4  # the pooled connection's ping and one reconnect, 1 s each
    login, took = within(
        10,
        lambda: client.post(
            "/auth/token", data={"username": account.email, "password": account.password}
        ),
    )
    unavailable(login, "the database is unavailable")
    database.thaw()
    assert client.get("/orders/", headers=account.headers).status_code == 200


def test_a_connection_reset_mid_reply_is_never_reused(database: TcpProxy) -> None:
    """pg8000 lets a reset on the first byte of a reply through as a bare
    ConnectionResetError; the engine still discards that connection."""
    from sqlalchemy import text

    from imangor.db import get_engine

    engine = get_engine()
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
        database.freeze()  # the query below goes out, its reply never comes
        pool = ThreadPoolExecutor(max_workers=1)
        pending = pool.submit(connection.execute, text("SELECT 2"))
        time.sleep(0.3)
        database.reset()
        with pytest.raises(ConnectionResetError):
            pending.result(timeout=5)
        pool.shutdown()
        database.thaw()
        assert connection.invalidated
    with engine.connect() as fresh:
        assert fresh.execute(text("SELECT 3")).scalar() == 3


def test_no_free_connection_is_503(
    client: Client, make_account: Any, settings_env: Callable[..., None]
) -> None:
    from imangor.db import get_engine

    account = make_account()
    settings_env(DB_POOL_SIZE="1", DB_POOL_TIMEOUT="0.5")
    with get_engine().connect():  # holds the pool's only connection
        response, took = within(10, lambda: client.get("/orders/", headers=account.headers))
    unavailable(response, "the database is unavailable")
    assert took < 3
    assert client.get("/orders/", headers=account.headers).status_code == 200


def test_login_fails_closed_with_retry_after_while_redis_is_frozen_or_stopped(
    client: Client, make_account: Any, redis: TcpProxy
) -> None:
    account = make_account()

    def login() -> Any:
        form = {"username": account.email, "password": account.password}
        return client.post("/auth/token", data=form)

    assert login().status_code == 200
    redis.freeze()
    response, took = within(10, login)
    unavailable(response, "rate limiting is unavailable")
    assert took < 3
    redis.thaw()
    assert login().status_code == 200
    redis.stop()
    unavailable(login(), "rate limiting is unavailable")
    redis.start()
    assert login().status_code == 200


def test_what_counts_as_an_outage(services: dict[str, str]) -> None:
    """Classified on real errors of the real drivers: a statement timeout and a refused
    connection are outages; a syntax error or a constraint is not (a 500 or a 409)."""
    import redis as redis_py
    from sqlalchemy import create_engine, text

    from imangor.db import sqlalchemy_url
    from imangor.runtime.outages import unavailable_dependency

    def error_of(call: Callable[[], Any]) -> BaseException:
        try:
            call()
        except Exception as exc:
            return exc
        raise AssertionError("no error")

    engine = create_engine(sqlalchemy_url(services["DATABASE_URL"]))
    try:
        with engine.connect() as connection:
            connection.execute(text("SET statement_timeout = 50"))
            slow = error_of(lambda: connection.execute(text("SELECT pg_sleep(1)")))
            connection.rollback()
            typo = error_of(lambda: connection.execute(text("SELEC 1")))
            connection.rollback()
            null = error_of(lambda: connection.execute(text("SELECT 1 / 0")))
    finally:
        engine.dispose()
    closed = _closed_port()
    refused = create_engine(sqlalchemy_url(f"postgresql://postgres@127.0.0.1:{closed}/x"))
    no_server = error_of(refused.connect)
    no_redis = error_of(redis_py.Redis(port=closed, socket_connect_timeout=1).ping)
    assert unavailable_dependency(slow) == "the database"
    assert unavailable_dependency(no_server) == "the database"
    assert unavailable_dependency(no_redis) == "Redis"
    assert unavailable_dependency(TimeoutError("timed out")) == "a service it needs"
    assert unavailable_dependency(typo) is None
    assert unavailable_dependency(null) is None
    assert unavailable_dependency(KeyError("bug")) is None
    wrapped = RuntimeError("wrapped")
    wrapped.__cause__ = no_server  # raise RuntimeError(...) from no_server
    assert unavailable_dependency(wrapped) == "the database"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_bug_is_still_a_500_with_a_traceback(
    client: Client, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from imangor.services import products

    def broken(*_: Any, **__: Any) -> Any:
        raise KeyError("a bug")

    monkeypatch.setattr(products, "search_products", broken)
    response = client.get("/products/")
    assert response.status_code == 500
    assert "Retry-After" not in response.headers
    assert any(r.exc_info for r in caplog.records if r.levelname == "ERROR")


def test_the_cloud_sql_connector_path_times_out_too(
    database: TcpProxy, services: dict[str, str]
) -> None:
    """The connector hands pg8000 a socket it opened without a timeout, and waits for its
    connect without one: the creator bounds both by DB_SOCKET_TIMEOUT."""
    from google.cloud.sql.connector import pg8000 as bridge  # imported as Connector() does
    from pg8000.exceptions import InterfaceError
    from sqlalchemy.engine import make_url

    from imangor.config import Settings
    from imangor.db import _cloud_sql_creator

    class LocalConnector:
        """What `Connector.connect(instance, "pg8000", **kwargs)` does, on a local socket:
        open a socket (no timeout), hand it to pg8000 with the remaining arguments."""

        def connect(self, instance: str, driver: str, **kwargs: Any) -> Any:
            kwargs.pop("enable_iam_auth")
            sock = socket.create_connection(("127.0.0.1", database.port))
            return bridge.connect("127.0.0.1", sock, **kwargs)

    settings = Settings(
        instance_connection_name="project:region:instance",
        db_user="postgres",
        db_name=make_url(services["DATABASE_URL"]).database or "",
        db_socket_timeout=1,
        db_statement_timeout_ms=500,
    )
    connect = _cloud_sql_creator(settings, connector=LocalConnector())
    connection = connect()
    cursor = connection.cursor()
    cursor.execute("SELECT 1")
    assert cursor.fetchone() == [1]
    database.freeze()
    try:
        error, took = within(10, lambda: _error_of_query(cursor))
        assert isinstance(error, OSError | InterfaceError), error
        assert took < 3
        late, took = within(10, lambda: _error_of_query(connect))
        assert isinstance(late, TimeoutError), late
        assert took < 3
    finally:
        database.thaw()
    connection.close()


def _error_of_query(target: Any) -> BaseException | None:
    try:
        if callable(target):
            target()
        else:
            target.execute("SELECT 1")
    except Exception as exc:
        return exc
    return None


def test_a_dead_connection_the_pool_cannot_close_is_one_warning_line() -> None:
    import logging

    from pg8000.exceptions import InterfaceError

    from imangor.observability import DeadConnectionNoise

    def record(error: BaseException, name: str = "sqlalchemy.pool.impl.QueuePool") -> Any:
        try:
            raise error
        except BaseException:
            import sys

            info = sys.exc_info()
        made = logging.LogRecord(name, logging.ERROR, "x", 1, "Exception closing %s", ("c",), info)
        assert DeadConnectionNoise().filter(made)
        return made

    dead = record(InterfaceError("network error"))
    assert (dead.levelname, dead.exc_info) == ("WARNING", None)
    assert dead.getMessage() == "Exception closing c: InterfaceError: network error"
    bug = record(KeyError("bug"))
    assert (bug.levelname, bug.exc_info is not None) == ("ERROR", True)
    elsewhere = record(BrokenPipeError(), name="imangor.request")
    assert elsewhere.levelname == "ERROR"
