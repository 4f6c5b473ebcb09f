"""`make dev`: every unit behind one local server, with the production paths.

Each unit is loaded by functions-framework exactly as in production (`create_app(target,
source)`); the only thing added here is the dispatch by first path segment, which comes from
the registry, the same table the load balancer's URL map is generated from. With no
DATABASE_URL / REDIS_URL, embedded PostgreSQL and Redis start with data under `.local/`.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import uuid
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from typing import Any

from werkzeug.serving import WSGIRequestHandler, make_server

from infra.local.state import LOCAL, publish, withdraw

FALLBACK_UNIT = "health"
TASKS_ACCOUNT = "tasks-invoker@local.test"
SCHEDULER_ACCOUNT = (
    "scheduler@local.test"  # answers unknown paths with a 404 problem, as the LB's default does
)

log = logging.getLogger("imangor.dev")
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def build_app() -> WSGIApp:
    """One WSGI app dispatching to each unit's functions-framework app by path prefix."""
    import functions_framework

    from imangor.registry import FUNCTIONS_DIR, REGISTRY, unit_names

    apps = {
        unit: functions_framework.create_app(  # type: ignore[no-untyped-call]
            target=unit, source=str(FUNCTIONS_DIR / unit / "main.py")
        )
        for unit in unit_names()
    }
    prefixes = REGISTRY.path_prefixes()

    def dispatch(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        prefix = "/" + path.strip("/").split("/")[0]
        unit = prefixes.get(prefix, FALLBACK_UNIT)
        return apps[unit](environ, start_response)  # type: ignore[no-any-return]

    return dispatch


class ProblemRequestHandler(WSGIRequestHandler):
    """werkzeug's request handler, answering the errors the HTTP server itself raises (a
    request line or headers too long, a malformed request line) with a problem document
    instead of http.server's HTML page, as every unit answers.

    Bodies as a production front end treats them: `100 Continue` is sent only when the
    app starts reading the body (a body refused from its headers, 413, never gets one), and
    what the app left unread is drained for at most DRAIN_BYTES before the connection
    closes (werkzeug's own drain reads up to 10 GB, 10 MB at a time)."""

    DRAIN_BYTES = 64 * 1024
    _continue_pending = False
    _answered = False

    def handle_expect_100(self) -> bool:
        """http.server would answer `100 Continue` as soon as it has read the headers."""
        self._continue_pending = True
        return True

    def run_wsgi(self) -> None:
        self._answered = False
        if "Expect" in self.headers:
            del self.headers["Expect"]  # werkzeug would send a 100 before the app runs, too
        socket_file = self.rfile
        self.rfile = _LazyInput(socket_file, self)  # type: ignore[assignment]
        try:
            super().run_wsgi()
        finally:
            self.rfile = socket_file

    def send_response(self, code: int, message: str | None = None) -> None:
        self._answered = True
        super().send_response(code, message)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        title, long = self.responses.get(code, ("Error", ""))
        slug = "-".join(title.lower().replace("-", " ").split())
        body = json.dumps(
            {
                "type": f"https://imangor.dev/problems/{slug}",
                "title": title,
                "status": code,
                "detail": explain or message or long,
                "request_id": uuid.uuid4().hex,
            }
        ).encode()
        self.log_error("code %d, message %s", code, message or title)
        self.send_response(code, title)
        self.send_header("Connection", "close")
        self.send_header("Content-Type", "application/problem+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class _LazyInput:
    """The socket's input as the app and werkzeug's after-answer drain see it: the first
    read by the app sends the pending `100 Continue`; once the answer has gone out, reads
    return what has arrived, DRAIN_BYTES in all, then nothing."""

    def __init__(self, socket_file: Any, handler: ProblemRequestHandler) -> None:
        self._file = socket_file
        self._handler = handler
        self._drained = 0

    def _before_read(self) -> None:
        handler = self._handler
        if handler._continue_pending and not handler._answered:
            handler._continue_pending = False
            handler.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            handler.wfile.flush()

    def read(self, size: int = -1) -> bytes:
        if self._handler._answered:
            room = ProblemRequestHandler.DRAIN_BYTES - self._drained
            if room <= 0:
                return b""
            data: bytes = self._file.read1(room if size < 0 else min(size, room))
            self._drained += len(data)
            return data
        self._before_read()
        return self._file.read(size)  # type: ignore[no-any-return]

    def readline(self, size: int = -1) -> bytes:
        self._before_read()
        return self._file.readline(size)  # type: ignore[no-any-return]


def make_dev_server(port: int, app: WSGIApp) -> Any:
    """The local HTTP server (werkzeug's, threaded, loopback only)."""
    return make_server("127.0.0.1", port, app, threaded=True, request_handler=ProblemRequestHandler)


def start_services(stack: ExitStack, *, storage: bool = True) -> None:
    """Embedded PostgreSQL / Redis for whichever of DATABASE_URL / REDIS_URL is unset (and
    the storage emulator without STORAGE_BUCKET, unless `storage` is False)."""
    from infra.local.embedded import EmbeddedPostgres, EmbeddedRedis

    if not os.environ.get("DATABASE_URL") and not os.environ.get("INSTANCE_CONNECTION_NAME"):
        log.info("no DATABASE_URL: starting embedded PostgreSQL (data in %s)", LOCAL / "postgres")
        os.environ["DATABASE_URL"] = stack.enter_context(EmbeddedPostgres(LOCAL / "postgres"))
    if not os.environ.get("REDIS_URL"):
        log.info("no REDIS_URL: starting embedded Redis (data in %s)", LOCAL / "redis")
        os.environ["REDIS_URL"] = stack.enter_context(EmbeddedRedis(LOCAL / "redis"))
    if storage and not (
        os.environ.get("STORAGE_EMULATOR_HOST") or os.environ.get("STORAGE_BUCKET")
    ):
        from infra.local.storage import LocalStorage

        log.info("no STORAGE_BUCKET: starting the storage emulator (data in %s)", LOCAL / "storage")
        stack.enter_context(LocalStorage(LOCAL / "storage", "imangor-local"))


def configure_local_tasks(port: int) -> Any:
    """Cloud Tasks/Scheduler stand-ins sign OIDC tokens with a key kept in .local/oidc; the
    units verify them against its certificate, exactly as they verify Google's."""
    from infra.local.tasks import LocalSigner

    signer = LocalSigner(LOCAL / "oidc")
    base = f"http://127.0.0.1:{port}"
    os.environ.setdefault("TASKS_TARGET_URL", base)
    os.environ.setdefault("OIDC_AUDIENCE", base)
    os.environ.setdefault("OIDC_CERTS_URL", signer.certs_url)
    os.environ.setdefault("OIDC_SERVICE_ACCOUNTS", f'["{TASKS_ACCOUNT}", "{SCHEDULER_ACCOUNT}"]')
    os.environ.setdefault("TASKS_SERVICE_ACCOUNT", TASKS_ACCOUNT)
    return signer


def banner(base: str) -> str:
    """What a newcomer needs once the stack is up: where everything is, who can sign in and
    how, and what the other local commands do."""
    from sqlalchemy.engine import make_url

    from imangor.config import get_settings

    settings = get_settings()
    database = settings.database_url or f"Cloud SQL {settings.instance_connection_name}"
    if settings.database_url:
        database = make_url(settings.database_url).render_as_string(hide_password=True)
    admin = settings.first_admin_email
    who = (
        f"{admin} (FIRST_ADMIN_EMAIL, password FIRST_ADMIN_PASSWORD)"
        if admin
        else "none: set FIRST_ADMIN_EMAIL and FIRST_ADMIN_PASSWORD and restart "
        "(only staff and admins manage the catalog)"
    )
    email = admin or "you@example.com"
    return "\n".join(
        [
            f"Imangor API ready on {base}",
            f"  docs:     {base}/docs   (redoc: {base}/redoc)",
            f"  database: {database}",
            f"  redis:    {settings.redis_url}",
            f"  admin:    {who}",
            f"  sign up:  curl -X POST {base}/auth/register -H 'Content-Type: application/json' "
            f'-d \'{{"email": "{email}", "password": "at least ten characters"}}\'',
            f"  token:    curl -X POST {base}/auth/token -d 'username={email}&password=…'",
            "  then:     -H 'Authorization: Bearer <access_token>' on every call",
            "  also:     make seed N=10000 · make cron NAME=daily-report (in another terminal)",
            "  Ctrl-C stops everything",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    import argparse

    from imangor.config import get_settings
    from imangor.observability import configure_logging

    parser = argparse.ArgumentParser(description="Run every unit locally.")
    parser.parse_args(argv)
    os.environ.setdefault("LOG_FORMAT", "text")  # JSON stays the production format
    configure_logging("INFO", text=os.environ["LOG_FORMAT"] == "text")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # our access log says it all
    with ExitStack() as stack:
        start_services(stack)
        port = int(os.environ.get("PORT", "8080"))
        signer = configure_local_tasks(port)
        get_settings.cache_clear()
        from imangor.db import get_engine
        from imangor.migrate import migrate
        from infra.local.inventory import stale_sections
        from infra.local.tasks import LocalDispatcher, LocalScheduler, prepare

        migrate()
        prepare(get_engine())
        if stale := stale_sections():
            log.warning(
                "terraform/generated/inventory.json is stale (%s): the local dispatcher and "
                "scheduler run what it says; run `make inventory`",
                ", ".join(stale),
            )
        server = make_dev_server(port, build_app())
        # How long a delivery may run before it is given again (Cloud Tasks' dispatch
        # deadline); the fault suite shortens it so a dispatcher killed mid-task redelivers soon.
        lease = float(os.environ.get("IMANGOR_TASK_LEASE_SECONDS", "60"))
        dispatcher = LocalDispatcher(signer, lease_seconds=lease).start()
        stack.callback(dispatcher.stop)
        base = f"http://127.0.0.1:{server.port}"
        audience = get_settings().oidc_audience or base
        scheduler = LocalScheduler(signer, base, audience, SCHEDULER_ACCOUNT).start()
        stack.callback(scheduler.stop)
        stop = threading.Event()

        def shutdown(*_: object) -> None:
            if not stop.is_set():
                stop.set()
                threading.Thread(target=server.shutdown, daemon=True).start()

        signal.signal(signal.SIGINT, shutdown)
        signal.signal(signal.SIGTERM, shutdown)
        print(banner(base), flush=True)
        publish(
            base_url=base,
            oidc_audience=audience,
            database_url=os.environ.get("DATABASE_URL"),
            redis_url=os.environ.get("REDIS_URL"),
        )
        stack.callback(withdraw)
        server.serve_forever()
        log.info("stopping")
    return 0


if __name__ == "__main__":
    sys.exit(main())
