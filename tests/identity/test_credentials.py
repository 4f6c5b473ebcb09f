"""Credentials need the person, on every path (issue 13, item 3): changing one's own e-mail
or password, through whichever endpoint, takes the current password (422 `missing` on
`current_password` without it, 401 when wrong) and mails the old address through the task
queue. An admin changing another account needs neither."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import select
from werkzeug.test import Client

from imangor.db import session_scope
from imangor.models import SentEmail, User
from tests.conftest import wait_for

NEW_PASSWORD = "a brand new passphrase"


def _mail_to(address: str) -> list[SentEmail]:
    with session_scope() as session:
        return list(session.scalars(select(SentEmail).where(SentEmail.recipient == address)))


def _stored(account: Any) -> tuple[str, str | None]:
    with session_scope() as session:
        user = session.get(User, account.id)
        assert user is not None
        return user.email, user.hashed_password


def _sign_in(client: Client, email: str, password: str) -> int:
    answer = client.post("/auth/token", data={"username": email, "password": password})
    return int(answer.status_code)


def _missing_current_password(response: Any) -> None:
    assert response.status_code == 422, response.json
    assert response.json["errors"] == [
        {
            "loc": ["body", "current_password"],
            "field": "body.current_password",
            "message": response.json["errors"][0]["message"],
            "type": "missing",
        }
    ]
    assert "current_password" in response.json["detail"]


# Each way a signed-in person can change their own e-mail or password: what changes, where.
PATHS = [
    ("email", "/users/me"),
    ("email", "/users/{id}"),
    ("password", "/users/me/password"),
    ("password", "/users/{id}"),
    ("both", "/users/{id}"),
]


def _request(account: Any, what: str, where: str) -> tuple[str, str, dict[str, Any]]:
    method = "POST" if where == "/users/me/password" else "PATCH"
    url = where.replace("{id}", str(account.id))
    body: dict[str, Any] = {}
    if what in ("email", "both"):
        body["email"] = f"moved-{account.email}"
    if what in ("password", "both"):
        body["new_password" if where == "/users/me/password" else "password"] = NEW_PASSWORD
    return method, url, body


@pytest.mark.parametrize(("what", "where"), PATHS)
def test_own_credentials_need_the_current_password_and_tell_the_old_address(
    client: Client, make_account: Any, dispatcher: Any, what: str, where: str
) -> None:
    # An admin, so that /users/{id} is open to the caller; the rule is about whose account.
    me = make_account("admin")
    before = _stored(me)
    method, url, body = _request(me, what, where)

    if where != "/users/me/password":  # there the schema itself requires the field
        _missing_current_password(client.open(url, method=method, json=body, headers=me.headers))
    else:
        missing = client.open(url, method=method, json=body, headers=me.headers)
        assert missing.status_code == 422
        assert [e["field"] for e in missing.json["errors"]] == ["body.current_password"]
    wrong = client.open(
        url,
        method=method,
        json={**body, "current_password": "not the password at all"},
        headers=me.headers,
    )
    assert wrong.status_code == 401
    assert wrong.json["detail"] == "the current password is wrong"
    assert _stored(me) == before  # nothing changed, and nobody was mailed
    time.sleep(0.2)
    assert _mail_to(me.email) == []

    done = client.open(
        url, method=method, json={**body, "current_password": me.password}, headers=me.headers
    )
    assert done.status_code == 200, done.json
    email, _ = _stored(me)
    assert email == body.get("email", me.email)
    password = NEW_PASSWORD if what in ("password", "both") else me.password
    assert _sign_in(client, email, password) == 200

    # One notice, to the address the account had before: the one its owner still reads.
    notices = wait_for(lambda: _mail_to(me.email))
    assert len(notices) == 1
    notice = notices[0]
    if what in ("email", "both"):
        assert "e-mail address" in notice.subject and email in notice.body
        assert _mail_to(email) == []  # the new address (perhaps a thief's) is not the one told
    if what in ("password", "both"):
        assert "password" in notice.subject
    assert "If you did not do this" in notice.body


def test_an_admin_changes_another_account_without_a_password(
    client: Client, make_account: Any
) -> None:
    """The other account's old reset links are voided and its sessions end already; its
    owner is not the one being taken over."""
    admin, other = make_account("admin"), make_account()
    change = {"email": f"renamed-{other.email}", "password": NEW_PASSWORD}
    done = client.patch(f"/users/{other.id}", json=change, headers=admin.headers)
    assert done.status_code == 200
    assert done.json["email"] == change["email"]
    assert _sign_in(client, change["email"], NEW_PASSWORD) == 200


def test_an_admin_s_own_name_role_or_activity_needs_no_password(
    client: Client, make_account: Any
) -> None:
    """Only credentials take the password: renaming oneself does not, nor does sending one's
    unchanged address back."""
    admin = make_account("admin")
    same = {"full_name": "Renamed", "email": admin.email}
    renamed = client.patch(f"/users/{admin.id}", json=same, headers=admin.headers)
    assert renamed.status_code == 200
    assert renamed.json["full_name"] == "Renamed"


def test_a_stolen_admin_token_cannot_take_the_admin_s_account(
    client: Client, make_account: Any
) -> None:
    """The attack of issue 13: with only an admin's access token, set the admin's address
    and password to the thief's and sign in for good. Each step is refused."""
    admin = make_account("admin")
    url = f"/users/{admin.id}"
    for change in (
        {"email": "thief@example.com"},
        {"password": "the thief's passphrase"},
        {"email": "thief@example.com", "password": "the thief's passphrase"},
    ):
        assert client.patch(url, json=change, headers=admin.headers).status_code == 422
    assert _sign_in(client, "thief@example.com", "the thief's passphrase") == 401
    assert _sign_in(client, admin.email, admin.password) == 200
