"""Who is calling: bearer JWTs today; API keys and OIDC service tokens plug in here."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from imangor.auth.principal import Principal
from imangor.errors import NotAuthenticated, PermissionDenied

if TYPE_CHECKING:
    from collections.abc import Mapping

    from imangor.runtime.context import Context
    from imangor.runtime.registry import Endpoint

__all__ = ["Principal", "authenticate"]


def authenticate(headers: Mapping[str, str], endpoint: Endpoint, ctx: Context) -> Principal:
    """The caller of a non-public endpoint, checked against the endpoint's access rule."""
    scheme, _, token = headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated("send an Authorization: Bearer <token> header")
    principal = _principal_from_jwt(token.strip(), ctx)
    if endpoint.access in ("staff", "admin") and not principal.at_least(endpoint.access):
        raise PermissionDenied(f"this needs the {endpoint.access} role")
    if endpoint.access == "service":
        raise PermissionDenied("this endpoint is for Google-signed service calls only")
    return principal


def _principal_from_jwt(token: str, ctx: Context) -> Principal:
    from imangor.auth.tokens import decode_access_token
    from imangor.models import User

    claims = decode_access_token(token)
    try:
        user_id = uuid.UUID(claims["sub"])
    except ValueError:
        raise NotAuthenticated("the access token is invalid") from None
    # The account is read on every call so deactivation and deletion take effect at once.
    user = ctx.db.get(User, user_id)
    if user is None or not user.is_active:
        raise NotAuthenticated("the account no longer exists or is disabled")
    return Principal(user_id=user.id, role=user.role)
