"""Signing in and out: password and Google logins, refresh-token rotation, password reset.

Refresh tokens are opaque random strings; only their SHA-256 is stored (they carry 256 bits
of entropy, so a fast hash is enough). Each login starts a family; every refresh rotates the
token, and a rotated token presented again means it was stolen: the whole family is revoked.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from imangor.auth.passwords import hash_password, verify_password
from imangor.auth.tokens import issue_access_token
from imangor.config import get_settings
from imangor.errors import FieldError, NotAuthenticated, ValidationFailed
from imangor.models import PasswordResetToken, RefreshToken, User
from imangor.schemas.users import TokenOut, normalise_email
from imangor.services.users import check_password_policy, refuse_lookalike, revoke_all_sessions

log = logging.getLogger(__name__)
WRONG_CREDENTIALS = "incorrect e-mail or password"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def issue_tokens(session: Session, user: User, family_id: uuid.UUID | None = None) -> TokenOut:
    """A new access token and a refresh token in `family_id` (a new family if None)."""
    family_id = family_id or uuid.uuid4()
    refresh = secrets.token_urlsafe(32)
    session.add(
        RefreshToken(
            user_id=user.id,
            family_id=family_id,
            token_hash=_digest(refresh),
            expires_at=_now() + timedelta(days=get_settings().refresh_token_days),
        )
    )
    access, ttl = issue_access_token(user.id, user.role)
    return TokenOut(access_token=access, refresh_token=refresh, expires_in=ttl)


def login(session: Session, email: str, password: str) -> TokenOut:
    """Same answer, same work, whether the account is unknown, disabled or the password wrong.
    The address is normalised as at sign-up, so any spelling of it (NFD, a fullwidth domain)
    finds the account; a look-alike is not refused here, so accounts made before look-alikes
    were refused keep signing in."""
    user = session.scalar(select(User).where(User.email == normalise_email(email)))
    # End the read before hashing: the connection goes back to the pool for the ≈20 ms of
    # Argon2 (and any wait for a hashing slot) instead of idling in a transaction.
    session.commit()
    ok, new_hash = verify_password(password, user.hashed_password if user else None)
    if user is None or not ok or not user.is_active:
        raise NotAuthenticated(WRONG_CREDENTIALS)
    if new_hash is not None:  # bcrypt or outdated Argon2 parameters: upgrade in place
        user.hashed_password = new_hash
    return issue_tokens(session, user)


def refresh(session: Session, token: str) -> TokenOut:
    by_hash = RefreshToken.token_hash == _digest(token)
    owner = session.scalar(select(RefreshToken.user_id).where(by_hash))
    if owner is None:
        raise NotAuthenticated("the refresh token is invalid, expired or revoked")
    # Lock the account, then the token, in the order a reset or deactivation takes them, so
    # this rotation and a concurrent revocation serialise (the new token is either revoked by
    # it or refused after it) without deadlocking.
    user = session.get(User, owner, with_for_update=True)
    row = session.scalar(select(RefreshToken).where(by_hash).with_for_update())
    if row is None or row.revoked_at is not None or row.expires_at <= _now():
        raise NotAuthenticated("the refresh token is invalid, expired or revoked")
    if row.rotated_at is not None:
        # Reuse of a rotated token: whoever holds the family is not to be trusted.
        _revoke_family(session, row.family_id)
        session.commit()  # the revocation must outlive the error answer below
        log.warning("refresh token reuse detected; family %s revoked", row.family_id)
        raise NotAuthenticated("the refresh token was already used; please sign in again")
    if user is None or not user.is_active:
        raise NotAuthenticated("the account no longer exists or is disabled")
    row.rotated_at = _now()
    return issue_tokens(session, user, row.family_id)


def logout(session: Session, token: str) -> None:
    """Revoke the session (family) of this refresh token; unknown tokens are ignored."""
    family = session.scalar(
        select(RefreshToken.family_id).where(RefreshToken.token_hash == _digest(token))
    )
    if family is not None:
        _revoke_family(session, family)


def _revoke_family(session: Session, family_id: uuid.UUID) -> None:
    session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=func.now())
    )


def create_reset_token(session: Session, email: str) -> tuple[User, str] | None:
    """For an active account: a single-use reset token (the raw value, to mail) — else None."""
    email = normalise_email(email)
    user = session.scalar(select(User).where(User.email == email, User.is_active.is_(True)))
    if user is None:
        return None
    token = secrets.token_urlsafe(32)
    ttl = timedelta(minutes=get_settings().reset_token_minutes)
    session.add(
        PasswordResetToken(user_id=user.id, token_hash=_digest(token), expires_at=_now() + ttl)
    )
    session.flush()
    return user, token


def reset_password(session: Session, token: str, new_password: str) -> None:
    row = session.scalar(
        select(PasswordResetToken)
        .where(PasswordResetToken.token_hash == _digest(token))
        .with_for_update()
    )
    if row is None or row.used_at is not None or row.expires_at <= _now():
        message = "the reset link is invalid, used or expired"
        raise FieldError("token", "token_invalid", message, detail=message)
    user = session.get(User, row.user_id)
    if user is None or not user.is_active:
        raise ValidationFailed([], detail="the account no longer exists or is disabled")
    check_password_policy(new_password, user.email, "new_password")
    user.hashed_password = hash_password(new_password)
    row.used_at = _now()
    revoke_all_sessions(session, user.id)


def google_login(session: Session, claims: dict[str, object]) -> TokenOut:
    """Sign in with verified Google claims: link a verified e-mail or create the account."""
    email = normalise_email(str(claims.get("email", "")))
    if not email or claims.get("email_verified") is not True:
        raise NotAuthenticated("the Google account has no verified e-mail")
    user = session.scalar(select(User).where(User.email == email))
    if user is None:
        refuse_lookalike(email, "id_token")  # a new account, as at sign-up
        user = User(
            email=email,
            full_name=str(claims.get("name", ""))[:200],
            hashed_password=None,
            email_verified=True,
        )
        session.add(user)
        session.flush()
    elif not user.is_active:
        raise NotAuthenticated("the account is disabled")
    elif not user.email_verified:
        # Someone registered this address without proving they own it; Google just proved
        # who does. Drop their password and sessions so a pre-registered account is not a
        # way into the real owner's account.
        user.hashed_password = None
        user.email_verified = True
        revoke_all_sessions(session, user.id)
    return issue_tokens(session, user)
