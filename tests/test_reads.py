"""The cheap read path (issue 14): a GET costs one statement (the account, with the row it
reads where declared) and one EVALSHA, and every guarantee of the slower path still holds."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from werkzeug.test import Client

from imangor.db import session_scope
from imangor.models import Item, User


def _item(owner: Any, title: str = "mine") -> str:
    with session_scope() as session:
        item = Item(owner_id=owner.id, title=title)
        session.add(item)
        session.flush()
        return str(item.id)


def _change_user(account: Any, **values: Any) -> None:
    with session_scope() as session:
        user = session.get(User, account.id)
        assert user is not None
        for name, value in values.items():
            setattr(user, name, value)


def _wire_statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What pg8000 itself sends, one entry per round trip: `simple: <sql>` (BEGIN, COMMIT,
    pings), `unnamed: <sql>` (three round trips), `prepare: <sql>` (once per connection and
    statement) and `named: <sql>` (a prepared statement run: one round trip)."""
    import pg8000.core

    sent: list[str] = []
    methods = {
        "execute_simple": "simple",
        "execute_unnamed": "unnamed",
        "prepare_statement": "prepare",
        "execute_named": "named",
    }
    for method, label in methods.items():
        original = getattr(pg8000.core.CoreConnection, method)

        def spy(self: Any, *args: Any, _original: Any = original, _label: str = label) -> Any:
            text = next((a for a in reversed(args) if isinstance(a, str)), "")
            sent.append(f"{_label}: {' '.join(text.split())[:40].lower()}")
            return _original(self, *args)

        monkeypatch.setattr(pg8000.core.CoreConnection, method, spy)
    return sent


def _runs(sent: list[str]) -> list[str]:
    """The round trips a request makes once its connection has prepared its statements."""
    return [s for s in sent if not s.startswith("prepare:")]


# -- round trips -----------------------------------------------------------------------------


def test_reading_me_is_one_statement_and_no_transaction(
    client: Client, make_account: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = make_account()
    assert client.get("/users/me", headers=account.headers).status_code == 200  # warm pool
    sent = _wire_statements(monkeypatch)
    answer = client.get("/users/me", headers=account.headers)
    assert answer.status_code == 200
    assert answer.json["email"] == account.email
    assert _runs(sent) == [sent[-1]], sent
    assert sent[-1].startswith("named: select users.")


def test_reading_an_item_is_one_statement_with_the_account(
    client: Client, make_account: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = make_account()
    item_id = _item(account)
    assert client.get(f"/items/{item_id}", headers=account.headers).status_code == 200
    sent = _wire_statements(monkeypatch)
    answer = client.get(f"/items/{item_id}", headers=account.headers)
    assert answer.status_code == 200
    assert answer.json["id"] == item_id
    assert _runs(sent) == [sent[-1]], sent
    assert sent[-1].startswith("named: select users.")


def test_a_write_still_commits_its_transaction(
    client: Client, make_account: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = make_account()
    sent = _wire_statements(monkeypatch)
    created = client.post("/items/", json={"title": "x"}, headers=account.headers)
    assert created.status_code == 201
    assert sent[0] == "simple: begin transaction"
    assert sent[-1] == "simple: commit"
    assert not [s for s in sent if s.startswith("unnamed:")]  # three round trips each


# -- guarantees ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/users/me", "/items/{item}"])
def test_deactivation_and_revocation_take_effect_at_once(
    client: Client, make_account: Any, path: str
) -> None:
    account = make_account()
    url = path.format(item=_item(account))
    assert client.get(url, headers=account.headers).status_code == 200
    _change_user(account, is_active=False)
    refused = client.get(url, headers=account.headers)
    assert refused.status_code == 401
    assert refused.headers["Content-Type"] == "application/problem+json"
    _change_user(account, is_active=True)
    assert client.get(url, headers=account.headers).status_code == 200
    _change_user(account, tokens_valid_after=datetime.now(UTC) + timedelta(seconds=1))
    assert client.get(url, headers=account.headers).status_code == 401


def test_a_deleted_account_reads_nothing(client: Client, make_account: Any) -> None:
    account = make_account()
    item_id = _item(account)
    with session_scope() as session:
        session.execute(text("DELETE FROM users WHERE id = :id"), {"id": account.id})
    assert client.get(f"/items/{item_id}", headers=account.headers).status_code == 401


def test_preloaded_items_stay_owner_scoped(client: Client, make_account: Any) -> None:
    owner, other, staff = make_account(), make_account(), make_account("staff")
    item_id = _item(owner)
    assert client.get(f"/items/{item_id}", headers=other.headers).status_code == 404
    assert client.get(f"/items/{uuid.uuid4()}", headers=owner.headers).status_code == 404
    assert client.get(f"/items/{item_id}", headers=staff.headers).status_code == 200
    # A demoted staff member's old token no longer sees others' items.
    _change_user(staff, role="customer")
    assert client.get(f"/items/{item_id}", headers=staff.headers).status_code == 404
    malformed = client.get("/items/not-a-uuid", headers=owner.headers)
    assert malformed.status_code == 422


def test_a_get_cannot_write() -> None:
    from imangor.db import close_session, new_session

    session = new_session(read_only=True)
    try:
        session.add(User(email="nobody@example.com", full_name="N"))
        with pytest.raises(RuntimeError, match="read-only"):
            session.flush()
        session.rollback()
        from sqlalchemy import update

        with pytest.raises(RuntimeError, match="read-only"):
            session.execute(update(User).values(full_name="x"))
    finally:
        close_session(session)


def test_a_read_only_connection_goes_back_to_the_pool_transactional() -> None:
    """The autocommit a GET's connection ran in ends when the pool gets it back: the next
    request on that connection writes in a transaction again."""
    from imangor.db import close_session, new_session

    session = new_session(read_only=True)
    connection = session.connection().connection.driver_connection
    assert connection.autocommit
    close_session(session)
    assert not connection.autocommit
    with session_scope() as writer:
        assert writer.connection().connection.driver_connection.autocommit is False


# -- the pool's ping -------------------------------------------------------------------------


def test_a_connection_dropped_while_idle_is_replaced_not_used(
    client: Client, make_account: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pre-ping on every checkout is gone; a connection idle for longer than PING_IDLE_AFTER
    is still pinged, so one the server dropped meanwhile never reaches a request."""
    from imangor import db

    monkeypatch.setattr(db, "PING_IDLE_AFTER", 0.05)
    account = make_account()
    assert client.get("/users/me", headers=account.headers).status_code == 200
    with session_scope() as session:  # every other connection of the test database
        session.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    time.sleep(0.2)
    for _ in range(3):
        assert client.get("/users/me", headers=account.headers).status_code == 200


# -- the rate limit --------------------------------------------------------------------------


def test_the_limit_survives_a_script_flush(configured: None) -> None:
    """EVALSHA: after SCRIPT FLUSH (or a Redis restart) the script is loaded again."""
    from imangor.errors import RateLimited
    from imangor.ratelimit import hit
    from imangor.redis_client import get_redis

    assert hit("flush-test", 2, 60) == (1, 60)
    get_redis().script_flush()
    assert hit("flush-test", 2, 60)[0] == 0
    with pytest.raises(RateLimited):
        hit("flush-test", 2, 60)


def test_a_read_sends_the_script_digest_not_its_text(
    client: Client, make_account: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from imangor.redis_client import get_redis

    account = make_account()
    commands: list[str] = []
    redis = get_redis()
    original = redis.execute_command

    def spy(*args: Any, **kwargs: Any) -> Any:
        commands.append(str(args[0]))
        return original(*args, **kwargs)

    monkeypatch.setattr(redis, "execute_command", spy)
    for _ in range(2):
        answer = client.get("/users/me", headers=account.headers)
        assert answer.status_code == 200
        assert answer.headers["RateLimit-Remaining"]
    assert commands[-1] == "EVALSHA"
    assert "EVAL" not in commands


# -- remembered token claims -----------------------------------------------------------------


def test_a_remembered_token_still_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    from imangor.auth import tokens
    from imangor.errors import NotAuthenticated

    token, ttl = tokens.issue_access_token(uuid.uuid4(), "customer")
    claims = tokens.decode_access_token(token)
    assert tokens.decode_access_token(token) is claims  # remembered
    later = time.time() + ttl + 3600
    monkeypatch.setattr(tokens.time, "time", lambda: later)
    with pytest.raises(NotAuthenticated, match="expired"):
        tokens.decode_access_token(token)


def test_a_remembered_token_is_checked_again_under_a_new_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from imangor.auth import tokens
    from imangor.config import get_settings
    from imangor.errors import NotAuthenticated

    token, _ = tokens.issue_access_token(uuid.uuid4(), "customer")
    tokens.decode_access_token(token)
    monkeypatch.setenv("SECRET_KEY", uuid.uuid4().hex * 2)  # a key of its own
    get_settings.cache_clear()
    try:
        with pytest.raises(NotAuthenticated, match="invalid"):
            tokens.decode_access_token(token)
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
