"""Database engine and per-request sessions.

The engine is built lazily from `DATABASE_URL` (pg8000) or, when `INSTANCE_CONNECTION_NAME` is
set, from the Cloud SQL Python Connector, which is imported only then (≈1.4 s of import).
The pool is small because every serverless instance has its own; Terraform bounds instances so
that all pools together fit Cloud SQL's max_connections.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

from imangor.config import SSL_KEYS, Settings, database_tls, get_settings

log = logging.getLogger(__name__)
_lock = threading.Lock()
_engine: Engine | None = None
_sessions = sessionmaker(autoflush=True, expire_on_commit=False)


def sqlalchemy_url(plain_url: str) -> URL:
    """`postgresql://...` as given by ops → the same URL with the pg8000 driver chosen (its
    TLS keys become `ssl_connect_args`: pg8000 takes an SSL context, not a query string)."""
    url = make_url(plain_url)
    return url.set(drivername="postgresql+pg8000").difference_update_query(SSL_KEYS)


def ssl_connect_args(plain_url: str) -> dict[str, Any]:
    """pg8000's `ssl_context` for the URL's sslmode (`config.database_tls`); nothing for
    `prefer`, pg8000's own default."""
    mode, root_cert = database_tls(plain_url)
    if mode == "disable":
        return {"ssl_context": False}
    if mode == "prefer":
        return {}
    import ssl

    if mode == "require":  # encrypted, not authenticated: libpq's meaning
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return {"ssl_context": context}
    # verify-ca: signed by sslrootcert's CA; verify-full: also for this host name (pg8000
    # passes it as server_hostname), against sslrootcert or else the system's CAs.
    context = ssl.create_default_context(cafile=root_cert)
    context.check_hostname = mode == "verify-full"
    return {"ssl_context": context}


def _cloud_sql_creator(settings: Settings) -> Any:
    from google.cloud.sql.connector import Connector, IPTypes

    instance = settings.instance_connection_name or ""
    connector = Connector(refresh_strategy="lazy", ip_type=IPTypes[settings.db_ip_type.upper()])
    password = settings.db_password.get_secret_value() if settings.db_password else None

    def connect() -> Any:
        return connector.connect(
            instance,
            "pg8000",
            user=settings.db_user,
            password=password,
            db=settings.db_name,
            enable_iam_auth=settings.db_iam_auth,
            startup_params=_startup_params(settings),
        )

    return connect


def build_engine(settings: Settings) -> Engine:
    """A new engine for these settings (tests and tools build their own; requests share one)."""
    pool: dict[str, Any] = {
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_timeout": settings.db_pool_timeout,
        "pool_recycle": settings.db_pool_recycle,
        "pool_pre_ping": True,
        # Errors (logged, and kept in a failed job's `error`) must never carry bound values:
        # password hashes, e-mails, token digests.
        "hide_parameters": True,
    }
    if settings.instance_connection_name:
        return create_engine("postgresql+pg8000://", creator=_cloud_sql_creator(settings), **pool)
    if settings.database_url:
        url = settings.database_url
        connect_args = {**ssl_connect_args(url), "startup_params": _startup_params(settings)}
        return create_engine(sqlalchemy_url(url), connect_args=connect_args, **pool)
    raise RuntimeError("no database configured: set DATABASE_URL or INSTANCE_CONNECTION_NAME")


def _startup_params(settings: Settings) -> dict[str, str]:
    """Session settings sent in the connection's startup packet: no extra round trips (a
    `SET` on connect cost two per new connection, at every cold start)."""
    return {"statement_timeout": str(settings.db_statement_timeout_ms)}  # 0 = no limit


def get_engine() -> Engine:
    """The process-wide engine, created on first use and reused by every request."""
    global _engine
    if _engine is None:
        with _lock:
            if _engine is None:
                _engine = build_engine(get_settings())
    return _engine


def dispose_engine() -> None:
    """Close every pooled connection (tests, shutdown, after a fork)."""
    global _engine
    with _lock:
        if _engine is not None:
            _engine.dispose()
        _engine = None


AFTER_CLOSE = "imangor_after_close"


def new_session() -> Session:
    """A session; close it with `close_session` so work deferred until its connection is
    back in the pool (see `after_close`) runs."""
    session = _sessions(bind=get_engine())
    session.info[AFTER_CLOSE] = []
    return session


def after_close(session: Session, callback: Callable[[], None]) -> None:
    """Run `callback` once `session` has given its connection back. Work that needs a
    connection of its own (the outbox push) waits for this: with a pool of one connection
    per thread, taking a second one while holding the first could wait forever."""
    session.info.setdefault(AFTER_CLOSE, []).append(callback)


def close_session(session: Session) -> None:
    session.close()
    callbacks = session.info.pop(AFTER_CLOSE, [])
    for callback in callbacks:
        try:
            callback()
        except Exception:
            log.exception("work deferred until after the session failed")


@contextmanager
def session_scope() -> Iterator[Session]:
    """One unit of work: committed when the block ends, rolled back on any error."""
    session = new_session()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        close_session(session)
