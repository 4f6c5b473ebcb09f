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
