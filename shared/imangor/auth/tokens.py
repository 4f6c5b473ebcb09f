"""Access tokens: short-lived JWTs whose algorithm is pinned by the server, never the token."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from imangor.config import get_settings
from imangor.errors import NotAuthenticated

REQUIRED_CLAIMS = ["sub", "iat", "nbf", "exp", "iss", "aud", "jti"]


def issue_access_token(user_id: uuid.UUID, role: str) -> tuple[str, int]:
    """A signed access token for a user and its lifetime in seconds."""
    settings = get_settings()
    now = datetime.now(UTC)
    ttl = settings.access_token_minutes * 60
    claims = {
        "sub": str(user_id),
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(seconds=ttl),
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "jti": uuid.uuid4().hex,
        "roles": [role],
    }
    token = jwt.encode(claims, settings.secret_key.get_secret_value(), algorithm="HS256")
    return token, ttl


def decode_access_token(token: str) -> dict[str, Any]:
    """The verified claims, or NotAuthenticated for anything forged, expired or misaddressed."""
    settings = get_settings()
    try:
        return jwt.decode(
            token,
            settings.secret_key.get_secret_value(),
            algorithms=["HS256"],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": REQUIRED_CLAIMS},
            leeway=settings.jwt_leeway_seconds,
        )
    except jwt.ExpiredSignatureError:
        raise NotAuthenticated("the access token has expired") from None
    except jwt.InvalidTokenError:
        raise NotAuthenticated("the access token is invalid") from None
