"""users: every stored e-mail address in the one spelling sign-in looks up

Sign-up and the admin's and owner's changes always stored an address as email-validator
normalises it (NFC; the domain mapped by IDNA, so a fullwidth or punycode domain is the
Unicode one), lower-cased. The first admin (FIRST_ADMIN_EMAIL) and Google sign-in stored it
only trimmed and lower-cased. Sign-in, recovery and Google sign-in now normalise what they are
given the first way (imangor.schemas.users.normalise_email), so an address stored the second
way and spelled otherwise (a decomposed accent, an `xn--` domain) would no longer be found,
and Google sign-in would make a second account for it. This rewrites those rows.

Only an address with a non-ASCII character or an `xn--` label can differ, so only those rows
are read. A row whose normal spelling another account already holds is left as it is and
logged: two accounts claim one address, for an operator to resolve. Look-alike addresses
(fullwidth, mixed scripts) stored before they were refused are kept: they are normalised
already and keep signing in.

Data only. Downgrade keeps the addresses: both spellings are the same address.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 21:00:00
"""

import contextlib
import logging
import unicodedata
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")


def normalise(address: str) -> str:
    """normalise_email as of this revision, frozen here so that the migration does not change
    when the application's function does."""
    from email_validator import EmailNotValidError, validate_email

    text = unicodedata.normalize("NFC", address.strip())
    with contextlib.suppress(EmailNotValidError):
        text = validate_email(text, check_deliverability=False).normalized
    return unicodedata.normalize("NFC", text.lower())


def respell(connection: sa.Connection) -> list[str]:
    """Rewrite each stored address that is not in its normal spelling; the ids of the rows
    left alone because another account holds that spelling."""
    rows = connection.execute(
        sa.text(
            "SELECT id, email FROM users "
            "WHERE octet_length(email) <> char_length(email) OR email LIKE '%xn--%'"
        )
    ).all()
    clashes = []
    for user_id, email in rows:
        spelled = normalise(email)
        if spelled == email:
            continue
        moved = connection.execute(
            sa.text(
                "UPDATE users SET email = :spelled WHERE id = :id "
                "AND NOT EXISTS (SELECT 1 FROM users WHERE email = :spelled)"
            ),
            {"spelled": spelled, "id": user_id},
        )
        if moved.rowcount == 0:
            clashes.append(str(user_id))
            log.warning(
                "users %s: address not respelled, another account holds its normal spelling",
                user_id,
            )
    return clashes


def upgrade() -> None:
    respell(op.get_bind())


def downgrade() -> None:
    pass
