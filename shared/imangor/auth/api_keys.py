"""API keys as credentials: `imk_<public id>_<secret>`; the id finds the row, the secret's
hash proves it. (Creating, listing and revoking keys is `imangor.services.api_keys`.)"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from imangor.db import ONE_STATEMENT_WRITE
from imangor.errors import NotAuthenticated
from imangor.models import ApiKey, User

PREFIX = "imk_"
LAST_USED_GRANULARITY = timedelta(minutes=1)  # at most one write per key per minute


def secret_digest(secret: str) -> str:
    """What is stored of a key's secret (sha256: the secret is random, not a password)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def verify_key(session: Session, presented: str) -> tuple[ApiKey, User]:
    """The key presented and its active owner, or NotAuthenticated; notes when it was used."""
    parts = presented.strip().split("_", 2)  # imk, public id, secret (which may hold "_")
    if len(parts) != 3 or f"{parts[0]}_" != PREFIX or not parts[2] or len(presented) > 200:
        raise NotAuthenticated("the API key is invalid")
    prefix, secret = f"{PREFIX}{parts[1]}", parts[2]
    key = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    # Compare even when no row matched, so timing says nothing about which prefixes exist.
    expected = key.secret_hash if key is not None else secret_digest("no-such-key")
    matches = hmac.compare_digest(expected, secret_digest(secret))
    if not matches or key is None or key.revoked_at:
        raise NotAuthenticated("the API key is invalid")
    user = session.get(User, key.user_id)
    if user is None or not user.is_active:
        raise NotAuthenticated("the API key's owner no longer exists or is disabled")
    now = datetime.now(UTC)
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_GRANULARITY:
        # One statement: in a GET's autocommit session it commits on its own (see imangor.db).
        session.execute(
            update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=now),
            execution_options={ONE_STATEMENT_WRITE: True},
        )
    return key, user
