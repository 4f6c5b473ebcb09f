"""Managing API keys: create (the secret shown once), list, revoke. Checking a presented key
is authentication's job (`imangor.auth.api_keys`)."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from imangor.auth.api_keys import PREFIX, secret_digest
from imangor.errors import FieldProblem, NotFound, ValidationFailed
from imangor.models import ApiKey
from imangor.registry import REGISTRY

GRANTABLE_SCOPES = REGISTRY.grantable_scopes


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
        secret_hash=secret_digest(secret),
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
