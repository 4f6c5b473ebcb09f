"""Bring a database to the newest schema, then create the first admin (both idempotent).

python -m imangor.migrate            # what the Cloud Run migration job runs
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from imangor.config import get_settings

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]


def alembic_config() -> object:
    from alembic.config import Config

    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["configure_logging"] = False
    return config


def upgrade(revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(), revision)  # type: ignore[arg-type]


def downgrade(revision: str = "base") -> None:
    from alembic import command

    command.downgrade(alembic_config(), revision)  # type: ignore[arg-type]


APP_ROLE = "cloudsqliamserviceaccount"  # Cloud SQL's role of every IAM service-account user
GRANTS = (
    f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {APP_ROLE}",
    f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE}",
    f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES "
    f"TO {APP_ROLE}",
    f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {APP_ROLE}",
)


def grant_app_access() -> bool:
    """On Cloud SQL, let the units' IAM users read and write the tables the migration user
    owns (and nothing more: no DDL). Elsewhere the role does not exist and this does nothing.
    Idempotent, so every migration job run re-asserts it."""
    from sqlalchemy import text

    from imangor.db import session_scope

    with session_scope() as session:
        exists = session.scalar(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": APP_ROLE})
        if not exists:
            return False
        for statement in GRANTS:
            session.execute(text(statement))
    return True


AUDIT_EXTENSION = "pgaudit"


def ensure_audit_extension() -> bool:
    """On Cloud SQL (cloudsql.enable_pgaudit on, Terraform's modules/database), pgAudit also
    needs its extension in the database before `pgaudit.log` records anything; the schema
    owner, a member of cloudsqlsuperuser, may create it. Where the server does not offer it
    (a local PostgreSQL) this does nothing. Idempotent."""
    from sqlalchemy import text

    from imangor.db import session_scope

    with session_scope() as session:
        offered = session.scalar(
            text("SELECT 1 FROM pg_available_extensions WHERE name = :n"), {"n": AUDIT_EXTENSION}
        )
        if not offered:
            return False
        session.execute(text(f"CREATE EXTENSION IF NOT EXISTS {AUDIT_EXTENSION}"))
    return True


def migrate() -> None:
    """Upgrade to head, turn on auditing where offered, grant the units table access, make
    sure the first admin exists."""
    upgrade()
    ensure_audit_extension()
    grant_app_access()
    from imangor.services.bootstrap import ensure_first_admin

    ensure_first_admin()


def main() -> int:
    from imangor.observability import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level, settings.gcp_project, text=settings.log_format == "text")
    migrate()
    log.info("database migrated to head")
    return 0


if __name__ == "__main__":
    sys.exit(main())
