"""One session per request: committed on success, rolled back on any error."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from imangor.db import session_scope
from imangor.models import User


def _count() -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(User)) or 0


def test_session_scope_commits_on_success() -> None:
    with session_scope() as session:
        session.add(User(email="a@example.com", full_name="A"))
    assert _count() == 1


def test_session_scope_rolls_back_on_error() -> None:
    def half_written() -> None:
        with session_scope() as session:
            session.add(User(email="b@example.com", full_name="B"))
            session.flush()  # the row reached the database...
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        half_written()
    assert _count() == 0  # ...and is gone


def test_pool_is_small_and_pre_pings() -> None:
    from imangor.db import get_engine

    pool = get_engine().pool
    assert pool.size() == 4  # type: ignore[attr-defined]  # one connection per request thread
    assert pool._max_overflow == 0  # type: ignore[attr-defined]  # overflow = churn
    assert get_engine().pool._pre_ping  # type: ignore[attr-defined]


def test_outbox_push_waits_until_the_request_connection_is_back() -> None:
    """With every pooled connection held by a request that enqueues, each push still runs:
    it takes a connection only after its own session has returned one (no pool deadlock)."""
    import threading

    from imangor.db import get_engine
    from imangor.models import Job, OutboxEntry
    from imangor.schemas.tasks import SendEmail
    from imangor.tasks import enqueue

    size = get_engine().pool.size()  # type: ignore[attr-defined]
    barrier = threading.Barrier(size)
    errors: list[BaseException] = []

    def request() -> None:
        try:
            with session_scope() as session:
                session.execute(select(1))  # hold a connection...
                enqueue(session, SendEmail(to="a@example.com", subject="s", body="b"))
                barrier.wait(timeout=10)  # ...while every other thread holds one too
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=request) for _ in range(size)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == size
        assert session.scalar(select(func.count()).select_from(OutboxEntry)) == 0  # all pushed


@pytest.mark.parametrize(
    ("url", "mode"),
    [
        ("postgresql://u@127.0.0.1:5432/db", "disable"),  # loopback: TLS protects nothing
        ("postgresql://u@localhost/db", "disable"),
        ("postgresql://u@db.internal:5432/db", "prefer"),  # libpq's and pg8000's default
        ("postgresql://u@127.0.0.1/db?sslmode=require", "require"),
        ("postgresql://u@db.internal/db?sslmode=verify-full", "verify-full"),
    ],
)
def test_sslmode_is_read_as_libpq_reads_it(url: str, mode: str) -> None:
    from imangor.db import sqlalchemy_url, ssl_mode

    assert ssl_mode(url) == mode
    assert "sslmode" not in sqlalchemy_url(url).query  # pg8000 would refuse the keyword


def test_sslmode_contexts() -> None:
    import ssl

    from imangor.db import ssl_connect_args

    assert ssl_connect_args("postgresql://u@127.0.0.1/db") == {"ssl_context": False}
    assert ssl_connect_args("postgresql://u@db.internal/db") == {}  # pg8000's own prefer
    required = ssl_connect_args("postgresql://u@h/db?sslmode=require")["ssl_context"]
    assert required.verify_mode == ssl.CERT_NONE  # encrypted, not authenticated
    verified = ssl_connect_args("postgresql://u@h/db?sslmode=verify-full")["ssl_context"]
    assert verified.verify_mode == ssl.CERT_REQUIRED
    assert verified.check_hostname is True
    by_ca = ssl_connect_args("postgresql://u@h/db?sslmode=verify-ca")["ssl_context"]
    assert (by_ca.verify_mode, by_ca.check_hostname) == (ssl.CERT_REQUIRED, False)


def test_an_unknown_sslmode_is_a_start_up_error() -> None:
    from pydantic import ValidationError

    from imangor.config import Settings

    with pytest.raises(ValidationError, match="sslmode must be one of"):
        Settings(database_url="postgresql://u@h/db?sslmode=sometimes")


def test_sslmode_require_refuses_a_server_without_tls(services: dict[str, str]) -> None:
    """The local server has ssl = off: `require` must fail rather than fall back to plain
    text, while the default (disable on loopback) connects."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import InterfaceError

    from imangor.db import sqlalchemy_url, ssl_connect_args

    url = services["DATABASE_URL"]
    with create_engine(sqlalchemy_url(url), connect_args=ssl_connect_args(url)).connect() as c:
        assert c.scalar(text("SELECT 1")) == 1
        if c.scalar(text("SHOW ssl")) == "on":
            pytest.skip("this PostgreSQL accepts TLS; the refusal cannot be shown here")
    required = f"{url}{'&' if '?' in url else '?'}sslmode=require"
    engine = create_engine(sqlalchemy_url(required), connect_args=ssl_connect_args(required))
    with pytest.raises(InterfaceError, match="refuses SSL"):
        engine.connect()
