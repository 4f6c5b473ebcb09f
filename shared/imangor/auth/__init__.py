"""Who is calling: a bearer JWT or an `X-API-Key`, checked against the endpoint's rule."""

from __future__ import annotations

import uuid
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from imangor.auth.principal import Principal
from imangor.errors import NotAuthenticated, PermissionDenied

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from sqlalchemy.orm import Session

    from imangor.registry import Endpoint

__all__ = ["Principal", "authenticate"]


def authenticate(
    headers: Mapping[str, str],
    endpoint: Endpoint,
    db: Callable[[], Session],
    path_args: Mapping[str, Any] | None = None,
) -> Principal:
    """The caller of a non-public endpoint, checked against the endpoint's access rule.

    `db()` gives the request's session, opened only when a check reads the database (a
    Google-signed service token needs none). The row an endpoint declares it reads
    (`Endpoint.preload`, its id from `path_args`) comes with the caller's account, in the
    same statement: the endpoint then finds it in the session (its owner is still checked
    by the endpoint, `services.ownership.visible`)."""
    if endpoint.access == "service":
        from imangor.auth.service import authenticate_service

        return authenticate_service(headers)
    api_key = headers.get("X-Api-Key") or headers.get("X-API-Key")
    if api_key:
        principal = _principal_from_api_key(api_key, db())
        if endpoint.scope not in (principal.scopes or ()):
            raise PermissionDenied(f"this API key lacks the {endpoint.scope} scope")
    else:
        scheme, _, token = headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotAuthenticated("send an Authorization: Bearer <token> or X-API-Key header")
        principal = _principal_from_jwt(token.strip(), db, _preload(endpoint, path_args))
    if endpoint.access in ("staff", "admin") and not principal.at_least(endpoint.access):
        raise PermissionDenied(f"this needs the {endpoint.access} role")
    return principal


def _preload(endpoint: Endpoint, path_args: Mapping[str, Any] | None) -> tuple[Any, Any] | None:
    """(model, id) of the row to load with the account, if the endpoint declares one and the
    path holds a well-formed id (a malformed one is the path validation's 422 to give)."""
    if endpoint.preload is None or not path_args:
        return None
    model_name, parameter = endpoint.preload
    try:
        object_id = uuid.UUID(str(path_args[parameter]))
    except (KeyError, ValueError):
        return None
    from imangor import models

    return getattr(models, model_name), object_id


def _principal_from_jwt(
    token: str, db: Callable[[], Session], preload: tuple[Any, Any] | None = None
) -> Principal:
    from imangor.auth.tokens import decode_access_token
    from imangor.models import User

    claims = decode_access_token(token)
    try:
        user_id = uuid.UUID(claims["sub"])
    except (ValueError, TypeError):
        raise NotAuthenticated("the access token is invalid") from None
    # The account is read on every call so that deletion, deactivation, a role change or a
    # password reset takes effect at once, not when the token expires.
    session = db()
    if preload is None:
        user = session.get(User, user_id)
        loaded: Any = None
    else:
        model, object_id = preload
        found = session.execute(
            _with_account(model), {"user_id": user_id, "object_id": object_id}
        ).one_or_none()
        user, loaded = found if found is not None else (None, None)
    # The session's identity map holds rows weakly: keep these for the request, so the
    # endpoint's own `session.get` (the account for GET /users/me, a preloaded row) is
    # answered without a query.
    session.info["imangor_loaded"] = (user, loaded)
    if user is None or not user.is_active:
        raise NotAuthenticated("the account no longer exists or is disabled")
    if _issued_before(claims["iat"], user.tokens_valid_after):
        raise NotAuthenticated("the session was revoked; please sign in again")
    return Principal(user_id=user.id, role=user.role)


@cache
def _with_account(model: Any) -> Any:
    """The caller's account and the row `object_id` of `model` (None if there is none), in
    one statement (built once per model: SQLAlchemy then reuses its compiled form)."""
    from sqlalchemy import bindparam, select

    from imangor.models import User

    joined = model.id == bindparam("object_id")
    return select(User, model).outerjoin(model, joined).where(User.id == bindparam("user_id"))


def _issued_before(iat: float, valid_after: datetime | None) -> bool:
    return valid_after is not None and float(iat) < valid_after.timestamp()


def _principal_from_api_key(presented: str, session: Session) -> Principal:
    from imangor.auth.api_keys import verify_key

    key, user = verify_key(session, presented)
    # The owner's current role caps the key: a key never grants more than its owner has.
    return Principal(
        user_id=user.id, role=user.role, via="api_key", scopes=frozenset(key.scopes), key_id=key.id
    )
