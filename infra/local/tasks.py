"""Cloud Tasks and Cloud Scheduler, locally: what `make dev` and the tests run.

The dispatcher delivers `local_tasks` rows the way Cloud Tasks does: an HTTP POST with the
X-CloudTasks-* headers and a Google-style OIDC token (signed by a local key that only the dev
server and the tests know), retries with the queue's backoff, dedup by task name, the
queue's rate and concurrency limits, and a lease so a dispatcher killed mid-task delivers
that task again after a restart. Its state is in PostgreSQL, so stopping loses nothing.

Queues and schedules come from `terraform/generated/inventory.json`, the file Terraform
creates the real queues and Scheduler jobs from, so local and cloud read one contract.
`local_tasks` is this stack's own table: `prepare()` creates it; the production schema
(the Alembic migrations) never has it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import (
    DateTime,
    Index,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, Insert, insert
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from imangor.registry import Queue
from imangor.tasks.backends import TaskRequest, install_local_backend
from infra.local.inventory import load_inventory

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session

log = logging.getLogger(__name__)
GOOGLE_ISSUER = "https://accounts.google.com"


class LocalBase(DeclarativeBase):
    """The local stack's own tables, apart from the production models' metadata."""

    metadata = MetaData()
    type_annotation_map = {datetime: DateTime(timezone=True)}


class LocalTask(LocalBase):
    """One task in the local dispatcher's queue (Cloud Tasks' stand-in). It lives in
    PostgreSQL so that stopping the dev server loses nothing."""

    __tablename__ = "local_tasks"
    __table_args__ = (Index("ix_local_tasks_due", "status", "next_attempt_at"),)

    name: Mapped[str] = mapped_column(String(200), primary_key=True)  # dedupe, like Cloud Tasks
    queue: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(Text)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    headers: Mapped[dict[str, str]] = mapped_column(JSONB)
    oidc_email: Mapped[str | None] = mapped_column(String(320))  # signed in at each dispatch
    oidc_audience: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    dispatch_count: Mapped[int] = mapped_column(default=0, server_default="0")
    response_count: Mapped[int] = mapped_column(default=0, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(server_default=func.now())
    leased_until: Mapped[datetime | None]
    last_status: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class LocalBackend:
    """Queue a committed job's task in `local_tasks` (in the outbox's transaction); the
    dispatcher delivers it over HTTP. A second push of one task name is dropped."""

    def push(self, session: Session, request: TaskRequest) -> None:
        session.execute(
            _queue_task(),
            {
                "name": request.name,
                "queue": request.queue,
                "url": request.url,
                "body": request.body,
                "headers": request.headers,
                "oidc_email": request.oidc_service_account,
                "oidc_audience": request.oidc_audience,
            },
        )


@functools.cache
def _queue_task() -> Insert:
    """The push's INSERT, built once (only its parameters vary per task)."""
    table = cast(Table, LocalTask.__table__)
    return (
        insert(table)
        .values({column: bindparam(column) for column in _PUSHED})
        .on_conflict_do_nothing(index_elements=[table.c.name])
    )


_PUSHED = ("name", "queue", "url", "body", "headers", "oidc_email", "oidc_audience")


def prepare(engine: Engine) -> None:
    """Create the local stack's table (if missing) and route TASKS_BACKEND=local to it."""
    LocalBase.metadata.create_all(engine)
    install_local_backend(LocalBackend())


def inventory_queues(inventory: dict[str, Any] | None = None) -> dict[str, Queue]:
    """The queues Terraform creates, read from the same inventory."""
    queues = (inventory or load_inventory())["queues"]
    return {name: Queue(**spec) for name, spec in queues.items()}


def backoff(queue: Queue, retry: int) -> float:
    """Seconds before retry number `retry` (1-based), as Cloud Tasks computes it: doubling
    `max_doublings` times from the minimum, then growing linearly, capped at the maximum."""
    doublings = min(retry - 1, queue.max_doublings)
    delay = queue.min_backoff_seconds * 2**doublings
    linear_steps = max(0, retry - 1 - queue.max_doublings)
    delay += linear_steps * queue.min_backoff_seconds * 2**queue.max_doublings
    return float(min(delay, queue.max_backoff_seconds))


class LocalSigner:
    """An RSA key standing in for Google's: signs OIDC ID tokens, publishes its certificate
    document (kid → PEM) at `certs_url` for the verifying side."""

    def __init__(self, directory: Path) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        directory.mkdir(parents=True, exist_ok=True)
        key_file = directory / "oidc-key.pem"
        if not key_file.exists():
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            key_file.write_bytes(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
            key_file.chmod(0o600)
        # Parsed once: PyJWT re-parses and re-checks a PEM on every call (≈40 ms, holding the
        # GIL), which made the dispatcher deliver one task at a time.
        private = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        assert isinstance(private, rsa.RSAPrivateKey)
        self._key = private
        public_pem = (
            private.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
        self.kid = hashlib.sha256(public_pem.encode()).hexdigest()[:16]
        certs = directory / "certs.json"
        certs.write_text(json.dumps({self.kid: public_pem}))
        self.certs_url = f"file://{certs}"

    def sign(self, audience: str, email: str, *, ttl: int = 3600, **claims: Any) -> str:
        import jwt

        now = int(time.time())
        payload = {
            "iss": GOOGLE_ISSUER,
            "aud": audience,
            "sub": email,
            "email": email,
            "email_verified": True,
            "iat": now,
            "exp": now + ttl,
            **claims,
        }
        return jwt.encode(payload, self._key, "RS256", headers={"kid": self.kid})


@dataclass
class _Due:
    name: str
    queue: str
    url: str
    body: bytes
    headers: dict[str, str]
    oidc_email: str | None
    oidc_audience: str | None
    dispatch_count: int
    response_count: int


class LocalDispatcher:
    """Polls `local_tasks` and delivers what is due; `start()` runs it in a thread."""

    def __init__(
        self,
        signer: LocalSigner,
        *,
        poll_seconds: float = 0.05,
        lease_seconds: float = 60.0,
        request_timeout: float = 30.0,
        queues: dict[str, Queue] | None = None,
    ) -> None:
        self.signer = signer
        self.queues = queues if queues is not None else inventory_queues()
        self.poll_seconds = poll_seconds
        self.lease_seconds = lease_seconds
        self.request_timeout = request_timeout
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        width = sum(q.max_concurrent_dispatches for q in self.queues.values())
        self._pool = ThreadPoolExecutor(max_workers=min(width, 32), thread_name_prefix="dispatch")
        self._slots = {
            n: threading.Semaphore(q.max_concurrent_dispatches) for n, q in self.queues.items()
        }
        self._last_start = dict.fromkeys(self.queues, 0.0)
        self._pace = threading.Lock()

    def start(self) -> LocalDispatcher:
        self._thread = threading.Thread(target=self._loop, name="local-dispatcher", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._pool.shutdown(wait=True, cancel_futures=False)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                if not self.dispatch_due():
                    self._stop.wait(self.poll_seconds)
            except Exception:
                log.exception("local dispatcher cycle failed")
                self._stop.wait(1.0)

    def dispatch_due(self, limit: int = 50) -> int:
        """Lease the due tasks and hand each to a worker; how many were started."""
        from imangor.db import get_engine

        lease = timedelta(seconds=self.lease_seconds)
        with get_engine().begin() as connection:
            rows = connection.execute(
                text("""
                UPDATE local_tasks SET leased_until = now() + :lease,
                                       dispatch_count = dispatch_count + 1
                WHERE name IN (
                    SELECT name FROM local_tasks
                    WHERE status = 'pending' AND next_attempt_at <= now()
                      AND (leased_until IS NULL OR leased_until < now())
                    ORDER BY next_attempt_at LIMIT :limit FOR UPDATE SKIP LOCKED)
                RETURNING name, queue, url, body, headers, oidc_email, oidc_audience,
                          dispatch_count, response_count
            """),
                {"lease": lease, "limit": limit},
            ).all()
        for row in rows:
            due = _Due(
                row.name,
                row.queue,
                row.url,
                bytes(row.body),
                dict(row.headers),
                row.oidc_email,
                row.oidc_audience,
                row.dispatch_count,
                row.response_count,
            )
            self._slots[due.queue].acquire()
            self._wait_for_rate(due.queue)
            self._pool.submit(self._deliver, due)
        return len(rows)

    def _wait_for_rate(self, queue: str) -> None:
        interval = 1.0 / self.queues[queue].max_dispatches_per_second
        with self._pace:
            wait = self._last_start[queue] + interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self._last_start[queue] = time.monotonic()

    def _deliver(self, due: _Due) -> None:
        import requests

        try:
            headers = {
                **due.headers,
                "X-CloudTasks-QueueName": due.queue,
                "X-CloudTasks-TaskName": due.name,
                "X-CloudTasks-TaskRetryCount": str(due.dispatch_count - 1),
                "X-CloudTasks-TaskExecutionCount": str(due.response_count),
                "X-CloudTasks-TaskETA": f"{time.time():.6f}",
                "User-Agent": "Google-Cloud-Tasks",
            }
            if due.oidc_email and due.oidc_audience:
                token = self.signer.sign(due.oidc_audience, due.oidc_email)
                headers["Authorization"] = f"Bearer {token}"
            try:
                response = requests.post(
                    due.url, data=due.body, headers=headers, timeout=self.request_timeout
                )
                self._record(due, response.status_code, None if response.ok else response.text)
            except requests.RequestException as exc:
                self._record(due, None, f"{type(exc).__name__}: {exc}")
        except Exception:
            log.exception("delivering %s failed", due.name)
        finally:
            self._slots[due.queue].release()

    def _record(self, due: _Due, status: int | None, error: str | None) -> None:
        from imangor.db import get_engine

        queue = self.queues[due.queue]
        answered = 1 if status is not None else 0
        if error is None:
            state, delay = "done", 0.0
        elif due.dispatch_count >= queue.max_attempts:
            state, delay = "dead", 0.0
            log.error("task %s gave up after %d attempts: %s", due.name, due.dispatch_count, error)
        else:
            state, delay = "pending", backoff(queue, due.dispatch_count)
        with get_engine().begin() as connection:
            connection.execute(
                text("""
                UPDATE local_tasks SET status = :state, leased_until = NULL,
                    next_attempt_at = now() + :delay, last_status = :status,
                    last_error = :error, response_count = response_count + :answered
                WHERE name = :name
            """),
                {
                    "state": state,
                    "delay": timedelta(seconds=delay),
                    "status": status,
                    "error": (error or "")[:2000] or None,
                    "answered": answered,
                    "name": due.name,
                },
            )


@dataclass(frozen=True)
class Schedule:
    """A Cloud Scheduler job as the inventory gives it to Terraform."""

    name: str
    schedule: str  # cron syntax
    time_zone: str
    path: str  # POSTed on the API's base URL (Terraform: on the cron unit's URL)

    def next_after(self, moment: datetime) -> datetime:
        from zoneinfo import ZoneInfo

        from croniter import croniter

        local = moment.astimezone(ZoneInfo(self.time_zone))
        following: datetime = croniter(self.schedule, local).get_next(datetime)
        return following.astimezone(UTC)


def inventory_schedules(inventory: dict[str, Any] | None = None) -> dict[str, Schedule]:
    """The Scheduler jobs Terraform creates, read from the same inventory."""
    schedules = (inventory or load_inventory())["schedules"]
    return {
        name: Schedule(name, spec["schedule"], spec["time_zone"], spec["path"])
        for name, spec in schedules.items()
    }


class LocalScheduler:
    """Cloud Scheduler, locally: POSTs each inventory schedule's path when it is due, with
    the X-CloudScheduler-ScheduleTime header and an OIDC token, as Scheduler does."""

    def __init__(
        self,
        signer: LocalSigner,
        base_url: str,
        audience: str,
        email: str,
        schedules: dict[str, Schedule] | None = None,
    ) -> None:
        self.signer, self.base_url, self.audience, self.email = signer, base_url, audience, email
        self.schedules = schedules if schedules is not None else inventory_schedules()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> LocalScheduler:
        self._thread = threading.Thread(target=self._loop, name="local-scheduler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def trigger(self, name: str, scheduled_for: datetime | None = None) -> Any:
        """Run one job now, as Scheduler would at `scheduled_for`; returns the response."""
        import requests

        job = self.schedules.get(name)
        if job is None:
            raise KeyError(f"no schedule {name!r}; the inventory has {sorted(self.schedules)}")
        when = (scheduled_for or datetime.now(UTC)).astimezone(UTC)
        token = self.signer.sign(self.audience, self.email)
        response = requests.post(
            f"{self.base_url}{job.path}",
            timeout=600,
            headers={
                "Authorization": f"Bearer {token}",
                "User-Agent": "Google-Cloud-Scheduler",
                "X-CloudScheduler-ScheduleTime": when.isoformat().replace("+00:00", "Z"),
                "X-CloudScheduler-JobName": name,
            },
        )
        log.info("cron %s at %s: %s", name, when.isoformat(), response.status_code)
        return response

    def _loop(self) -> None:
        upcoming = {name: job.next_after(datetime.now(UTC)) for name, job in self.schedules.items()}
        while not self._stop.wait(1.0):
            for name, due in list(upcoming.items()):
                if datetime.now(UTC) >= due:
                    try:
                        self.trigger(name, due)
                    except Exception as exc:
                        log.warning("cron %s failed: %s", name, exc)
                    upcoming[name] = self.schedules[name].next_after(due)
