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
    assert pool.size() == 2  # type: ignore[attr-defined]
    assert get_engine().pool._pre_ping  # type: ignore[attr-defined]
