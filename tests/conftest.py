"""Test services: a real PostgreSQL and Redis, never the developer's dev data.

Order of preference: TEST_DATABASE_URL / TEST_REDIS_URL; else a fresh database (and a Redis
db index of its own) on the local servers at 127.0.0.1:5432 / 6379; else embedded servers that
this session starts and stops. Each test starts from empty tables and an empty Redis db.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
LOCAL_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
LOCAL_REDIS = ("127.0.0.1", 6379)


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _worker_index() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(worker.removeprefix("gw") or 0)


def _fresh_database(admin_url: str, name: str) -> str:
    """Drop and create `name` on the server of admin_url; return its URL."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from imangor.db import sqlalchemy_url

    engine = create_engine(sqlalchemy_url(admin_url), isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def _drop_database(admin_url: str, name: str) -> None:
    from sqlalchemy import create_engine, text

    from imangor.db import dispose_engine, sqlalchemy_url

    dispose_engine()
    engine = create_engine(sqlalchemy_url(admin_url), isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture(scope="session")
def services() -> Iterator[dict[str, str]]:
    """DATABASE_URL and REDIS_URL for this test session (worker)."""
    index = _worker_index()
    with ExitStack() as stack:
        admin_url = os.environ.get("TEST_DATABASE_URL")
        if not admin_url:
            if _answers("127.0.0.1", 5432):
                admin_url = LOCAL_PG
            else:
                from infra.local.embedded import EmbeddedPostgres

                tmp = stack.enter_context(_tmpdir("pg"))
                # Thrown away afterwards: durability would only cost time.
                admin_url = stack.enter_context(EmbeddedPostgres(tmp, fsync=False))
        # The pid keeps two test runs on one server (two checkouts, CI beside a developer)
        # from dropping each other's database.
        name = f"imangor_test_{index}_{os.getpid()}"
        database_url = _fresh_database(admin_url, name)
        stack.callback(_drop_database, admin_url, name)
        redis_url = os.environ.get("TEST_REDIS_URL")
        if not redis_url:
            if _answers(*LOCAL_REDIS):
                # Two suites at once (two checkouts) set TEST_REDIS_DB_BASE apart: each
                # worker flushes its own db between tests.
                base = int(os.environ.get("TEST_REDIS_DB_BASE", "15"))
                redis_url = f"redis://127.0.0.1:6379/{base - index}"
            else:
                from infra.local.embedded import EmbeddedRedis

                tmp = stack.enter_context(_tmpdir("redis"))
                redis_url = stack.enter_context(EmbeddedRedis(tmp))
        yield {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "ADMIN_URL": admin_url}


def _tmpdir(kind: str) -> Any:
    import tempfile

    return tempfile.TemporaryDirectory(prefix=f"imangor-test-{kind}-")


@pytest.fixture
def server_dir() -> Iterator[Path]:
    """A temporary directory for an embedded PostgreSQL, outside pytest's basetemp.

    As root, PostgreSQL runs as imangor-pg, which must pass through every directory above its
    data; each pytest session that starts meanwhile (another checkout's suite) chmods
    /tmp/pytest-of-root back to 0700, locking it out mid-initdb ("Permission denied").
    """
    with _tmpdir("server") as path:
        yield Path(path)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


LIVE_PORT = _free_port()
LIVE_URL = f"http://127.0.0.1:{LIVE_PORT}"
TASKS_ACCOUNT = "tasks-invoker@local.test"
SCHEDULER_ACCOUNT = "scheduler@local.test"


@pytest.fixture(scope="session")
def signer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The test session's stand-in for Google's signing key (OIDC and Google sign-in)."""
    from infra.local.tasks import LocalSigner

    return LocalSigner(tmp_path_factory.mktemp("oidc"))


@pytest.fixture(scope="session", autouse=True)
def configured(services: dict[str, str], signer: Any) -> Iterator[None]:
    """Point the app's settings at the test services and migrate the schema once."""
    saved = dict(os.environ)
    os.environ.update(
        TASKS_TARGET_URL=LIVE_URL,
        OIDC_AUDIENCE=LIVE_URL,
        OIDC_CERTS_URL=signer.certs_url,
        OIDC_SERVICE_ACCOUNTS=f'["{TASKS_ACCOUNT}", "{SCHEDULER_ACCOUNT}"]',
        TASKS_SERVICE_ACCOUNT=TASKS_ACCOUNT,
        GOOGLE_CERTS_URL=signer.certs_url,
        GOOGLE_CLIENT_IDS='["imangor-web.apps.googleusercontent.com"]',
    )
    os.environ.update(
        ENVIRONMENT="test",
        DATABASE_URL=services["DATABASE_URL"],
        REDIS_URL=services["REDIS_URL"],
        SECRET_KEY="test-secret-key-that-is-long-enough-0123456789",
        ARGON2_MEMORY_KIB="8192",  # faster hashing in tests; production uses OWASP's 19 MiB
        ARGON2_TIME_COST="1",
    )
    for key in ("INSTANCE_CONNECTION_NAME", "FIRST_ADMIN_EMAIL", "FIRST_ADMIN_PASSWORD"):
        os.environ.pop(key, None)
    from imangor.config import get_settings
    from imangor.db import get_engine
    from imangor.migrate import upgrade
    from infra.local.tasks import prepare

    get_settings.cache_clear()
    upgrade()
    prepare(get_engine())  # the local dispatcher's table and TASKS_BACKEND=local's queue
    yield
    from imangor.db import dispose_engine
    from imangor.redis_client import reset_redis

    dispose_engine()
    reset_redis()
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(autouse=True)
def clean_state(configured: None) -> Iterator[None]:
    """Every test starts with empty tables and an empty Redis db."""
    yield
    from sqlalchemy import text

    from imangor.db import get_engine
    from imangor.models import all_metadata
    from imangor.redis_client import get_redis
    from infra.local.tasks import LocalBase

    every = [*all_metadata().sorted_tables, *LocalBase.metadata.sorted_tables]
    tables = ", ".join(f'"{t.name}"' for t in every)
    with get_engine().begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    try:
        get_redis().flushdb()
    except Exception:  # a test that stopped Redis on purpose
        from imangor.redis_client import reset_redis

        reset_redis()


@pytest.fixture(scope="session")
def app(configured: None) -> Any:
    """The whole API as one WSGI app: every unit, through functions-framework."""
    from infra.local.dev import build_app

    return build_app()


@pytest.fixture
def client(app: Any) -> Any:
    from werkzeug.test import Client

    return Client(app)


@pytest.fixture(scope="session")
def live_server(app: Any) -> Iterator[str]:
    """The API served over real HTTP on a free loopback port, by make dev's server."""
    from infra.local.dev import make_dev_server

    server = make_dev_server(LIVE_PORT, app)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield LIVE_URL
    server.shutdown()


@pytest.fixture
def dispatcher(live_server: str, signer: Any) -> Iterator[Any]:
    """The local Cloud Tasks stand-in, delivering to the live server over real HTTP."""
    from infra.local.tasks import LocalDispatcher

    running = LocalDispatcher(signer, poll_seconds=0.05).start()
    yield running
    running.stop()


def wait_for(condition: Any, timeout: float = 15.0, interval: float = 0.05) -> Any:
    """Poll `condition()` until it returns something truthy (background work), or fail."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


# -- accounts -----------------------------------------------------------------------------------


class Account:
    """A user created directly in the database, with a valid access token."""

    def __init__(self, user_id: Any, email: str, password: str, role: str, token: str) -> None:
        self.id = user_id
        self.email = email
        self.password = password
        self.role = role
        self.token = token

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
def make_account(configured: None) -> Any:
    """make_account(role="customer", email=None) -> Account (password hashed for real)."""
    import uuid

    from imangor.auth.passwords import hash_password
    from imangor.auth.tokens import issue_access_token
    from imangor.db import session_scope
    from imangor.models import User

    def make(role: str = "customer", email: str | None = None) -> Account:
        email = email or f"{role}-{uuid.uuid4().hex[:8]}@example.com"
        password = "correct horse battery staple"
        with session_scope() as session:
            user = User(
                email=email,
                hashed_password=hash_password(password),
                role=role,
                full_name=role.title(),
                email_verified=True,
            )
            session.add(user)
            session.flush()
            user_id = user.id
        token, _ = issue_access_token(user_id, role)
        return Account(user_id, email, password, role, token)

    return make


# -- Cloud Storage ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def storage_emulator(configured: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """gcp-storage-emulator on loopback (in memory), driven by the real google-cloud-storage
    client, which signs URLs with a locally generated service-account key."""
    from imangor.config import get_settings
    from imangor.storage import reset_client
    from infra.local.storage import LocalStorage

    saved = dict(os.environ)
    with LocalStorage(None, "imangor-test") as env:
        get_settings.cache_clear()
        reset_client()
        yield env["STORAGE_EMULATOR_HOST"]
    for name in env:
        os.environ.pop(name, None)
    os.environ.update({k: v for k, v in saved.items() if k in env})
    get_settings.cache_clear()
    reset_client()
