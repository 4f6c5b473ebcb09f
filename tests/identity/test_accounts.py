"""Accounts, passwords, roles and the admin's user management, against real services."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from werkzeug.test import Client

from imangor.db import session_scope
from imangor.models import User

STRONG = "a long enough passphrase"


def user_count() -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(User)) or 0


def register(client: Client, email: str = "ann@example.com", **extra: Any) -> Any:
    return client.post(
        "/auth/register", json={"email": email, "password": STRONG, "full_name": "Ann", **extra}
    )


def login(client: Client, email: str, password: str = STRONG) -> Any:
    return client.post("/auth/token", data={"username": email, "password": password})


def test_register_returns_the_public_user_only(client: Client) -> None:
    response = register(client)
    assert response.status_code == 201
    body = response.json
    assert body["email"] == "ann@example.com"
    assert body["role"] == "customer"
    assert not any("password" in key or "hash" in key for key in body)


def test_email_is_unique_case_insensitively_and_trimmed(client: Client) -> None:
    assert register(client, "  Ann@Example.COM ").json["email"] == "ann@example.com"
    duplicate = register(client, "ANN@example.com")
    assert duplicate.status_code == 409
    assert user_count() == 1


@pytest.mark.parametrize(
    ("password", "rule"), [("short", "at least"), ("bob@example.com", "e-mail")]
)
def test_password_policy(client: Client, password: str, rule: str) -> None:
    response = client.post(
        "/auth/register", json={"email": "bob@example.com", "password": password}
    )
    assert response.status_code == 422
    assert rule in response.json["detail"]
    assert user_count() == 0


@pytest.mark.parametrize(
    "body",
    [
        {"email": "not-an-email", "password": STRONG},
        {"email": "x@example.com", "password": STRONG, "role": "admin"},  # no self-promotion
        {"email": "x@example.com"},
        {"email": "x@example.com", "password": STRONG, "full_name": "x" * 201},
    ],
)
def test_bad_registrations_write_nothing(client: Client, body: dict[str, Any]) -> None:
    assert client.post("/auth/register", json=body).status_code == 422
    assert user_count() == 0


def test_sql_looking_input_is_just_text(client: Client) -> None:
    name = "Robert'); DROP TABLE users;--"
    response = register(client, "bobby@example.com", full_name=name)
    assert response.status_code == 201
    assert response.json["full_name"] == name
    token = login(client, "bobby@example.com").json["access_token"]
    assert client.get("/users/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_oversized_and_non_utf8_bodies_are_refused(client: Client) -> None:
    big = client.post(
        "/auth/register", data=b"{" + b" " * 2_000_000 + b"}", content_type="application/json"
    )
    assert big.status_code == 413
    garbled = client.post(
        "/auth/register", data=b'{"email": "\xff"}', content_type="application/json"
    )
    assert garbled.status_code == 400
    assert user_count() == 0


def test_me_read_update_delete(client: Client, make_account: Any) -> None:
    me = make_account()
    assert client.get("/users/me", headers=me.headers).json["email"] == me.email
    changed = client.patch("/users/me", json={"full_name": "New"}, headers=me.headers)
    assert changed.json["full_name"] == "New"
    assert client.patch("/users/me", json={"role": "admin"}, headers=me.headers).status_code == 422
    assert client.delete("/users/me", headers=me.headers).status_code == 204
    assert client.get("/users/me", headers=me.headers).status_code == 401  # deleted user's token


def test_change_password_needs_the_current_one(client: Client, make_account: Any) -> None:
    me = make_account()
    wrong = client.post(
        "/users/me/password",
        headers=me.headers,
        json={"current_password": "nope", "new_password": STRONG + "!"},
    )
    assert wrong.status_code == 401
    ok = client.post(
        "/users/me/password",
        headers=me.headers,
        json={"current_password": me.password, "new_password": STRONG + "!"},
    )
    assert ok.status_code == 200  # a fresh token pair for this session
    assert login(client, me.email, STRONG + "!").status_code == 200
    assert login(client, me.email, me.password).status_code == 401


def test_customer_gets_403_on_admin_endpoints(client: Client, make_account: Any) -> None:
    me = make_account()
    assert client.get("/users/", headers=me.headers).status_code == 403
    staff = make_account("staff")
    assert client.get("/users/", headers=staff.headers).status_code == 403


def test_admin_lists_with_filters_and_cursor(client: Client, make_account: Any) -> None:
    admin = make_account("admin")
    for n in range(5):
        make_account(email=f"user{n}@example.com")
    page = client.get("/users/?role=customer&limit=2", headers=admin.headers).json
    assert len(page["items"]) == 2
    seen = [u["email"] for u in page["items"]]
    while page["next_cursor"]:
        page = client.get(
            f"/users/?role=customer&limit=2&cursor={page['next_cursor']}", headers=admin.headers
        ).json
        seen += [u["email"] for u in page["items"]]
    assert sorted(seen) == [f"user{n}@example.com" for n in range(5)]
    by_email = client.get("/users/?email=USER3@example.com", headers=admin.headers).json
    assert [u["email"] for u in by_email["items"]] == ["user3@example.com"]


def test_filtering_on_other_columns_is_refused(client: Client, make_account: Any) -> None:
    admin = make_account("admin")
    for query in ("hashed_password=x", "full_name=Admin", "id=1"):
        assert client.get(f"/users/?{query}", headers=admin.headers).status_code == 422


def test_cursor_from_another_query_is_422(client: Client, make_account: Any) -> None:
    admin = make_account("admin")
    for _ in range(3):
        make_account()
    cursor = client.get("/users/?limit=1", headers=admin.headers).json["next_cursor"]
    other = client.get(f"/users/?role=customer&limit=1&cursor={cursor}", headers=admin.headers)
    assert other.status_code == 422
    forged = client.get("/users/?limit=1&cursor=AAAA" + cursor[4:], headers=admin.headers)
    assert forged.status_code == 422


def test_admin_manages_roles_and_activation(client: Client, make_account: Any) -> None:
    admin, someone = make_account("admin"), make_account()
    promoted = client.patch(f"/users/{someone.id}", json={"role": "staff"}, headers=admin.headers)
    assert promoted.json["role"] == "staff"
    disabled = client.patch(
        f"/users/{someone.id}", json={"is_active": False}, headers=admin.headers
    )
    assert disabled.json["is_active"] is False
    assert client.get("/users/me", headers=someone.headers).status_code == 401
    assert login(client, someone.email, someone.password).status_code == 401
    created = client.post(
        "/users/",
        headers=admin.headers,
        json={"email": "new@example.com", "password": STRONG, "role": "staff"},
    )
    assert created.status_code == 201
    assert client.get(f"/users/{created.json['id']}", headers=admin.headers).status_code == 200
    assert client.get("/users/not-a-uuid", headers=admin.headers).status_code == 422


def test_the_last_admin_cannot_be_demoted_or_deleted(client: Client, make_account: Any) -> None:
    admin = make_account("admin")
    assert (
        client.patch(
            f"/users/{admin.id}", json={"role": "customer"}, headers=admin.headers
        ).status_code
        == 409
    )
    assert (
        client.patch(
            f"/users/{admin.id}", json={"is_active": False}, headers=admin.headers
        ).status_code
        == 409
    )
    assert client.delete(f"/users/{admin.id}", headers=admin.headers).status_code == 409
    assert client.delete("/users/me", headers=admin.headers).status_code == 409
    second = make_account("admin")
    assert client.delete(f"/users/{admin.id}", headers=second.headers).status_code == 204


def test_first_admin_is_created_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from imangor.config import get_settings
    from imangor.services.bootstrap import ensure_first_admin

    monkeypatch.setenv("FIRST_ADMIN_EMAIL", "Root@Example.com")
    monkeypatch.setenv("FIRST_ADMIN_PASSWORD", STRONG)
    get_settings.cache_clear()
    try:
        assert ensure_first_admin() is True
        assert ensure_first_admin() is False
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    with session_scope() as session:
        admins = session.scalars(select(User).where(User.role == "admin")).all()
    assert [a.email for a in admins] == ["root@example.com"]


SQL_LIKE = ["' OR '1'='1", "admin'--", "1; DROP TABLE users;--", "\\x00' UNION SELECT 1--"]


@pytest.mark.parametrize("text", SQL_LIKE)
def test_sql_looking_input_in_every_string_field(
    client: Client, make_account: Any, text: str
) -> None:
    admin = make_account("admin")
    before = user_count()
    assert client.post("/auth/token", data={"username": text, "password": text}).status_code == 401
    assert client.post("/auth/token", json={"email": text, "password": text}).status_code == 401
    assert client.post("/auth/refresh", json={"refresh_token": text}).status_code == 401
    assert (
        client.post(
            "/auth/reset-password", json={"token": text, "new_password": STRONG}
        ).status_code
        == 422
    )
    assert client.post("/auth/password-recovery", json={"email": text}).status_code == 422
    listed = client.get("/users/", query_string={"email": text}, headers=admin.headers)
    assert listed.status_code == 200
    assert listed.json["items"] == []
    key = client.post(
        "/api-keys/", json={"name": text, "scopes": ["users:read"]}, headers=admin.headers
    )
    assert key.json["name"] == text
    renamed = client.patch("/users/me", json={"full_name": text}, headers=admin.headers)
    assert renamed.json["full_name"] == text
    assert (
        client.post("/auth/register", json={"email": text, "password": STRONG}).status_code == 422
    )
    assert user_count() == before


def test_hashes_run_on_a_bounded_pool_not_on_request_threads(
    client: Client, make_account: Any
) -> None:
    """Argon2's 19 MiB buffer stays with the threads that hash: only MAX_CONCURRENT_HASHES
    threads ever do, however many requests sign in at once."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from imangor.config import get_settings

    account = make_account()

    def sign_in(_: int) -> int:
        return int(
            client.post(
                "/auth/token", data={"username": account.email, "password": account.password}
            ).status_code
        )

    with ThreadPoolExecutor(8) as requests_:
        statuses = list(requests_.map(sign_in, range(8)))
    assert statuses == [200] * 8
    hashing = [t for t in threading.enumerate() if t.name.startswith("argon2")]
    assert 0 < len(hashing) <= get_settings().max_concurrent_hashes


def test_nul_characters_in_public_inputs_are_422(client: Client) -> None:
    assert client.get("/products/?q=a%00b").status_code == 422
    assert (
        client.post(
            "/auth/token", data={"username": "a\x00@x.com", "password": "x" * 12}
        ).status_code
        == 422
    )
    assert register(client, "nul@example.com", full_name="a\x00b").status_code == 422
    assert user_count() == 0


def test_a_reset_also_revokes_api_keys(client: Client, make_account: Any) -> None:
    """A key minted by whoever held the account before the reset dies with the reset."""
    from imangor.db import session_scope
    from imangor.services.users import revoke_all_sessions

    me = make_account()
    secret = client.post(
        "/api-keys/", json={"name": "x", "scopes": ["users:read"]}, headers=me.headers
    ).json["secret"]
    with session_scope() as session:
        revoke_all_sessions(session, me.id)
    assert client.get("/users/me", headers={"X-API-Key": secret}).status_code == 401


def test_the_sign_up_limit_is_a_setting_and_refused_attempts_count(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGNUP_LIMIT, read at each request; a 422 counts like a success (the limit also caps
    how fast a caller can probe which addresses are taken)."""
    from imangor.config import get_settings

    monkeypatch.setenv("SIGNUP_LIMIT", "2/3600")
    get_settings.cache_clear()
    try:
        bad = client.post("/auth/register", json={"email": "x@example.com", "password": "short"})
        assert bad.status_code == 422
        assert bad.headers["RateLimit-Limit"] == "2"
        assert register(client, "ok@example.com").status_code == 201
        refused = register(client, "late@example.com")
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) > 0
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
