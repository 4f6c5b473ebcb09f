"""API keys: `imk_<public id>_<secret>`; the id finds the row, the secret's hash proves it."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from imangor.errors import FieldProblem, NotAuthenticated, NotFound, ValidationFailed
from imangor.models import ApiKey, User
from imangor.registry import REGISTRY

PREFIX = "imk_"
GRANTABLE_SCOPES = REGISTRY.grantable_scopes
LAST_USED_GRANULARITY = timedelta(minutes=1)  # at most one write per key per minute


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(
    session: Session, user_id: uuid.UUID, name: str, scopes: list[str]
) -> tuple[ApiKey, str]:
    """The new key and its full secret, which is never stored and never shown again."""
    unknown = sorted(set(scopes) - GRANTABLE_SCOPES)
    if unknown:
        grantable = sorted(GRANTABLE_SCOPES)
        problems = [
            FieldProblem(
                ("scopes",), "scope_unknown", f"unknown scope {s!r}; grantable: {grantable}"
            )
            for s in unknown
        ]
        raise ValidationFailed(problems, detail=f"unknown scopes: {', '.join(unknown)}")
    public_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    key = ApiKey(
        user_id=user_id,
        name=name,
        prefix=f"{PREFIX}{public_id}",
        secret_hash=_digest(secret),
        scopes=sorted(set(scopes)),
    )
    session.add(key)
    session.flush()
    return key, f"{key.prefix}_{secret}"


def list_keys(session: Session, user_id: uuid.UUID) -> list[ApiKey]:
    return list(
        session.scalars(
            select(ApiKey)
            .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
            .order_by(ApiKey.created_at, ApiKey.id)
        )
    )


def revoke_key(session: Session, user_id: uuid.UUID, key_id: uuid.UUID) -> None:
    """Another user's key is 'not found', exactly like a key that does not exist."""
    key = session.get(ApiKey, key_id)
    if key is None or key.user_id != user_id or key.revoked_at is not None:
        raise NotFound("no such API key")
    key.revoked_at = datetime.now(UTC)


def authenticate_key(session: Session, presented: str) -> tuple[ApiKey, User]:
    parts = presented.strip().split("_", 2)  # imk, public id, secret (which may hold "_")
    if len(parts) != 3 or f"{parts[0]}_" != PREFIX or not parts[2] or len(presented) > 200:
        raise NotAuthenticated("the API key is invalid")
    prefix, secret = f"{PREFIX}{parts[1]}", parts[2]
    key = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    # Compare even when no row matched, so timing says nothing about which prefixes exist.
    expected = key.secret_hash if key is not None else _digest("no-such-key")
    if not hmac.compare_digest(expected, _digest(secret)) or key is None or key.revoked_at:
        raise NotAuthenticated("the API key is invalid")
    user = session.get(User, key.user_id)
    if user is None or not user.is_active:
        raise NotAuthenticated("the API key's owner no longer exists or is disabled")
    now = datetime.now(UTC)
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_GRANULARITY:
        session.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=now))
    return key, user
