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


def migrate() -> None:
    """Upgrade to head and make sure the configured first admin exists."""
    upgrade()
    from imangor.services.bootstrap import ensure_first_admin

    ensure_first_admin()


def main() -> int:
    from imangor.observability import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level, settings.gcp_project)
    migrate()
    log.info("database migrated to head")
    return 0


if __name__ == "__main__":
    sys.exit(main())
