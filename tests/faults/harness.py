"""The fault suite: a bounded mixed load against the API while its dependencies fail.

Everything runs on loopback, on servers this harness starts itself, so stopping or freezing
them never touches a server anyone else uses: a dedicated embedded PostgreSQL (fsync off), a
dedicated embedded Redis and `python -m infra.local.dev` (every unit, the local Cloud Tasks
dispatcher and scheduler) pointed at them. While worker threads read the catalog and their
orders, sign in, and place orders with `Idempotency-Key`s (retrying an unanswered or 503
order with the same key, as a client should), the faults come one after the other:

- PostgreSQL stopped, then started again (same port);
- PostgreSQL frozen (SIGSTOP on the postmaster and every backend), then resumed (SIGCONT);
- Redis stopped, then started again; Redis frozen (SIGSTOP), then resumed;
- the API server killed (SIGKILL) while orders are in flight, then started again.

It checks that nothing but 503 comes back as a 5xx, that the same API process serves again
after each dependency returns (no restart; the kill case excepted), and, once every order
key has a definite answer, that nothing was lost or doubled: each order answered 201 exists
once, no order exists that was not answered, stock is exact, and each order has exactly one
`process_order` job, finished.

    python -m tests.faults          # the short run (as in `make test`)
    python -m tests.faults --long   # `make faults`
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[2]
# A throwaway account's password and a local signing key, on servers that live for one run.
PASSWORD = "fault suite passphrase"  # nosec B105  # pragma: allowlist secret
SECRET_KEY = "fault-suite-secret-key-that-is-long-enough-0123456789"  # pragma: allowlist secret
SCHEDULER = "scheduler@local.test"


@dataclass(frozen=True)
class Profile:
    """How hard and how long: the short run stays well under a minute."""

    name: str
    threads: int
    fault_seconds: float  # how long each dependency stays down or frozen
    calm_seconds: float  # load before each fault and after recovery
    max_requests: int  # a bound on the whole run, whatever the timings
    customers: int
    products: int

    @classmethod
    def short(cls) -> Profile:
        return cls("short", 16, 2.5, 0.5, 20_000, 60, 10)

    @classmethod
    def long(cls) -> Profile:
        return cls("long", 32, 8.0, 4.0, 200_000, 300, 40)


@dataclass
class Order:
    """One order a client means to place once, retried with its key until answered."""

    key: str
    customer: int
    product_id: str
    quantity: int
    status: int | None = None  # the definite answer: 201, or a 4xx that placed nothing
    order_id: str | None = None
    attempts: int = 0


@dataclass
class Report:
    profile: str
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    unanswered: int = 0  # connection refused or reset, or no answer in time (the kill)
    other_5xx: list[str] = field(default_factory=list)
    orders_sent: int = 0
    orders_answered_201: int = 0
    orders_in_database: int = 0
    orders_lost: int = 0
    orders_doubled: int = 0
    stock_mismatches: int = 0
    jobs_missing: int = 0
    jobs_doubled: int = 0
    jobs_unfinished: int = 0
    recovery_seconds: dict[str, float] = field(default_factory=dict)
    phases: dict[str, Counter[str]] = field(default_factory=dict)  # answers by phase
    unavailable_because: Counter[str] = field(default_factory=Counter)  # 503s by detail
    restarted_without_kill: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def service_unavailable(self) -> int:
        return self.statuses[503]

    def problems(self) -> list[str]:
        found = []
        if self.other_5xx:
            found.append(f"{len(self.other_5xx)} 5xx other than 503: {self.other_5xx[:3]}")
        for name in ("orders_lost", "orders_doubled", "stock_mismatches"):
            if getattr(self, name):
                found.append(f"{name}: {getattr(self, name)}")
        for name in ("jobs_missing", "jobs_doubled", "jobs_unfinished"):
            if getattr(self, name):
                found.append(f"{name}: {getattr(self, name)}")
        if self.restarted_without_kill:
            found.append(f"the API process changed during {self.restarted_without_kill}")
        if self.orders_answered_201 == 0:
            found.append("no order was placed at all")
        found.extend(self._unfelt())
        return found

    def _unfelt(self) -> list[str]:
        """Faults the load did not feel (then the run proved nothing about them): the
        database's as 503s, Redis's as sign-ins refused (LOGIN_FAIL_CLOSED), the kill as
        requests left unanswered (orders are now fast enough that every order thread can be
        waiting out a 429's Retry-After while the server is down; reads still meet it)."""
        evidence = {
            "PostgreSQL stopped": ("order 503", "other 503"),
            "PostgreSQL frozen": ("order 503", "other 503"),
            "Redis stopped": ("other 503",),
            "Redis paused": ("other 503",),
            "API server killed mid-order": ("order unanswered", "other unanswered"),
        }
        return [
            f"{phase}: not felt by the load"
            for phase, signs in evidence.items()
            if not any(self.phases.get(phase, Counter())[sign] for sign in signs)
        ]

    def summary(self) -> str:
        statuses = ", ".join(f"{code}: {n}" for code, n in sorted(self.statuses.items()))
        recovery = ", ".join(f"{k} {v:.1f} s" for k, v in self.recovery_seconds.items())
        return "\n".join(
            [
                f"fault suite ({self.profile}) in {self.seconds:.0f} s",
                f"  requests: {self.requests} ({statuses}; unanswered: {self.unanswered})",
                f"  503s: {self.service_unavailable}; other 5xx: {len(self.other_5xx)}",
                f"  orders: {self.orders_sent} sent, {self.orders_answered_201} answered 201, "
                f"{self.orders_in_database} in the database, lost {self.orders_lost}, "
                f"doubled {self.orders_doubled}; stock mismatches {self.stock_mismatches}",
                f"  process_order jobs: missing {self.jobs_missing}, doubled "
                f"{self.jobs_doubled}, unfinished {self.jobs_unfinished}",
                f"  back to 200 after: {recovery}",
                "  503 because: "
                + "; ".join(f"{d} ({n})" for d, n in self.unavailable_because.most_common()),
                *(
                    f"  during {phase}: " + ", ".join(f"{k} {n}" for k, n in sorted(c.items()))
                    for phase, c in self.phases.items()
                ),
            ]
        )


# -- the servers ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Stack:
    """PostgreSQL, Redis and the API server, each started, stopped, frozen or killed here."""

    def __init__(self, directory: Path, log: Callable[[str], None]) -> None:
        from infra.local.embedded import EmbeddedPostgres, EmbeddedRedis

        self.directory = directory
        self.log = log
        self.postgres = EmbeddedPostgres(directory / "postgres", fsync=False)
        self.redis = EmbeddedRedis(directory / "redis")
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.database_url = ""
        self.redis_url = ""
        self.api: subprocess.Popen[bytes] | None = None
        self.api_log = directory / "api.log"

    def start(self) -> None:
        self.database_url = self.postgres.start()
        self.redis_url = self.redis.start()
        self.start_api()

    def close(self) -> None:
        self.resume_postgres()
        self.resume_redis()
        self.kill_api()
        self.redis.stop()
        self.postgres.stop()

    def _env(self) -> dict[str, str]:
        from imangor.config import Settings

        env = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
        env = {k: v for k, v in env.items() if not k.startswith(("STORAGE_", "TEST_"))}
        return {
            **env,
            "PORT": str(self.port),
            "IMANGOR_LOCAL_DIR": str(self.directory / "local"),
            "IMANGOR_TASK_LEASE_SECONDS": "3",
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "STORAGE_BUCKET": "imangor-faults",  # no storage emulator: nothing here uploads
            "SECRET_KEY": SECRET_KEY,
            "ARGON2_MEMORY_KIB": "8192",
            "ARGON2_TIME_COST": "1",
            "MAX_CONCURRENT_HASHES": "4",
            "DB_POOL_SIZE": "24",
            "DB_SOCKET_TIMEOUT": "1",
            "DB_STATEMENT_TIMEOUT_MS": "800",
            "DB_POOL_TIMEOUT": "1",
            "REDIS_TIMEOUT": "0.3",
            "RATE_LIMIT_DEFAULT": "1000000/60",
            "LOGIN_LIMIT_PER_ACCOUNT": "1000000/60",
            "LOGIN_LIMIT_PER_IP": "1000000/60",
            "LOG_FORMAT": "text",
        }

    def start_api(self) -> None:
        with self.api_log.open("ab") as out:
            self.api = subprocess.Popen(
                [sys.executable, "-m", "infra.local.dev"],
                cwd=ROOT,
                env=self._env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.api.poll() is not None:
                raise RuntimeError(f"the API server exited; see {self.api_log}:\n{self.tail()}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.base}/ready", timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"the API server did not get ready; see {self.api_log}")

    def kill_api(self) -> None:
        if self.api is not None and self.api.poll() is None:
            os.killpg(self.api.pid, signal.SIGKILL)  # its whole session: the server dies as is
            self.api.wait(10)

    @property
    def api_pid(self) -> int | None:
        return self.api.pid if self.api is not None else None

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.api_log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _postgres_processes(self) -> list[Any]:
        import psutil

        if self.postgres.pid is None:
            return []
        main = psutil.Process(self.postgres.pid)
        return [main, *main.children(recursive=True)]

    def freeze_postgres(self) -> None:
        for process in self._postgres_processes():  # the postmaster first: it forks no more
            with contextlib.suppress(OSError):
                process.send_signal(signal.SIGSTOP)

    def resume_postgres(self) -> None:
        for process in reversed(self._postgres_processes()):
            with contextlib.suppress(OSError):
                process.send_signal(signal.SIGCONT)

    def freeze_redis(self) -> None:
        if self.redis.pid is not None:
            os.kill(self.redis.pid, signal.SIGSTOP)

    def resume_redis(self) -> None:
        if self.redis.pid is not None:
            os.kill(self.redis.pid, signal.SIGCONT)


# -- the load ------------------------------------------------------------------------------


class Load:
    """Worker threads sending a mix of reads, sign-ins and orders until told to stop."""

    ORDER_BUDGET = 8  # attempts per customer per minute: under the API's 10/60 order limit

    def __init__(self, stack: Stack, profile: Profile, report: Report) -> None:
        self.stack = stack
        self.profile = profile
        self.report = report
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.customers: list[dict[str, Any]] = []
        self.products: list[str] = []
        self.orders: list[Order] = []
        self.attempts: dict[int, list[float]] = {}
        self.phase = "calm"

    # -- set-up

    def seed(self) -> dict[str, int]:
        """Customers and products, written straight into the database; the initial stock."""
        from argon2 import PasswordHasher
        from sqlalchemy import create_engine, text

        from imangor.db import sqlalchemy_url

        hashed = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
        engine = create_engine(sqlalchemy_url(self.stack.database_url))
        stock = 1_000_000
        with engine.begin() as connection:
            for n in range(self.profile.customers):
                connection.execute(
                    text(
                        "INSERT INTO users (id, email, hashed_password, role, full_name, "
                        "email_verified, is_active, created_at, updated_at) VALUES (:id, "
                        ":email, :hashed, 'customer', 'Fault', true, true, now(), now())"
                    ),
                    {"id": uuid.uuid4(), "email": f"c{n}@faults.test", "hashed": hashed},
                )
            for n in range(self.profile.products):
                product_id = uuid.uuid4()
                connection.execute(
                    text(
                        "INSERT INTO products (id, name, price, stock, attributes, created_at, "
                        "updated_at) VALUES (:id, :name, 1.00, :stock, CAST(:attributes AS "
                        "jsonb), now(), now())"
                    ),
                    {
                        "id": product_id,
                        "name": f"Fault {n}",
                        "stock": stock,
                        "attributes": json.dumps({"category": "faults", "description": "x"}),
                    },
                )
                self.products.append(str(product_id))
        engine.dispose()

        def sign_in(n: int) -> dict[str, Any]:
            email = f"c{n}@faults.test"
            answer = requests.post(
                f"{self.stack.base}/auth/token",
                data={"username": email, "password": PASSWORD},
                timeout=30,
            )
            answer.raise_for_status()
            token = answer.json()["access_token"]
            return {"email": email, "auth": {"Authorization": f"Bearer {token}"}}

        with ThreadPoolExecutor(max_workers=4) as pool:
            self.customers = list(pool.map(sign_in, range(self.profile.customers)))
        return dict.fromkeys(self.products, stock)

    # -- running

    def start(self) -> None:
        for n in range(self.profile.threads):
            thread = threading.Thread(target=self._work, args=(n,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(60)

    def _work(self, seed: int) -> None:
        rng = random.Random(seed)  # nosec B311: load mix, not security
        session = requests.Session()
        pending: list[Order] = []
        while not self.stop.is_set() and self.report.requests < self.profile.max_requests:
            if pending and rng.random() < 0.5:
                order = pending.pop(0)
                if not self._try(session, order):
                    pending.append(order)
                    time.sleep(0.2)
                continue
            choice = rng.random()
            if choice < 0.35:
                order = self._new_order(rng)
                if order is None:
                    self._read(session, rng)
                elif not self._try(session, order):
                    pending.append(order)
            elif choice < 0.5:
                customer = rng.choice(self.customers)
                form = {"username": customer["email"], "password": PASSWORD}
                self._send(session, "POST", "/auth/token", data=form)
            else:
                self._read(session, rng)
        # Orders still unanswered stay in self.orders with no status: resolved after the run.

    def _read(self, session: requests.Session, rng: random.Random) -> None:
        choice = rng.random()
        if choice < 0.4:
            self._send(session, "GET", "/products/", params={"category": "faults", "limit": 5})
        elif choice < 0.7:
            self._send(session, "GET", f"/products/{rng.choice(self.products)}")
        else:
            customer = rng.choice(self.customers)
            self._send(session, "GET", "/orders/", headers=customer["auth"])

    def _new_order(self, rng: random.Random) -> Order | None:
        """An order for a customer with attempts left this minute (or None)."""
        now = time.monotonic()
        with self.lock:
            for _ in range(5):
                customer = rng.randrange(len(self.customers))
                recent = [t for t in self.attempts.get(customer, []) if now - t < 60]
                if len(recent) < self.ORDER_BUDGET - 1:  # one attempt kept for a retry
                    self.attempts[customer] = recent
                    order = Order(uuid.uuid4().hex, customer, rng.choice(self.products), 1)
                    self.orders.append(order)
                    self.report.orders_sent += 1
                    return order
        return None

    def _try(self, session: requests.Session, order: Order, *, timeout: float = 30) -> bool:
        """Send the order (again, same key); whether it now has a definite answer."""
        with self.lock:
            self.attempts.setdefault(order.customer, []).append(time.monotonic())
            order.attempts += 1
        customer = self.customers[order.customer]
        response = self._send(
            session,
            "POST",
            "/orders/",
            json={"product_id": order.product_id, "quantity": order.quantity},
            headers={**customer["auth"], "Idempotency-Key": order.key},
            timeout=timeout,
        )
        if response is None or response.status_code in (429, 500, 502, 503, 504):
            # Not answered, "not now", or an error that may have come after the commit: the
            # outcome is unknown until the same key is sent again.
            return False
        with self.lock:
            order.status = response.status_code
            if response.status_code == 201:
                order.order_id = response.json()["id"]
        return True

    def _send(
        self, session: requests.Session, method: str, path: str, *, timeout: float = 30, **kw: Any
    ) -> requests.Response | None:
        phase = self.phase  # when it was sent
        what = "order" if path == "/orders/" and method == "POST" else "other"
        try:
            response = session.request(method, f"{self.stack.base}{path}", timeout=timeout, **kw)
        except requests.RequestException:
            with self.lock:
                self.report.requests += 1
                self.report.unanswered += 1
                self.report.phases.setdefault(phase, Counter())[f"{what} unanswered"] += 1
            time.sleep(0.2)  # the server is away: do not spin
            return None
        with self.lock:
            self.report.requests += 1
            self.report.statuses[response.status_code] += 1
            self.report.phases.setdefault(phase, Counter())[f"{what} {response.status_code}"] += 1
            if response.status_code == 503:
                detail = str(response.json().get("detail", ""))[:60]
                self.report.unavailable_because[detail] += 1
            if response.status_code >= 500 and response.status_code != 503:
                self.report.other_5xx.append(
                    f"{method} {path} {response.status_code}: {response.text[:200]}"
                )
        if response.status_code == 503:
            time.sleep(0.05)
        return response

    # -- after the run

    def resolve(self, deadline: float) -> None:
        """Every order without a definite answer is sent again, same key, until it has one:
        then every key says whether its order exists."""
        session = requests.Session()
        while time.monotonic() < deadline:
            open_orders = [o for o in self.orders if o.status is None]
            if not open_orders:
                return
            for order in open_orders:
                self._try(session, order)
            time.sleep(0.5)
        raise AssertionError(f"{sum(o.status is None for o in self.orders)} orders unanswered")


# -- faults --------------------------------------------------------------------------------


def _wait_until_serving(stack: Stack, load: Load, limit: float = 30) -> float:
    """Seconds until the API answers a database read and an authenticated read again."""
    started = time.monotonic()
    customer = load.customers[0]["auth"]
    while time.monotonic() - started < limit:
        with contextlib.suppress(requests.RequestException):
            ready = requests.get(f"{stack.base}/ready", timeout=5).status_code == 200
            if ready and (
                requests.get(f"{stack.base}/orders/", headers=customer, timeout=5).status_code
                == 200
            ):
                return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"the API did not recover within {limit} s\n{stack.tail()}")


def faults(stack: Stack) -> list[tuple[str, Callable[[], None], Callable[[], None]]]:
    """(name, break, repair) of each fault, in order."""
    return [
        ("PostgreSQL stopped", stack.postgres.stop, lambda: stack.postgres.start()),
        ("PostgreSQL frozen", stack.freeze_postgres, stack.resume_postgres),
        ("Redis stopped", stack.redis.stop, lambda: stack.redis.start()),
        ("Redis paused", stack.freeze_redis, stack.resume_redis),
        ("API server killed mid-order", stack.kill_api, stack.start_api),
    ]


# -- checks --------------------------------------------------------------------------------


def verify(stack: Stack, load: Load, initial: dict[str, int], report: Report) -> None:
    """Nothing lost or doubled, stock exact, one finished process_order job per order."""
    from sqlalchemy import create_engine, text

    from imangor.db import sqlalchemy_url

    answered = [o for o in load.orders if o.status == 201]
    report.orders_answered_201 = len(answered)
    ids_by_key = {o.key: o.order_id for o in answered}
    engine = create_engine(sqlalchemy_url(stack.database_url))
    try:
        _finish_jobs(stack, engine)
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT id, product_id, quantity FROM orders")).all()
            stock = dict(connection.execute(text("SELECT id, stock FROM products")).all())
            jobs = connection.execute(
                text("SELECT payload->>'order_id', status FROM jobs WHERE kind = 'process_order'")
            ).all()
    finally:
        engine.dispose()
    in_database = {str(row.id) for row in rows}
    report.orders_in_database = len(rows)
    answered_ids = set(ids_by_key.values())
    report.orders_lost = len(answered_ids - in_database)
    # An order in the database that no key was answered with (a second order for one key
    # would be one), or two keys answered with one order.
    report.orders_doubled = len(in_database - answered_ids) + (len(answered) - len(answered_ids))
    taken = Counter[str]()
    for row in rows:
        taken[str(row.product_id)] += row.quantity
    report.stock_mismatches = sum(
        1
        for product, start in initial.items()
        if stock[uuid.UUID(product)] != start - taken[product]
    )
    per_order = Counter(order_id for order_id, _ in jobs)
    report.jobs_missing = len(in_database - set(per_order))
    report.jobs_doubled = sum(1 for n in per_order.values() if n > 1)
    report.jobs_unfinished = sum(1 for _, status in jobs if status != "succeeded")


def _finish_jobs(stack: Stack, engine: Any, limit: float = 60) -> None:
    """Wait for every process_order job to finish, running the outbox sweep (as Cloud
    Scheduler does every minute) for pushes an outage interrupted."""
    from sqlalchemy import text

    from infra.local.tasks import LocalScheduler, LocalSigner

    signer = LocalSigner(stack.directory / "local" / "oidc")
    scheduler = LocalScheduler(signer, stack.base, stack.base, SCHEDULER)
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        with engine.connect() as connection:
            left = connection.scalar(
                text(
                    "SELECT count(*) FROM jobs "
                    "WHERE kind = 'process_order' AND status <> 'succeeded'"
                )
            )
        if not left:
            return
        with contextlib.suppress(requests.RequestException):
            scheduler.trigger("outbox-sweep")
        time.sleep(1)


# -- the run -------------------------------------------------------------------------------


@contextlib.contextmanager
def _directory() -> Iterator[Path]:
    # Outside pytest's basetemp: as root, PostgreSQL runs as another user who must reach it.
    with tempfile.TemporaryDirectory(prefix="imangor-faults-") as path:
        os.chmod(path, 0o755)  # noqa: S103  # nosec B103: the server user must traverse it
        yield Path(path)


def run(profile: Profile, log: Callable[[str], None] = print) -> Report:
    """Start everything, load it through every fault, check, stop everything: the report."""
    report = Report(profile.name)
    began = time.monotonic()
    with _directory() as directory:
        stack = Stack(directory, log)
        try:
            stack.start()
            log(f"{time.monotonic() - began:5.1f} s  servers up")
            load = Load(stack, profile, report)
            initial = load.seed()
            log(f"{time.monotonic() - began:5.1f} s  seeded; load starting")
            load.start()
            time.sleep(profile.calm_seconds)
            for name, brk, repair in faults(stack):
                pid = stack.api_pid
                log(f"{time.monotonic() - began:5.1f} s  {name} for {profile.fault_seconds:g} s")
                load.phase = name
                brk()
                time.sleep(profile.fault_seconds)
                repair()
                report.recovery_seconds[name] = _wait_until_serving(stack, load)
                if "killed" not in name and stack.api_pid != pid:
                    report.restarted_without_kill.append(name)
                load.phase = f"after {name}"
                time.sleep(profile.calm_seconds)
            log(f"{time.monotonic() - began:5.1f} s  load stopping")
            load.finish()
            log(f"{time.monotonic() - began:5.1f} s  resolving unanswered orders")
            load.resolve(time.monotonic() + 90)
            log(f"{time.monotonic() - began:5.1f} s  checking")
            verify(stack, load, initial, report)
        except BaseException:
            log(f"API server log (tail):\n{stack.tail()}")
            raise
        finally:
            report.seconds = time.monotonic() - began
            stack.close()
            if keep := os.environ.get("IMANGOR_FAULTS_LOG"):  # keep the API's log to read
                with contextlib.suppress(OSError):
                    Path(keep).write_bytes(stack.api_log.read_bytes())
    return report
