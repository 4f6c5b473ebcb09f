"""Access and refresh tokens, and every forgery we know of, against real services."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from werkzeug.test import Client

from imangor.config import get_settings

SECRET = "test-secret-key-that-is-long-enough-0123456789"


def login(client: Client, account: Any) -> dict[str, Any]:
    response = client.post(
        "/auth/token", data={"username": account.email, "password": account.password}
    )
    assert response.status_code == 200, response.json
    return response.json  # type: ignore[no-any-return]


def me(client: Client, token: str) -> Any:
    return client.get("/users/me", headers={"Authorization": f"Bearer {token}"})


def claims_for(user_id: uuid.UUID, **overrides: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    claims = {
        "sub": str(user_id),
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(minutes=5),
        "iss": "imangor",
        "aud": "imangor-api",
        "jti": uuid.uuid4().hex,
        "roles": ["customer"],
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def test_token_form_and_json_give_a_full_pair(client: Client, make_account: Any) -> None:
    account = make_account()
    form = login(client, account)
    assert form["token_type"] == "bearer"
    assert form["expires_in"] == 15 * 60
    as_json = client.post(
        "/auth/token", json={"email": account.email, "password": account.password}
    )
    assert as_json.status_code == 200
    claims = jwt.decode(form["access_token"], SECRET, algorithms=["HS256"], audience="imangor-api")
    assert {"sub", "iat", "nbf", "exp", "iss", "aud", "jti", "roles"} <= claims.keys()
    assert claims["sub"] == str(account.id)
    assert claims["roles"] == ["customer"]
    assert me(client, form["access_token"]).status_code == 200


def test_wrong_password_and_unknown_user_look_the_same(client: Client, make_account: Any) -> None:
    account = make_account()
    wrong = client.post("/auth/token", data={"username": account.email, "password": "x" * 12})
    unknown = client.post(
        "/auth/token", data={"username": "ghost@example.com", "password": "x" * 12}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json["detail"] == unknown.json["detail"]


def test_unknown_user_costs_a_real_hash(
    client: Client, make_account: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No enumeration by timing: a missing account spends the same Argon2 work as a wrong
    password. Checked by what is hashed, not by a clock: each sign-in verifies against exactly
    one Argon2id hash, and both hashes carry the same cost parameters (memory, time, lanes)."""
    from pwdlib.hashers.argon2 import Argon2Hasher

    account = make_account()
    verified: list[str] = []
    real_verify = Argon2Hasher.verify

    def spy(self: Argon2Hasher, password: Any, hash: Any) -> bool:
        verified.append(hash if isinstance(hash, str) else hash.decode())
        return real_verify(self, password, hash)

    monkeypatch.setattr(Argon2Hasher, "verify", spy)

    def costs(username: str) -> str:
        verified.clear()
        answer = client.post("/auth/token", data={"username": username, "password": "x" * 12})
        assert answer.status_code == 401
        assert len(verified) == 1, verified
        algorithm, version, parameters = verified[0].split("$")[1:4]
        assert algorithm == "argon2id"
        return f"{version}${parameters}"

    assert costs("ghost@example.com") == costs(account.email)


def test_bcrypt_hashes_are_accepted_and_upgraded(client: Client, make_account: Any) -> None:
    import bcrypt

    from imangor.db import session_scope
    from imangor.models import User

    account = make_account()
    with session_scope() as session:
        user = session.get(User, account.id)
        assert user is not None
        user.hashed_password = bcrypt.hashpw(account.password.encode(), bcrypt.gensalt(4)).decode()
    assert login(client, account)["access_token"]
    with session_scope() as session:
        user = session.get(User, account.id)
        assert user is not None
        assert user.hashed_password is not None
        assert user.hashed_password.startswith("$argon2id$")


@pytest.mark.parametrize(
    "attack",
    [
        "alg_none",
        "wrong_aud",
        "wrong_iss",
        "expired",
        "not_yet_valid",
        "tampered",
        "wrong_key",
        "missing_jti",
        "garbage",
    ],
)
def test_forged_tokens_are_401(client: Client, make_account: Any, attack: str) -> None:
    account = make_account()
    uid = account.id
    later = datetime.now(UTC) + timedelta(minutes=10)
    tokens = {
        "alg_none": lambda: jwt.encode(claims_for(uid), None, algorithm="none"),
        "wrong_aud": lambda: jwt.encode(claims_for(uid, aud="other"), SECRET, "HS256"),
        "wrong_iss": lambda: jwt.encode(claims_for(uid, iss="evil"), SECRET, "HS256"),
        "expired": lambda: jwt.encode(
            claims_for(uid, exp=datetime.now(UTC) - timedelta(minutes=1)), SECRET, "HS256"
        ),
        "not_yet_valid": lambda: jwt.encode(claims_for(uid, nbf=later), SECRET, "HS256"),
        "tampered": lambda: _tamper(account.token),
        "wrong_key": lambda: jwt.encode(
            claims_for(uid), "another-secret-0123456789abcdef!", "HS256"
        ),
        "missing_jti": lambda: jwt.encode(claims_for(uid, jti=None), SECRET, "HS256"),
        "garbage": lambda: "not.a.token",
    }
    response = me(client, tokens[attack]())
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.mimetype == "application/problem+json"


def _tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["roles"] = ["admin"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"{header}.{forged}.{signature}"


@pytest.fixture
def rsa_keys(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    def pair() -> tuple[str, str]:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        public = (
            key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
        return private, public

    old_private, old_public = pair()
    new_private, new_public = pair()
    monkeypatch.setenv("JWT_ALGORITHM", "RS256")
    _use_key(monkeypatch, "old", old_private, {})
    yield {
        "old_private": old_private,
        "old_public": old_public,
        "new_private": new_private,
        "new_public": new_public,
    }
    monkeypatch.undo()
    get_settings.cache_clear()


def _use_key(
    monkeypatch: pytest.MonkeyPatch, kid: str, private: str, public_keys: dict[str, str]
) -> None:
    monkeypatch.setenv("JWT_PRIVATE_KEY", private)
    monkeypatch.setenv("JWT_KEY_ID", kid)
    monkeypatch.setenv("JWT_PUBLIC_KEYS", json.dumps(public_keys))
    get_settings.cache_clear()


def test_rs256_key_rotation_keeps_old_tokens_valid(
    client: Client, make_account: Any, rsa_keys: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    account = make_account()
    old_token = login(client, account)["access_token"]
    assert jwt.get_unverified_header(old_token)["kid"] == "old"
    # Rotation: sign with the new key, keep verifying the old one until its tokens expire.
    _use_key(monkeypatch, "new", rsa_keys["new_private"], {"old": rsa_keys["old_public"]})
    new_token = login(client, account)["access_token"]
    assert jwt.get_unverified_header(new_token)["kid"] == "new"
    assert me(client, old_token).status_code == 200
    assert me(client, new_token).status_code == 200
    # Retiring the old key ends its tokens.
    _use_key(monkeypatch, "new", rsa_keys["new_private"], {})
    assert me(client, old_token).status_code == 401


def test_hs256_token_signed_with_the_public_key_is_refused(
    client: Client, make_account: Any, rsa_keys: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The classic algorithm confusion: the server pins RS256, so HS256 never verifies."""
    account = make_account()
    assert me(client, account.token).status_code == 200  # a real RS256 token works
    forged = _hmac_with_public_key(claims_for(account.id), rsa_keys["old_public"])
    assert me(client, forged).status_code == 401


def _hmac_with_public_key(claims: dict[str, Any], public_pem: str) -> str:
    """PyJWT refuses to HMAC with a PEM key, so build the token by hand."""
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "old"}).encode())
    body = b64(json.dumps(claims, default=lambda d: int(d.timestamp())).encode())
    signature = hmac.new(public_pem.encode(), f"{header}.{body}".encode(), hashlib.sha256)
    return f"{header}.{body}.{b64(signature.digest())}"


def test_refresh_rotates_and_reuse_revokes_the_family(client: Client, make_account: Any) -> None:
    account = make_account()
    first = login(client, account)
    second = client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    assert second.json["refresh_token"] != first["refresh_token"]
    # The stolen (already rotated) token comes back: the whole family dies.
    replay = client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert replay.status_code == 401
    after = client.post("/auth/refresh", json={"refresh_token": second.json["refresh_token"]})
    assert after.status_code == 401


def test_logout_revokes_and_unknown_tokens_are_401(client: Client, make_account: Any) -> None:
    account = make_account()
    pair = login(client, account)
    assert (
        client.post("/auth/logout", json={"refresh_token": pair["refresh_token"]}).status_code
        == 204
    )
    assert (
        client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]}).status_code
        == 401
    )
    assert client.post("/auth/refresh", json={"refresh_token": "made-up"}).status_code == 401


def test_inactive_users_cannot_refresh(client: Client, make_account: Any) -> None:
    from imangor.db import session_scope
    from imangor.models import User

    account = make_account()
    pair = login(client, account)
    with session_scope() as session:
        user = session.get(User, account.id)
        assert user is not None
        user.is_active = False
    assert (
        client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]}).status_code
        == 401
    )


def test_password_change_ends_every_session_and_hands_back_a_new_one(
    client: Client, make_account: Any
) -> None:
    account = make_account()
    mine, other = login(client, account), login(client, account)
    changed = client.post(
        "/users/me/password",
        headers={"Authorization": f"Bearer {mine['access_token']}"},
        json={"current_password": account.password, "new_password": "another long passphrase"},
    )
    assert changed.status_code == 200
    for pair in (mine, other):  # every earlier token, access and refresh, stops working
        assert me(client, pair["access_token"]).status_code == 401
        refreshed = client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        assert refreshed.status_code == 401
    assert me(client, changed.json["access_token"]).status_code == 200
    renewed = client.post("/auth/refresh", json={"refresh_token": changed.json["refresh_token"]})
    assert renewed.status_code == 200
