"""The hourly `cleanup` job: delete what has expired. Each statement is idempotent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, or_
from sqlalchemy.orm import Session

from imangor.models import Job, PasswordResetToken, RefreshToken

REVOKED_KEPT = timedelta(days=7)  # revoked tokens stay a while, so reuse is still detected


def _deleted(session: Session, statement: Any) -> int:
    return cast(CursorResult[Any], session.execute(statement)).rowcount


def remove_expired(session: Session) -> dict[str, int]:
    from imangor.services.files import remove_abandoned_uploads
    from imangor.services.idempotency import purge_expired

    now = datetime.now(UTC)
    return {
        "refresh_tokens": _deleted(
            session,
            delete(RefreshToken).where(
                or_(
                    RefreshToken.expires_at < now,
                    RefreshToken.revoked_at < now - REVOKED_KEPT,
                )
            ),
        ),
        "password_reset_tokens": _deleted(
            session, delete(PasswordResetToken).where(PasswordResetToken.expires_at < now)
        ),
        "job_results": _deleted(session, delete(Job).where(Job.expires_at < now)),
        "idempotency_keys": purge_expired(session),
        "abandoned_uploads": remove_abandoned_uploads(session, now),
    }
