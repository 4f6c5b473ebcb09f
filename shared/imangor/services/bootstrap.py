"""The first admin account, created once from FIRST_ADMIN_EMAIL / FIRST_ADMIN_PASSWORD."""

from __future__ import annotations

import logging

from imangor.config import get_settings

log = logging.getLogger(__name__)


def ensure_first_admin() -> bool:
    """Create the configured admin unless the account exists; True when one was created."""
    settings = get_settings()
    if not settings.first_admin_email or not settings.first_admin_password:
        return False
    from sqlalchemy import select
    from sqlalchemy.dialects.postgresql import insert

    from imangor.auth.passwords import hash_password
    from imangor.db import session_scope
    from imangor.models import User
    from imangor.schemas.users import lookalike_problem, normalise_email

    email = normalise_email(settings.first_admin_email)
    problem = lookalike_problem(email)
    if problem is not None:
        raise ValueError(f"FIRST_ADMIN_EMAIL is refused: {problem[1]}")
    with session_scope() as session:
        if session.scalar(select(User.id).where(User.email == email)) is not None:
            return False
        hashed = hash_password(settings.first_admin_password.get_secret_value())
        # ON CONFLICT DO NOTHING: two instances starting at once still create one admin.
        created = session.execute(
            insert(User)
            .values(
                email=email,
                hashed_password=hashed,
                full_name="Administrator",
                role="admin",
                email_verified=True,
            )
            .on_conflict_do_nothing(index_elements=[User.email])
            .returning(User.id)
        ).first()
    if created:
        log.info("created the first admin account")
    return created is not None
