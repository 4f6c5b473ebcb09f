"""API keys, password recovery through the background task, Google sign-in, brute force."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from sqlalchemy import select
from werkzeug.test import Client

from imangor.config import get_settings
from imangor.db import session_scope
from imangor.models import ApiKey, SentEmail
from tests.conftest import wait_for

CLIENT_ID = "imangor-web.apps.googleusercontent.com"


# -- API keys -----------------------------------------------------------------------------------


def test_api_key_secret_is_shown_once_and_stored_hashed(client: Client, make_account: Any) -> None:
    me = make_account()
    created = client.post(
        "/api-keys/", json={"name": "ci", "scopes": ["users:read"]}, headers=me.headers
    )
    assert created.status_code == 201
    secret = created.json["secret"]
    assert secret.startswith(created.json["prefix"] + "_")
    assert created.json["prefix"].startswith("imk_")
    listed = client.get("/api-keys/", headers=me.headers).json["items"]
    assert [k["name"] for k in listed] == ["ci"]
    assert "secret" not in listed[0]
    with session_scope() as session:
        stored = session.scalars(select(ApiKey)).one()
        assert secret.split("_")[-1] not in stored.secret_hash


def test_api_key_acts_as_owner_within_its_scopes(client: Client, make_account: Any) -> None:
    me = make_account()
    secret = client.post(
        "/api-keys/", json={"name": "ro", "scopes": ["users:read"]}, headers=me.headers
    ).json["secret"]
    key = {"X-API-Key": secret}
    assert client.get("/users/me", headers=key).json["email"] == me.email
    denied = client.patch("/users/me", json={"full_name": "x"}, headers=key)
    assert denied.status_code == 403
    assert "users:write" in denied.json["detail"]
    # Keys never manage keys, whatever their scopes.
    assert (
        client.post(
            "/api-keys/", json={"name": "x", "scopes": ["users:read"]}, headers=key
        ).status_code
        == 403
    )


def test_api_key_never_exceeds_its_owner_role(client: Client, make_account: Any) -> None:
    me = make_account()
    secret = client.post(
        "/api-keys/", json={"name": "all", "scopes": ["users:read"]}, headers=me.headers
    ).json["secret"]
    assert client.get("/users/", headers={"X-API-Key": secret}).status_code == 403


def test_unknown_scopes_and_revocation(client: Client, make_account: Any) -> None:
    me, other = make_account(), make_account()
    bad = client.post(
        "/api-keys/", json={"name": "x", "scopes": ["everything"]}, headers=me.headers
    )
    assert bad.status_code == 422
    made = client.post(
        "/api-keys/", json={"name": "x", "scopes": ["users:read"]}, headers=me.headers
    ).json
    assert client.delete(f"/api-keys/{made['id']}", headers=other.headers).status_code == 404
    assert client.delete(f"/api-keys/{made['id']}", headers=me.headers).status_code == 204
    assert client.get("/users/me", headers={"X-API-Key": made["secret"]}).status_code == 401
    assert client.get("/users/me", headers={"X-API-Key": "imk_nope_nope"}).status_code == 401


# -- password recovery ---------------------------------------------------------------------------


def reset_token(body: str) -> str:
    """The token a reset mail carries: in the page link, or in the API request it shows."""
    if "?token=" in body:
        return body.split("?token=")[1].split()[0]
    request = next(line for line in body.splitlines() if line.startswith('{"token"'))
    token: str = json.loads(request)["token"]
    return token


def _mail_to(email: str) -> list[SentEmail]:
    with session_scope() as session:
        return list(session.scalars(select(SentEmail).where(SentEmail.recipient == email)))


def test_a_configured_reset_page_gets_the_token_in_its_link(
    client: Client, make_account: Any, dispatcher: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from imangor.config import get_settings

    monkeypatch.setenv("PASSWORD_RESET_URL", "https://app.example.com/reset")
    get_settings.cache_clear()
    try:
        account = make_account()
        assert client.post("/auth/password-recovery", json={"email": account.email}).status_code
        body = wait_for(lambda: _mail_to(account.email))[0].body
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    link = next(line for line in body.splitlines() if line.startswith("https://"))
    assert link.startswith("https://app.example.com/reset?token=")
    token = reset_token(body)
    reset = client.post(
        "/auth/reset-password", json={"token": token, "new_password": "brand new passphrase"}
    )
    assert reset.status_code == 204


def test_recovery_answers_202_either_way_and_mails_real_users(
    client: Client, make_account: Any, dispatcher: Any
) -> None:
    account = make_account()
    for email in (account.email, "nobody@example.com"):
        response = client.post("/auth/password-recovery", json={"email": email})
        assert response.status_code == 202
        assert response.json["detail"].startswith("if the account exists")
    mails = wait_for(lambda: _mail_to(account.email))
    # No reset page configured (the default): the mail shows the API's own request.
    assert "POST /auth/reset-password" in mails[0].body and "?token=" not in mails[0].body
    token = reset_token(mails[0].body)
    old_session = client.post(
        "/auth/token", data={"username": account.email, "password": account.password}
    ).json
    reset = client.post(
        "/auth/reset-password", json={"token": token, "new_password": "brand new passphrase"}
    )
    assert reset.status_code == 204
    # Single use, and every session ends.
    again = client.post(
        "/auth/reset-password", json={"token": token, "new_password": "yet another passphrase"}
    )
    assert again.status_code == 422
    assert client.get("/users/me", headers=account.headers).status_code == 401
    assert (
        client.post(
            "/auth/refresh", json={"refresh_token": old_session["refresh_token"]}
        ).status_code
        == 401
    )
    assert (
        client.post(
            "/auth/token", data={"username": account.email, "password": "brand new passphrase"}
        ).status_code
        == 200
    )
    time.sleep(0.3)  # the unknown address's task has run by now, and mailed nobody
    assert _mail_to("nobody@example.com") == []


def _reset_link(email: str) -> str:
    from imangor.services.sessions import create_reset_token

    with session_scope() as session:
        made = create_reset_token(session, email)
        assert made is not None
        return made[1]


def _reset(client: Client, token: str) -> int:
    body = {"token": token, "new_password": "an attacker's passphrase"}
    return int(client.post("/auth/reset-password", json=body).status_code)


def test_reset_links_die_when_the_password_or_the_address_changes(
    client: Client, make_account: Any
) -> None:
    # A reset ends the links sent before it.
    account = make_account()
    first, second = _reset_link(account.email), _reset_link(account.email)
    assert _reset(client, first) == 204
    assert _reset(client, second) == 422
    # So does a password change.
    account = make_account()
    link = _reset_link(account.email)
    change = {"current_password": account.password, "new_password": "a new passphrase here"}
    assert (
        client.post("/users/me/password", json=change, headers=account.headers).status_code == 200
    )
    assert _reset(client, link) == 422
    # And a new address: a link in the old mailbox no longer sets a password.
    account = make_account()
    link = _reset_link(account.email)
    moved = {"email": f"moved-{account.email}", "current_password": account.password}
    assert client.patch("/users/me", json=moved, headers=account.headers).status_code == 200
    assert _reset(client, link) == 422


def test_reset_with_a_made_up_token_is_422(client: Client) -> None:
    response = client.post(
        "/auth/reset-password", json={"token": "made-up", "new_password": "brand new passphrase"}
    )
    assert response.status_code == 422


# -- Google sign-in -------------------------------------------------------------------------------


def _google_token(signer: Any, email: str, **claims: Any) -> str:
    token: str = signer.sign(claims.pop("aud", CLIENT_ID), email, **claims)
    return token


def test_google_sign_in_creates_then_links(client: Client, signer: Any, make_account: Any) -> None:
    first = client.post(
        "/auth/google", json={"id_token": _google_token(signer, "g@example.com", name="Gee")}
    )
    assert first.status_code == 200
    me = client.get(
        "/users/me", headers={"Authorization": f"Bearer {first.json['access_token']}"}
    ).json
    assert (me["email"], me["full_name"], me["email_verified"]) == ("g@example.com", "Gee", True)
    existing = make_account()
    linked = client.post("/auth/google", json={"id_token": _google_token(signer, existing.email)})
    token = linked.json["access_token"]
    assert client.get("/users/me", headers={"Authorization": f"Bearer {token}"}).json["id"] == (
        str(existing.id)
    )


@pytest.mark.parametrize("bad", ["audience", "issuer", "expired", "unverified", "garbage"])
def test_bad_google_tokens_are_401(client: Client, signer: Any, bad: str) -> None:
    tokens = {
        "audience": lambda: _google_token(signer, "g@example.com", aud="someone-else"),
        "issuer": lambda: _google_token(signer, "g@example.com", iss="https://evil.example"),
        "expired": lambda: _google_token(signer, "g@example.com", ttl=-120),
        "unverified": lambda: _google_token(signer, "g@example.com", email_verified=False),
        "garbage": lambda: "abc.def.ghi",
    }
    response = client.post("/auth/google", json={"id_token": tokens[bad]()})
    assert response.status_code == 401


# -- brute force ---------------------------------------------------------------------------------


def test_login_is_limited_per_account(
    client: Client, make_account: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOGIN_LIMIT_PER_ACCOUNT", "3/60")
    get_settings.cache_clear()
    try:
        account = make_account()
        for _ in range(3):
            client.post("/auth/token", data={"username": account.email, "password": "wrong" * 3})
        blocked = client.post(
            "/auth/token", data={"username": account.email, "password": account.password}
        )
        assert blocked.status_code == 429
        assert 0 < int(blocked.headers["Retry-After"]) <= 60
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


def test_recovery_is_limited_per_ip(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECOVERY_LIMIT_PER_IP", "2/3600")
    get_settings.cache_clear()
    try:
        statuses = [
            client.post("/auth/password-recovery", json={"email": f"u{n}@example.com"}).status_code
            for n in range(3)
        ]
        assert statuses == [202, 202, 429]
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


@pytest.mark.parametrize(("fail_closed", "expected"), [("true", 503), ("false", 200)])
def test_login_when_redis_is_down(
    client: Client,
    make_account: Any,
    monkeypatch: pytest.MonkeyPatch,
    fail_closed: str,
    expected: int,
) -> None:
    from imangor.redis_client import reset_redis

    account = make_account()
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # a real, closed port
    monkeypatch.setenv("LOGIN_FAIL_CLOSED", fail_closed)
    get_settings.cache_clear()
    reset_redis()
    try:
        response = client.post(
            "/auth/token", data={"username": account.email, "password": account.password}
        )
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
        reset_redis()
    assert response.status_code == expected


@pytest.mark.parametrize(("fail_closed", "expected"), [("true", 503), ("false", 202)])
def test_recovery_when_redis_is_down(
    client: Client, monkeypatch: pytest.MonkeyPatch, fail_closed: str, expected: int
) -> None:
    from imangor.redis_client import reset_redis

    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # a real, closed port
    monkeypatch.setenv("RECOVERY_FAIL_CLOSED", fail_closed)
    get_settings.cache_clear()
    reset_redis()
    try:
        response = client.post("/auth/password-recovery", json={"email": "u@example.com"})
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
        reset_redis()
    assert response.status_code == expected
    if expected == 503:
        assert int(response.headers["Retry-After"]) >= 1


def test_changing_the_email_takes_the_password_and_tells_the_old_address(
    client: Client, make_account: Any
) -> None:
    from imangor.models import Job

    me = make_account()
    new = {"email": "moved@example.com"}
    assert client.patch("/users/me", json=new, headers=me.headers).status_code == 422
    wrong = client.patch(
        "/users/me", json={**new, "current_password": "not it at all"}, headers=me.headers
    )
    assert wrong.status_code == 401
    moved = client.patch(
        "/users/me", json={**new, "current_password": me.password}, headers=me.headers
    )
    assert moved.status_code == 200
    assert moved.json["email"] == "moved@example.com"
    with session_scope() as session:
        notices = [j.payload for j in session.scalars(select(Job).where(Job.kind == "send_email"))]
    assert [n["to"] for n in notices] == [me.email]


def _users_key(client: Client, account: Any) -> dict[str, str]:
    """Headers with a new API key of `account` holding users:read and users:write."""
    secret = client.post(
        "/api-keys/",
        json={"name": "users", "scopes": ["users:read", "users:write"]},
        headers=account.headers,
    ).json["secret"]
    return {"X-API-Key": secret}


def test_api_keys_cannot_take_the_account_away(client: Client, make_account: Any) -> None:
    me = make_account()
    key = _users_key(client, me)
    assert client.patch("/users/me", json={"full_name": "ok"}, headers=key).status_code == 200
    email = client.patch(
        "/users/me",
        headers=key,
        json={"email": "thief@example.com", "current_password": me.password},
    )
    assert email.status_code == 403
    assert client.delete("/users/me", headers=key).status_code == 403
    password = client.post(
        "/users/me/password",
        headers=key,
        json={"current_password": me.password, "new_password": "a thief's passphrase"},
    )
    assert password.status_code == 403


def test_an_admin_key_cannot_set_credentials_or_roles(client: Client, make_account: Any) -> None:
    """An admin's key with users:read and users:write still lists accounts, but it cannot
    give any account (its owner's, another admin's, a new one) a password, an address or a
    role it chooses: that would sign the key's holder in with every scope."""
    admin, other = make_account("admin"), make_account("admin")
    key = _users_key(client, admin)
    assert client.get("/users/", headers=key).status_code == 200
    for target in (admin, other):
        for change in ({"email": "thief@example.com"}, {"password": "a thief's passphrase"}):
            url = f"/users/{target.id}"
            assert client.patch(url, json=change, headers=key).status_code == 403
    new = {"email": "minted@example.com", "password": "a thief's passphrase", "role": "admin"}
    assert client.post("/users/", json=new, headers=key).status_code == 403
    assert client.delete(f"/users/{other.id}", headers=key).status_code == 403
    # Signed in, the admin still manages accounts.
    renamed = client.patch(
        f"/users/{other.id}", json={"email": "renamed@example.com"}, headers=admin.headers
    )
    assert renamed.status_code == 200
    assert renamed.json["email_verified"] is False  # nobody has proved the new address
