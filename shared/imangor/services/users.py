"""Accounts: registration, profile changes and what admins may do to users."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import SecretStr
from sqlalchemy import func, select, tuple_, update
from sqlalchemy.orm import Session

from imangor import tasks
from imangor.auth.passwords import hash_password, verify_password
from imangor.auth.principal import Principal
from imangor.config import get_settings
from imangor.errors import (
    Conflict,
    FieldError,
    FieldProblem,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
    ValidationFailed,
)
from imangor.models import ApiKey, PasswordResetToken, RefreshToken, User
from imangor.schemas.tasks import SendEmail
from imangor.schemas.users import (
    AdminUserCreate,
    AdminUserUpdate,
    RegisterIn,
    UserFilter,
    UserUpdateMe,
    lookalike_problem,
    normalise_email,
)
from imangor.services.pagination import decode_cursor, fingerprint, paginate


def check_password_policy(password: str, email: str, field: str = "password") -> None:
    """Long enough and not the e-mail address; the message names the rule broken."""
    problems = []
    minimum = get_settings().password_min_length
    if len(password) < minimum:
        problems.append(f"must be at least {minimum} characters")
    if password.strip().lower() == email.strip().lower():
        problems.append("must not be the e-mail address")
    if problems:
        raise ValidationFailed(
            [FieldProblem((field,), "password_policy", message) for message in problems],
            detail=f"the password {' and '.join(problems)}",
        )


def refuse_lookalike(email: str, field: str = "email") -> None:
    """An address becoming an account's (created or changed) must not pass for another: mixed
    scripts, fullwidth and other compatibility forms are refused (see lookalike_problem).
    Existing accounts keep signing in with theirs: sign-in and recovery only normalise."""
    problem = lookalike_problem(email)
    if problem is not None:
        kind, message = problem
        raise FieldError(field, kind, message, detail=f"this e-mail address is refused: {message}")


def _email_taken(session: Session, email: str, except_id: uuid.UUID | None = None) -> bool:
    query = select(User.id).where(User.email == email)
    if except_id is not None:
        query = query.where(User.id != except_id)
    return session.scalar(query) is not None


def create_user(
    session: Session,
    email: str,
    password: str,
    full_name: str,
    *,
    role: str = "customer",
    is_active: bool = True,
) -> User:
    email = normalise_email(email)
    refuse_lookalike(email)
    check_password_policy(password, email)
    if _email_taken(session, email):
        raise Conflict("an account with this e-mail already exists")
    user = User(
        email=email,
        hashed_password=hash_password(password),
        full_name=full_name,
        role=role,
        is_active=is_active,
    )
    session.add(user)
    session.flush()  # the unique index still guards a concurrent registration (409)
    return user


def register(session: Session, data: RegisterIn) -> User:
    return create_user(session, data.email, data.password.get_secret_value(), data.full_name)


def get_user(session: Session, user_id: uuid.UUID) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("no such user")
    return user


def update_me(session: Session, caller: Principal, data: UserUpdateMe) -> User:
    """A new e-mail takes the account's password (a stolen token or an API key alone must not
    be able to move the account to another address) and is announced to the old address."""
    user = get_user(session, caller.user_id)
    if data.email is not None and data.email != user.email:
        if caller.via == "api_key":
            raise PermissionDenied("changing the e-mail needs you signed in, not an API key")
        _confirm_person(user, _secret(data.current_password), "the e-mail")
        old_email = user.email
        _change_email(session, user, data.email)
        _tell_owner(session, old_email, email=data.email)
    if data.full_name is not None:
        user.full_name = data.full_name
    session.flush()
    return user


def change_password(session: Session, user_id: uuid.UUID, current: str, new: str) -> User:
    """Needs the current password, and the account's address is told. Every session ends at
    once — refresh tokens revoked, access tokens issued until now refused — and the caller gets
    a fresh pair from the endpoint. API keys stay: they are the owner's deliberate
    credentials, revoked one by one."""
    user = get_user(session, user_id)
    _confirm_person(user, current, "the password")
    check_password_policy(new, user.email, "new_password")
    _tell_owner(session, user.email, password=True)
    user.hashed_password = hash_password(new)
    user.tokens_valid_after = func.now()
    session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user.id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=func.now())
    )
    _void_reset_links(session, user.id)
    session.flush()
    return user


def _confirm_person(user: User, current_password: str | None, what: str) -> None:
    """The caller's own credentials change only with the account's current password: an
    access token alone (perhaps stolen, valid for minutes) must not take the account over for
    good. Missing is a 422 on `current_password`; wrong is a 401."""
    if current_password is None:
        raise FieldError(
            "current_password",
            "missing",
            f"required to change {what}",
            detail=f"changing {what} needs current_password",
        )
    ok, _ = verify_password(current_password, user.hashed_password)
    if not ok:
        raise NotAuthenticated("the current password is wrong")


def _secret(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()


def _change_email(session: Session, user: User, email: str) -> None:
    """Move the account to `email`: not yet proved, and reset links mailed to the old address
    die with it."""
    refuse_lookalike(email)
    if _email_taken(session, email, user.id):
        raise Conflict("an account with this e-mail already exists")
    user.email = email
    user.email_verified = False  # nobody has proved this address yet
    _void_reset_links(session, user.id)


def _tell_owner(
    session: Session, old_address: str, *, email: str | None = None, password: bool = False
) -> None:
    """Mail the address the account had before this change, through the task queue (so the
    notice commits with the change, or neither does): if the owner did not make the change,
    they learn of it at the address they still read."""
    what = " and ".join(
        name for name, changed in (("e-mail address", email), ("password", password)) if changed
    )
    moved = f" Its address is now {email}." if email is not None else ""
    tasks.enqueue(
        session,
        SendEmail(
            to=old_address,
            subject=f"Your Imangor {what} was changed",
            body=f"The {what} of your Imangor account was changed.{moved} If you did not do "
            "this, reset your password at once and contact support.",
        ),
    )


def list_users(session: Session, query: UserFilter) -> tuple[list[User], str | None]:
    filters: dict[str, Any] = query.model_dump(exclude={"limit", "cursor"}, exclude_none=True)
    stmt = select(User)
    if "email" in filters:
        stmt = stmt.where(User.email == normalise_email(filters["email"]))
    if "role" in filters:
        stmt = stmt.where(User.role == filters["role"])
    if "is_active" in filters:
        stmt = stmt.where(User.is_active == filters["is_active"])
    fp = fingerprint("users", **filters)
    if query.cursor:
        created, last_id = decode_cursor(query.cursor, fp)
        after = (datetime.fromisoformat(created), uuid.UUID(last_id))
        stmt = stmt.where(tuple_(User.created_at, User.id) > after)
    rows = session.scalars(stmt.order_by(User.created_at, User.id).limit(query.limit + 1)).all()
    return paginate(rows, query.limit, fp, lambda u: [u.created_at.isoformat(), str(u.id)])


def admin_create(session: Session, data: AdminUserCreate) -> User:
    return create_user(
        session,
        data.email,
        data.password.get_secret_value(),
        data.full_name,
        role=data.role,
        is_active=data.is_active,
    )


def admin_update(
    session: Session, caller: Principal, user_id: uuid.UUID, data: AdminUserUpdate
) -> User:
    """What an admin may change on any account. On the admin's own account a new e-mail or
    password takes `current_password` and is announced to the old address, as on /users/me:
    this endpoint must not be the way around it. Another account's new address voids its
    reset links; a new password ends its sessions."""
    user = get_user(session, user_id)
    own = user.id == caller.user_id
    new_email = data.email if data.email is not None and data.email != user.email else None
    if own and (new_email is not None or data.password is not None):
        what = " and ".join(
            (["the e-mail"] if new_email is not None else [])
            + (["the password"] if data.password is not None else [])
        )
        _confirm_person(user, _secret(data.current_password), what)
    losing_admin = user.role == "admin" and (
        (data.role is not None and data.role != "admin") or data.is_active is False
    )
    if losing_admin:
        _keep_an_admin(session, user.id)
    old_email = user.email
    if new_email is not None:
        _change_email(session, user, new_email)
    if data.password is not None:
        check_password_policy(data.password.get_secret_value(), user.email)
        user.hashed_password = hash_password(data.password.get_secret_value())
    if own and (new_email is not None or data.password is not None):
        _tell_owner(session, old_email, email=new_email, password=data.password is not None)
    for field in ("full_name", "role", "is_active"):
        value = getattr(data, field)
        if value is not None:
            setattr(user, field, value)
    if data.is_active is False or data.password is not None:
        revoke_all_sessions(session, user.id)
    session.flush()
    return user


def delete_user(session: Session, user_id: uuid.UUID) -> None:
    user = get_user(session, user_id)
    if user.role == "admin":
        _keep_an_admin(session, user.id)
    session.delete(user)
    session.flush()


def _keep_an_admin(session: Session, leaving: uuid.UUID) -> None:
    """Refuse when `leaving` is the last active admin. The admins' rows are locked, so two
    admins demoting each other at once cannot both succeed."""
    admins = session.scalars(
        select(User.id)
        .where(User.role == "admin", User.is_active.is_(True))
        .order_by(User.id)
        .with_for_update()
    ).all()
    if [a for a in admins if a != leaving] == []:
        raise Conflict("this is the last admin: promote another admin first")


def revoke_all_sessions(session: Session, user_id: uuid.UUID) -> None:
    """Revoke every refresh family, API key and unused reset link, and make every access
    token issued so far invalid: after a reset or a takeover by the address's real owner,
    nothing minted before keeps working. The account row is locked first, as a refresh
    locks it."""
    session.execute(select(User.id).where(User.id == user_id).with_for_update())
    session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=func.now())
    )
    session.execute(
        update(ApiKey)
        .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=func.now())
    )
    session.execute(update(User).where(User.id == user_id).values(tokens_valid_after=func.now()))
    _void_reset_links(session, user_id)


def _void_reset_links(session: Session, user_id: uuid.UUID) -> None:
    """Mark every unused password-reset link of the account used: once its password was
    reset or changed, or its address changed, an older link (perhaps sitting in a mailbox
    that is no longer the owner's) must not set a password any more."""
    session.execute(
        update(PasswordResetToken)
        .where(PasswordResetToken.user_id == user_id, PasswordResetToken.used_at.is_(None))
        .values(used_at=func.now())
    )
