"""Migrations build exactly the models' schema, and go down and up again on real PostgreSQL."""

from __future__ import annotations

import pkgutil
from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine, inspect, text

from imangor import models
from imangor.db import sqlalchemy_url
from imangor.models import all_metadata


@pytest.fixture
def scratch_db(services: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """A database of its own, so going down to base never touches the suite's schema."""
    import os

    from imangor.config import get_settings
    from tests.conftest import _drop_database, _fresh_database, _worker_index

    name = f"imangor_migrations_{_worker_index()}_{os.getpid()}"
    url = _fresh_database(services["ADMIN_URL"], name)
    monkeypatch.setenv("DATABASE_URL", url)
    get_settings.cache_clear()
    engine = create_engine(sqlalchemy_url(url))
    yield engine
    engine.dispose()
    monkeypatch.undo()
    get_settings.cache_clear()
    _drop_database(services["ADMIN_URL"], name)


def _diff(engine: Engine) -> list[object]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, all_metadata()))


def test_upgrade_matches_models_then_downgrade_and_upgrade_again(scratch_db: Engine) -> None:
    from imangor.migrate import downgrade, upgrade

    upgrade()
    assert _diff(scratch_db) == [], "models and migrations differ: run alembic autogenerate"
    tables = set(inspect(scratch_db).get_table_names())
    assert {"users", "items", "products", "orders"} <= tables
    assert "local_tasks" not in tables  # the local stack's own table, never production's

    downgrade("base")
    assert set(inspect(scratch_db).get_table_names()) <= {"alembic_version"}

    upgrade()
    assert _diff(scratch_db) == []


def test_products_have_search_and_category_indexes(scratch_db: Engine) -> None:
    from imangor.migrate import upgrade

    upgrade()
    indexes = {i["name"]: i for i in inspect(scratch_db).get_indexes("products")}
    assert "ix_products_search_vector" in indexes
    assert indexes["ix_products_search_vector"]["dialect_options"]["postgresql_using"] == "gin"
    assert indexes["ix_products_category_price"]["column_names"][0] == "category"
    # 0011: searches never scan a GIN pending list that stock updates keep filling.
    with scratch_db.connect() as connection:
        options = connection.scalar(
            text("SELECT reloptions FROM pg_class WHERE relname = 'ix_products_search_vector'")
        )
    assert "fastupdate=off" in options


def test_units_get_table_access_through_the_cloud_sql_iam_role(services: dict[str, str]) -> None:
    """The grant runs where Cloud SQL's IAM role exists; here we create that role to see it."""
    from sqlalchemy import text

    from imangor.db import get_engine
    from imangor.migrate import APP_ROLE, grant_app_access

    with get_engine().begin() as connection:
        exists = connection.scalar(
            text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": APP_ROLE}
        )
        if not exists:
            connection.execute(text(f"CREATE ROLE {APP_ROLE} NOLOGIN"))
    assert grant_app_access() is True
    with get_engine().connect() as connection:
        allowed = connection.scalar(
            text(
                f"SELECT has_table_privilege('{APP_ROLE}', 'orders', "
                "'INSERT, SELECT, UPDATE, DELETE')"
            )
        )
        ddl = connection.scalar(
            text(f"SELECT has_table_privilege('{APP_ROLE}', 'orders', 'TRUNCATE')")
        )
    assert allowed is True
    assert ddl is False


def test_the_audit_extension_is_created_only_where_the_server_offers_it(
    services: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cloud SQL offers pgaudit (its flag is on); a local PostgreSQL does not, and the
    migration must not fail there. migrate() runs it on every release."""
    from sqlalchemy import text

    import imangor.migrate as migrate_module
    from imangor.db import get_engine

    with get_engine().connect() as connection:
        offered = connection.scalar(
            text("SELECT 1 FROM pg_available_extensions WHERE name = 'pgaudit'")
        )
    assert migrate_module.ensure_audit_extension() is bool(offered)
    called: list[str] = []
    monkeypatch.setattr(migrate_module, "upgrade", lambda: called.append("upgrade"))
    monkeypatch.setattr(
        migrate_module, "ensure_audit_extension", lambda: called.append("audit") or False
    )
    monkeypatch.setattr(migrate_module, "grant_app_access", lambda: called.append("grant") or True)
    monkeypatch.setattr(
        "imangor.services.bootstrap.ensure_first_admin", lambda: called.append("admin")
    )
    migrate_module.migrate()
    assert called == ["upgrade", "audit", "grant", "admin"]


@pytest.mark.parametrize(
    "module",
    sorted(m.name for m in pkgutil.iter_modules(models.__path__) if m.name != "base"),
)
def test_each_model_module_alone_resolves_its_foreign_keys(module: str) -> None:
    """Units import only the models they use: each module must bring the tables its foreign
    keys point at, or a flush fails with NoReferencedTableError (seen once, in the tasks unit)."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    script = (
        f"import imangor.models.{module}\n"
        "from imangor.models import Base\n"
        "for table in Base.metadata.tables.values():\n"
        "    for key in table.foreign_keys:\n"
        "        key.column  # raises NoReferencedTableError if the target is unknown\n"
        "from sqlalchemy.orm import configure_mappers\n"
        "configure_mappers()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


def test_stored_idempotent_answers_survive_the_move_to_one_answer_column(
    scratch_db: Engine,
) -> None:
    """0007: a key stored as status + body before the upgrade still replays after it (and the
    downgrade gives the two columns back)."""
    from sqlalchemy import text

    from imangor.migrate import downgrade, upgrade

    upgrade("0006")
    with scratch_db.begin() as connection:
        user = connection.scalar(
            text(
                "INSERT INTO users (id, email, role) VALUES (gen_random_uuid(), 'a@b.io', "
                "'customer') RETURNING id"
            )
        )
        connection.execute(
            text(
                "INSERT INTO idempotency_keys (user_id, key, fingerprint, response_status, "
                "response_body, expires_at) VALUES (:u, 'k', 'f', 201, '{\"id\": 1}', now())"
            ),
            {"u": user},
        )
    upgrade()
    with scratch_db.connect() as connection:
        answer = connection.scalar(text("SELECT answer FROM idempotency_keys"))
    assert answer == {"status": 201, "headers": {}, "body": '{"id": 1}'}
    downgrade("0006")
    with scratch_db.connect() as connection:
        row = connection.execute(
            text("SELECT response_status, response_body FROM idempotency_keys")
        ).one()
    assert tuple(row) == (201, {"id": 1})
