"""Access tokens: short-lived JWTs whose algorithm is pinned by the server, never the token.

HS256 signs with SECRET_KEY. RS256/ES256 sign with JWT_PRIVATE_KEY under the `kid`
JWT_KEY_ID and verify with any key of JWT_PUBLIC_KEYS, so a new key can be introduced while
tokens signed by the old one are still accepted until they expire.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import jwt

from imangor.config import Settings, get_settings
from imangor.errors import NotAuthenticated

REQUIRED_CLAIMS = ["sub", "iat", "nbf", "exp", "iss", "aud", "jti"]


def issue_access_token(user_id: uuid.UUID, role: str) -> tuple[str, int]:
    """A signed access token for a user and its lifetime in seconds."""
    settings = get_settings()
    now = datetime.now(UTC)
    ttl = settings.access_token_minutes * 60
    claims: dict[str, Any] = {
        "sub": str(user_id),
        "iat": now.timestamp(),  # sub-second, so "tokens before <instant>" can be refused
        "nbf": now,
        "exp": now + timedelta(seconds=ttl),
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "jti": uuid.uuid4().hex,
        "roles": [role],
    }
    headers = None if settings.jwt_algorithm == "HS256" else {"kid": settings.jwt_key_id}
    token = jwt.encode(claims, _signing_key(settings), settings.jwt_algorithm, headers=headers)
    return token, ttl


def decode_access_token(token: str) -> dict[str, Any]:
    """The verified claims, or NotAuthenticated for anything forged, expired or misaddressed.

    A client sends the same token with every request until it expires: once verified (by
    these settings: a new key starts afresh), its claims are remembered, and a repeat only
    has its expiry checked. The account behind it is still read on every request."""
    settings = get_settings()
    verified_by, claims = _verified.get(token, (None, None))
    if verified_by is settings and claims is not None:
        if float(claims["exp"]) + settings.jwt_leeway_seconds < time.time():
            raise NotAuthenticated("the access token has expired")
        return claims
    claims = _decode(token, settings)
    with _verified_lock:
        if len(_verified) >= VERIFIED_TOKENS:
            _verified.pop(next(iter(_verified)), None)  # the oldest
        _verified[token] = (settings, claims)
    return claims


VERIFIED_TOKENS = 4096  # tokens whose claims a process remembers (the oldest go first)
_verified: dict[str, tuple[Settings, dict[str, Any]]] = {}
_verified_lock = threading.Lock()


def _decode(token: str, settings: Settings) -> dict[str, Any]:
    try:
        key = _verification_key(settings, token)
        return jwt.decode(
            token,
            key,
            algorithms=[settings.jwt_algorithm],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": REQUIRED_CLAIMS},
            leeway=settings.jwt_leeway_seconds,
        )
    except jwt.ExpiredSignatureError:
        raise NotAuthenticated("the access token has expired") from None
    except jwt.ImmatureSignatureError:
        raise NotAuthenticated("the access token is not valid yet") from None
    except (jwt.InvalidTokenError, ValueError):
        raise NotAuthenticated("the access token is invalid") from None


def _signing_key(settings: Settings) -> Any:
    if settings.jwt_algorithm == "HS256":
        return settings.secret_key.get_secret_value()
    assert settings.jwt_private_key is not None  # checked when settings load
    return _load_private(settings.jwt_private_key.get_secret_value())


def _verification_key(settings: Settings, token: str) -> Any:
    if settings.jwt_algorithm == "HS256":
        return settings.secret_key.get_secret_value()
    kid = jwt.get_unverified_header(token).get("kid")
    keys = dict(settings.jwt_public_keys)
    if settings.jwt_private_key is not None and settings.jwt_key_id not in keys:
        keys[settings.jwt_key_id] = _public_pem(settings.jwt_private_key.get_secret_value())
    if not isinstance(kid, str) or kid not in keys:
        raise jwt.InvalidTokenError("unknown key id")
    return _load_public(keys[kid])


@cache
def _load_private(pem: str) -> Any:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    return load_pem_private_key(pem.encode(), password=None)


@cache
def _load_public(pem: str) -> Any:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    return load_pem_public_key(pem.encode())


@cache
def _public_pem(private_pem: str) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    public = _load_private(private_pem).public_key()
    pem: bytes = public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    return pem.decode()
