"""Database engine and per-request sessions.

The engine is built lazily from `DATABASE_URL` (pg8000) or, when `INSTANCE_CONNECTION_NAME` is
set, from the Cloud SQL Python Connector, which is imported only then (≈1.4 s of import).
The pool is small because every serverless instance has its own; Terraform bounds instances so
that all pools together fit Cloud SQL's max_connections.

A connection is pinged before reuse only when it sat idle in the pool for more than
`PING_IDLE_AFTER` seconds (what SQLAlchemy's `pool_pre_ping` does on every checkout cost a
round trip per request); one that dies between two close requests fails its request with a
503 and SQLAlchemy then discards every connection of the pool opened before it.

A read-only request (a GET) runs its statements in autocommit: no BEGIN and no COMMIT round
trip. Under READ COMMITTED each statement sees its own snapshot either way, so a read loses
nothing; a read-only session refuses to write (`READ_ONLY`).

Every connection has a socket timeout (`DB_SOCKET_TIMEOUT`, on connect and on every read), so a
database that stops answering (frozen, partitioned, failing over) costs a request at most that
long before the runtime answers 503, and the broken connection is discarded, never reused.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.postgresql.pg8000 import PGDialect_pg8000
from sqlalchemy.engine import URL, ExceptionContext, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

from imangor.config import SSL_KEYS, Settings, database_tls, get_settings

log = logging.getLogger(__name__)
_lock = threading.Lock()
_engine: Engine | None = None
_sessions = sessionmaker(autoflush=True, expire_on_commit=False)
# Seconds a pooled connection may sit unused before it is pinged on its next checkout: a
# connection in steady use is known to work; one left idle may have been dropped (a restart,
# a failover, a proxy's idle timeout) and is replaced before a request sees it.
PING_IDLE_AFTER = 1.0
_RETURNED = "imangor_returned"  # connection record info: monotonic time of the last checkin
READ_ONLY = "imangor_read_only"  # session info: statements run in autocommit, writes refused
# Execution option of a write that may run in a read-only session: one statement that needs
# no transaction around it (an API key's last-used time).
ONE_STATEMENT_WRITE = "imangor_one_statement_write"
PREPARED_PER_CONNECTION = 256  # more distinct statements than this run unprepared
_PREPARED = "_imangor_prepared"  # on each pg8000 connection: statement -> prepared statement


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


def _cloud_sql_creator(settings: Settings, connector: Any = None) -> Any:
    """The pool's `creator` through the Cloud SQL connector, with `DB_SOCKET_TIMEOUT` on the
    connect and on every read: the connector opens its socket without a timeout and waits for
    it without one, and pg8000 leaves a socket it is handed as it is (its `timeout=` applies
    only to sockets it opens itself)."""
    if connector is None:
        from google.cloud.sql.connector import Connector, IPTypes

        ip_type = IPTypes[settings.db_ip_type.upper()]
        connector = Connector(refresh_strategy="lazy", ip_type=ip_type)
    instance = settings.instance_connection_name or ""
    password = settings.db_password.get_secret_value() if settings.db_password else None
    timeout = settings.db_socket_timeout
    waiting = _ConnectWaiter()

    def connect() -> Any:
        connection = waiting.call(
            timeout,
            connector.connect,
            instance,
            "pg8000",
            user=settings.db_user,
            password=password,
            db=settings.db_name,
            enable_iam_auth=settings.db_iam_auth,
            startup_params=_startup_params(settings),
            timeout=timeout,
        )
        set_read_timeout(connection, timeout)
        return connection

    return connect


class _ConnectWaiter:
    """Runs a blocking connect on a helper thread and gives up waiting after a timeout
    (TimeoutError): the request is answered meanwhile; a connection that arrives after all
    is closed, never leaked."""

    def __init__(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="db-connect")

    def call(self, wait: float, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        from concurrent.futures import TimeoutError as Pending

        future = self._pool.submit(func, *args, **kwargs)
        try:
            return future.result(wait)
        except Pending:
            future.add_done_callback(_close_late_connection)
            raise TimeoutError(f"no database connection within {wait:g} s") from None


def _close_late_connection(future: Any) -> None:
    if future.cancelled() or future.exception() is not None:
        return
    try:
        future.result().close()
    except Exception as exc:  # it arrived late and broken: nothing left to do
        log.info("closing a connection that arrived after its timeout failed: %s", exc)


def set_read_timeout(connection: Any, timeout: float) -> None:
    """Give a pg8000 connection made on a socket handed to it (the Cloud SQL connector's) a
    read timeout, as pg8000 gives the sockets it opens itself. pg8000 keeps that socket as
    `_usock` and reads through a file made from it, which honours the socket's timeout."""
    connection._usock.settimeout(timeout)


class _Pg8000(PGDialect_pg8000):
    """pg8000 in fewer round trips, for the same statements and results.

    pg8000 runs a statement with parameters as an unnamed one, in three round trips (parse,
    describe, then bind and execute), and sends COMMIT and ROLLBACK the same way. Here each
    connection prepares a statement the first time it runs it (once: SQLAlchemy renders the
    same text each time) and from then on binds and executes it in one round trip; COMMIT and
    ROLLBACK go as simple queries (one round trip each). A statement that fails is dropped
    from the cache (prepared again next time: a migration may have changed what it returns).
    """

    driver = "pg8000"
    supports_statement_cache = True

    def do_execute(self, cursor: Any, statement: str, parameters: Any, context: Any = None) -> None:
        connection = cursor._c
        prepared: dict[tuple[str, tuple[int, ...]], Any] = connection.__dict__.setdefault(
            _PREPARED, {}
        )
        oids = tuple(cursor._input_oids)
        key = (statement, oids)
        entry = prepared.get(key)
        if not parameters or (entry is None and len(prepared) >= PREPARED_PER_CONNECTION):
            cursor.execute(statement, parameters)  # pg8000's own way
            return
        from pg8000.core import make_params
        from pg8000.dbapi import convert_paramstyle
        from pg8000.exceptions import DatabaseError

        try:
            if not connection._in_transaction and not connection.autocommit:
                connection.execute_simple("begin transaction")
            if entry is None:
                sql, _ = convert_paramstyle(cursor.paramstyle, statement, parameters)
                entry = prepared[key] = connection.prepare_statement(sql, oids)
            name, columns, input_funcs = entry
            params = make_params(connection.py_types, parameters)
            cursor._context = connection.execute_named(
                name, params, columns, input_funcs, statement
            )
        except DatabaseError as exc:
            prepared.pop(key, None)
            raise _cursor_error(exc) from exc
        except AttributeError:
            if connection._sock is None:  # as pg8000's cursor says it (a disconnect)
                from pg8000.exceptions import InterfaceError

                raise InterfaceError("connection is closed") from None
            raise
        cursor._row_iter = iter(cursor._context.rows or ())
        cursor._input_oids = ()

    def do_commit(self, dbapi_connection: Any) -> None:
        dbapi_connection.execute_simple("commit")

    def do_rollback(self, dbapi_connection: Any) -> None:
        if dbapi_connection._in_transaction:
            dbapi_connection.execute_simple("rollback")


def _cursor_error(exc: Exception) -> Exception:
    """A server error as pg8000's cursor raises it (what SQLAlchemy's dialect expects)."""
    from pg8000.dbapi import IntegrityError, InterfaceError, ProgrammingError

    message = exc.args[0] if exc.args else str(exc)
    code = message.get("C") if isinstance(message, dict) else None
    kind = {"28000": InterfaceError, "23505": IntegrityError}.get(code or "", ProgrammingError)
    error: Exception = kind(message)
    return error


registry.register("postgresql.imangor_pg8000", __name__, "_Pg8000")
DRIVER = "postgresql+imangor_pg8000"


def build_engine(settings: Settings) -> Engine:
    """A new engine for these settings (tests and tools build their own; requests share one)."""
    pool: dict[str, Any] = {
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_timeout": settings.db_pool_timeout,
        "pool_recycle": settings.db_pool_recycle,
        "pool_pre_ping": False,  # `_ping_if_idle` instead
        # Errors (logged, and kept in a failed job's `error`) must never carry bound values:
        # password hashes, e-mails, token digests.
        "hide_parameters": True,
    }
    if settings.instance_connection_name:
        creator = _cloud_sql_creator(settings)
        engine = create_engine(f"{DRIVER}://", creator=creator, **pool)
    elif settings.database_url:
        url = settings.database_url
        connect_args = {
            **ssl_connect_args(url),
            "startup_params": _startup_params(settings),
            "timeout": settings.db_socket_timeout,  # pg8000: on connect and on every read
        }
        engine = create_engine(
            sqlalchemy_url(url).set(drivername=DRIVER), connect_args=connect_args, **pool
        )
    else:
        raise RuntimeError("no database configured: set DATABASE_URL or INSTANCE_CONNECTION_NAME")
    event.listen(engine, "handle_error", _socket_errors_disconnect)
    event.listen(engine, "connect", _fast_timestamps)
    event.listen(engine, "checkout", _ping_if_idle)
    event.listen(engine, "checkin", _returned)
    return engine


TIMESTAMPTZ = 1184  # PostgreSQL's type oid


def _fast_timestamps(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    """pg8000 parses each timestamptz with `strptime` (about 6 µs; a row has two or more):
    `fromisoformat` reads PostgreSQL's output format in a fraction of that, and whatever it
    cannot (infinity, BC dates) still goes to pg8000's own parser."""
    from datetime import datetime

    from pg8000.converters import timestamptz_in

    def parse(text: str) -> Any:
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            return timestamptz_in(text)

    dbapi_connection.register_in_adapter(TIMESTAMPTZ, parse)


def _ping_if_idle(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
    """Ping a connection that sat idle for more than PING_IDLE_AFTER seconds (in autocommit:
    the ping must not open the request's transaction); a dead one is replaced (the pool
    retries the checkout on DisconnectionError)."""
    returned = record.info.get(_RETURNED)
    if returned is None or time.monotonic() - returned <= PING_IDLE_AFTER:
        return  # brand new, or in steady use
    try:
        dbapi_connection.autocommit = True
        dbapi_connection.cursor().execute(";")
        dbapi_connection.autocommit = False
    except Exception as exc:
        raise DisconnectionError(f"a pooled connection failed its ping: {exc}") from exc


def _returned(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    if dbapi_connection is None:  # invalidated
        return
    dbapi_connection.autocommit = False  # a read-only request's autocommit ends with it
    record.info[_RETURNED] = time.monotonic()


def _socket_errors_disconnect(context: ExceptionContext) -> None:
    """A socket error pg8000 lets through unwrapped (a read timeout on the first byte of a
    reply is a bare TimeoutError) leaves the connection mid-reply: discard it, as SQLAlchemy
    discards one that pg8000 reports broken, so the pool never hands it out again."""
    if isinstance(context.original_exception, OSError):
        context.is_disconnect = True


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


def new_session(*, read_only: bool = False) -> Session:
    """A session; close it with `close_session` so work deferred until its connection is
    back in the pool (see `after_close`) runs. A `read_only` one runs each statement in
    autocommit (no BEGIN/COMMIT round trips) and raises on any write; end it with
    `close_session` (there is nothing to commit)."""
    session = _sessions(bind=get_engine())
    session.info[AFTER_CLOSE] = []
    if read_only:
        session.info[READ_ONLY] = True
    return session


@event.listens_for(Session, "after_begin")
def _autocommit_reads(session: Session, _transaction: Any, connection: Any) -> None:
    """pg8000 sends BEGIN before the first statement unless the connection is in autocommit;
    `_returned` turns autocommit off again when the connection goes back to the pool."""
    if session.info.get(READ_ONLY):
        connection.connection.driver_connection.autocommit = True


@event.listens_for(Session, "before_flush")
def _refuse_flush(session: Session, _context: Any, _instances: Any) -> None:
    if session.info.get(READ_ONLY):
        raise RuntimeError("a read-only session (a GET request's) tried to write")


@event.listens_for(Session, "do_orm_execute")
def _refuse_dml(state: ORMExecuteState) -> None:
    writes = state.is_insert or state.is_update or state.is_delete
    allowed = state.execution_options.get(ONE_STATEMENT_WRITE, False)
    if writes and not allowed and state.session.info.get(READ_ONLY):
        raise RuntimeError("a read-only session (a GET request's) tried to write")


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
