"""Background tasks benchmark: jobs per second through the local dispatcher, and the outbox
relay's latency from commit to handler start, beside the raw HTTP rate of the same server.

    uv run --frozen python bench/tasks.py [--jobs 2000] [--latency-jobs 300] [--rate 10]

- Database: a dedicated `imangor_bench_tasks` on 127.0.0.1:5432 (user postgres), created if
  missing, migrated with `python -m imangor.migrate`, emptied before each phase; Redis db 8.
- Server: the tasks unit as in production, `functions-framework --source
  functions/tasks/main.py --target tasks --host 127.0.0.1` (gunicorn gthread, default
  workers/threads and pool), with the OIDC settings of a LocalSigner made for this run.
- This process commits each SendEmail job in its own transaction (`imangor.tasks.enqueue`; the
  after-commit relay pushes it into `local_tasks`) and runs a `LocalDispatcher`, which POSTs
  each task to the server with a signed OIDC token, as `make dev` does.
- Throughput: a backlog of `--jobs` committed jobs drained by a dispatcher started afterwards:
  jobs / (last `jobs.finished_at` - dispatcher start). The dispatcher and `LocalSigner` as
  shipped (the signer keeps its parsed RSA key: ~0.3 ms a token); and, to see whether the
  queue's dispatch-rate cap binds, the same with that cap lifted (same concurrency).
- Latency: `--latency-jobs` jobs committed at `--rate` per second while the dispatcher runs,
  at the dispatcher's shipped poll interval (its `poll_seconds` default, 0.05 s, which
  `make dev` uses) and at 0.2 s for comparison; per job, `jobs.started_at` (set in the unit
  when the handler run starts) minus the moment COMMIT returned (an after_commit listener
  that runs before the relay's). Both are the host's wall clock (same machine,
  CLOCK_REALTIME), so they compare directly.
- Baselines, same run, same server, same concurrency and client as the dispatcher (a new
  connection per `requests.post`): POST /tasks/send_email for an unknown job with a valid
  token (OIDC check + one locked primary-key read → 404), and with no token (→ 401: HTTP +
  runtime only).

Only 127.0.0.1 is ever contacted; every loop has a count and a deadline; the server is
stopped (by pid) on the way out. Writes bench/results/tasks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: bench.* importable

from bench.common import (
    RESULTS,
    ROOT,
    free_port,
    functions_framework_command,
    machine_lines,
    markdown_table,
    package_version,
    percentile,
    stop,
)

if TYPE_CHECKING:
    from infra.local.tasks import LocalSigner

HOST = "127.0.0.1"  # the only address this benchmark talks to
ADMIN_URL = f"postgresql://postgres@{HOST}:5432/postgres"
BENCH_DB = "imangor_bench_tasks"
DATABASE_URL = f"postgresql://postgres@{HOST}:5432/{BENCH_DB}"
REDIS_URL = f"redis://{HOST}:6379/8"
SECRET_KEY = "bench-tasks-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"  # noqa: S105
TASKS_ACCOUNT = "tasks-invoker@local.test"
QUEUE = "high-priority"  # SendEmail's queue
STARTED_KEY, COMMITTED_KEY = "bench_enqueue", "bench_committed_at"
# Settings a developer's shell may carry that would change what is measured.
DROPPED = (
    "INSTANCE_CONNECTION_NAME",
    "FIRST_ADMIN_EMAIL",
    "FIRST_ADMIN_PASSWORD",
    "WORKERS",
    "THREADS",
    "TASKS_BACKEND",
    "TASKS_PROJECT",
    "EMAIL_BACKEND",
    "DB_POOL_SIZE",
    "DB_MAX_OVERFLOW",
    "DEBUG",
)


# -- setup --------------------------------------------------------------------------------------


def settings_env(base_url: str, certs_url: str) -> dict[str, str]:
    """The environment of the server and of this process (LocalDispatcher's needs)."""
    env = {k: v for k, v in os.environ.items() if k not in DROPPED}
    env.update(
        ENVIRONMENT="test",
        DATABASE_URL=DATABASE_URL,
        REDIS_URL=REDIS_URL,
        SECRET_KEY=SECRET_KEY,
        TASKS_TARGET_URL=base_url,
        OIDC_AUDIENCE=base_url,
        OIDC_CERTS_URL=certs_url,
        OIDC_SERVICE_ACCOUNTS=json.dumps([TASKS_ACCOUNT]),
        TASKS_SERVICE_ACCOUNT=TASKS_ACCOUNT,
    )
    return env


def prepare_database(env: dict[str, str]) -> None:
    """Create the bench database if missing and migrate it."""
    from sqlalchemy import create_engine, text

    from imangor.db import sqlalchemy_url

    admin = create_engine(sqlalchemy_url(ADMIN_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        exists = connection.scalar(
            text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": BENCH_DB}
        )
        if not exists:
            connection.execute(text(f'CREATE DATABASE "{BENCH_DB}"'))
    admin.dispose()
    subprocess.run(
        [sys.executable, "-m", "imangor.migrate"],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=120,
    )


def empty_tables() -> None:
    import redis
    from sqlalchemy import text

    from imangor.db import get_engine
    from imangor.models import all_metadata

    tables = ", ".join(f'"{t.name}"' for t in all_metadata().sorted_tables)
    with get_engine().begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    client.close()


def wait_until_serving(proc: subprocess.Popen[bytes], port: int, deadline: float = 60.0) -> None:
    """Until the unit answers POST /tasks/send_email (401 without a token)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"the tasks unit exited with {proc.returncode}")
        conn = http.client.HTTPConnection(HOST, port, timeout=5)
        try:
            conn.request("POST", "/tasks/send_email", body=b"{}")
            if conn.getresponse().status == 401:
                return
        except OSError:
            time.sleep(0.05)
        finally:
            conn.close()
    raise TimeoutError(f"the tasks unit did not answer within {deadline} s")


@contextlib.contextmanager
def tasks_unit(port: int, env: dict[str, str], log_path: Path) -> Iterator[int]:
    """The tasks unit, served the production way; stopped (by pid) on exit. Yields its pid."""
    command = functions_framework_command(ROOT / "functions" / "tasks" / "main.py", "tasks", port)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until_serving(proc, port)
            yield proc.pid
        finally:
            stop(proc)


# -- enqueueing ---------------------------------------------------------------------------------


def stamp_commits() -> None:
    """Record when each bench transaction's COMMIT returned, before the relay's push runs:
    prepended, this after_commit listener runs ahead of the outbox's."""
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    from imangor.tasks.outbox import PENDING_KEY

    def stamp(session: Session) -> None:
        if session.info.get(STARTED_KEY):
            # The relay's listener pops PENDING_KEY: still here means we run first.
            assert PENDING_KEY in session.info, "the commit stamp must run before the relay"
            session.info[COMMITTED_KEY] = time.time()

    event.listen(Session, "after_commit", stamp, insert=True)


@dataclass(frozen=True)
class Enqueued:
    job_id: uuid.UUID
    committed: float  # wall clock when COMMIT returned
    pushed: float  # wall clock when the after-commit push into local_tasks was done


def enqueue_one(number: int) -> Enqueued:
    from imangor.db import session_scope
    from imangor.schemas.tasks import SendEmail
    from imangor.tasks import enqueue

    payload = SendEmail(to=f"bench-{number}@example.com", subject="bench", body="hello")
    with session_scope() as session:
        session.info[STARTED_KEY] = True
        job_id = enqueue(session, payload).id
    return Enqueued(job_id, session.info[COMMITTED_KEY], time.time())


def enqueue_backlog(count: int, deadline: float) -> tuple[list[Enqueued], float]:
    """Commit `count` jobs one by one; the list and the elapsed seconds."""
    started = time.perf_counter()
    done = []
    for number in range(count):
        if time.perf_counter() - started > deadline:
            raise TimeoutError(f"enqueued only {number} of {count} jobs in {deadline} s")
        done.append(enqueue_one(number))
    return done, time.perf_counter() - started


def enqueue_paced(count: int, rate: float, deadline: float) -> list[Enqueued]:
    """Commit `count` jobs at `rate` per second (open loop: fixed start times)."""
    started = time.perf_counter()
    done = []
    for number in range(count):
        due = started + number / rate
        now = time.perf_counter()
        if now - started > deadline:
            raise TimeoutError(f"enqueued only {number} of {count} jobs in {deadline} s")
        if due > now:
            time.sleep(due - now)
        done.append(enqueue_one(number))
    return done


# -- measuring ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobTimes:
    status: str
    started: float | None
    finished: float | None


def job_times(job_ids: list[uuid.UUID]) -> dict[uuid.UUID, JobTimes]:
    from sqlalchemy import select

    from imangor.db import session_scope
    from imangor.models import Job

    with session_scope() as session:
        rows = session.execute(
            select(Job.id, Job.status, Job.started_at, Job.finished_at).where(Job.id.in_(job_ids))
        ).all()
    return {
        row.id: JobTimes(
            row.status,
            row.started_at.timestamp() if row.started_at else None,
            row.finished_at.timestamp() if row.finished_at else None,
        )
        for row in rows
    }


def wait_all_succeeded(job_ids: list[uuid.UUID], deadline: float) -> dict[uuid.UUID, JobTimes]:
    from sqlalchemy import func, select

    from imangor.db import session_scope
    from imangor.models import Job

    end = time.monotonic() + deadline
    while time.monotonic() < end:
        with session_scope() as session:
            left = session.scalar(
                select(func.count()).select_from(Job).where(Job.status != "succeeded")
            )
        if left == 0:
            times = job_times(job_ids)
            if len(times) == len(job_ids):
                return times
        time.sleep(0.05)
    raise TimeoutError(f"jobs still unfinished after {deadline} s")


@dataclass
class Throughput:
    label: str
    jobs: int
    seconds: float
    enqueue_seconds: float

    @property
    def rate(self) -> float:
        return self.jobs / self.seconds


@dataclass
class Latency:
    label: str
    rate: float
    poll_seconds: float
    commit_to_start: list[float] = field(default_factory=list)
    commit_to_finish: list[float] = field(default_factory=list)
    push: list[float] = field(default_factory=list)


def drain(signer: LocalSigner, jobs: int, label: str, deadline: float) -> Throughput:
    """Commit a backlog, then time a fresh dispatcher draining it."""
    from infra.local.tasks import LocalDispatcher

    empty_tables()
    backlog, enqueue_seconds = enqueue_backlog(jobs, deadline)
    job_ids = [e.job_id for e in backlog]
    dispatcher = LocalDispatcher(signer)
    started = time.time()
    dispatcher.start()
    try:
        times = wait_all_succeeded(job_ids, deadline)
    finally:
        dispatcher.stop()
    last = max(t.finished for t in times.values() if t.finished is not None)
    return Throughput(label, jobs, last - started, enqueue_seconds)


def paced(
    signer: LocalSigner, label: str, jobs: int, rate: float, poll: float, deadline: float
) -> Latency:
    """Commit jobs at a steady rate while a dispatcher runs; per-job latencies."""
    from infra.local.tasks import LocalDispatcher

    empty_tables()
    dispatcher = LocalDispatcher(signer, poll_seconds=poll).start()
    try:
        sent = enqueue_paced(jobs, rate, deadline)
        times = wait_all_succeeded([e.job_id for e in sent], deadline)
    finally:
        dispatcher.stop()
    result = Latency(f"{rate:g} jobs/s, poll {poll:g} s, {label}", rate, poll)
    for each in sent:
        got = times[each.job_id]
        assert got.started is not None
        assert got.finished is not None
        result.commit_to_start.append(got.started - each.committed)
        result.commit_to_finish.append(got.finished - each.committed)
        result.push.append(each.pushed - each.committed)
    return result


@contextlib.contextmanager
def rate_cap_lifted(queue: str) -> Iterator[None]:
    """The queue's max_dispatches_per_second out of the way (its concurrency unchanged)."""
    from dataclasses import replace

    from infra.local import tasks as local_tasks

    shipped = local_tasks.inventory_queues
    queues = shipped()
    queues[queue] = replace(queues[queue], max_dispatches_per_second=1_000_000.0)
    local_tasks.inventory_queues = lambda inventory=None: queues
    try:
        yield
    finally:
        local_tasks.inventory_queues = shipped


@dataclass
class HttpRate:
    label: str
    status: int
    requests: int
    seconds: float
    statuses: dict[int, int]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def http_rate(
    label: str,
    url: str,
    headers: Callable[[], dict[str, str]],
    expected: int,
    concurrency: int,
    seconds: float,
    warmup: float = 1.0,
) -> HttpRate:
    """`concurrency` threads POSTing an unknown job for `seconds` (after a warm-up), each
    with a new connection per call, as LocalDispatcher's `requests.post` does; `headers()`
    is called once per thread (a token is signed once, then verified by every call)."""
    import requests

    body = json.dumps({"job_id": str(uuid.uuid4()), "payload": {}}).encode()
    lock = threading.Lock()
    statuses: dict[int, int] = {}
    counted = 0
    begin = time.perf_counter() + warmup
    end = begin + seconds

    def worker() -> None:
        nonlocal counted
        mine = headers()
        while (now := time.perf_counter()) < end:
            status = requests.post(url, data=body, headers=mine, timeout=30).status_code
            if now >= begin:
                with lock:
                    counted += 1
                    statuses[status] = statuses.get(status, 0) + 1

    with ThreadPoolExecutor(concurrency) as pool:
        for future in [pool.submit(worker) for _ in range(concurrency)]:
            future.result()
    return HttpRate(label, expected, counted, seconds, statuses)


def sign_cost(signer: LocalSigner, count: int = 20) -> float:
    """Seconds per `signer.sign` call (median of `count`)."""
    signer.sign("warm-up", TASKS_ACCOUNT)
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        signer.sign("http://127.0.0.1", TASKS_ACCOUNT)
        samples.append(time.perf_counter() - started)
    return sorted(samples)[count // 2]


# -- report -------------------------------------------------------------------------------------


def ms(value: float) -> str:
    return f"{value * 1000:.1f}"


@dataclass
class Run:
    args: argparse.Namespace
    concurrency: int
    server: str
    pool: str
    sign_ms: float  # median `LocalSigner.sign`
    shipped_poll: float  # LocalDispatcher's poll_seconds default
    machine: list[str] = field(default_factory=machine_lines)  # taken when the run starts
    baselines: list[HttpRate] = field(default_factory=list)
    drains: list[Throughput] = field(default_factory=list)
    latencies: list[Latency] = field(default_factory=list)


def report(run: Run) -> list[str]:
    from infra.local.tasks import inventory_queues

    queue = inventory_queues()[QUEUE]
    floor, baseline = run.baselines[0].rate, run.baselines[1].rate
    rows = [
        [
            b.label,
            f"{b.rate:,.0f}",
            f"{b.rate / baseline:.2f}",
            f"{b.rate / floor:.2f}",
            f"{b.requests} requests in {b.seconds:g} s, {b.statuses}",
        ]
        for b in run.baselines
    ]
    rows += [
        [
            d.label,
            f"{d.rate:,.0f}",
            f"{d.rate / baseline:.2f}",
            f"{d.rate / floor:.2f}",
            f"{d.jobs} jobs in {d.seconds:.2f} s; enqueued at "
            f"{d.jobs / d.enqueue_seconds:,.0f} commits/s (1 thread)",
        ]
        for d in run.drains
    ]
    lat_rows = [
        [
            lat.label,
            str(len(lat.commit_to_start)),
            f"{ms(percentile(lat.push, 50))} / {ms(percentile(lat.push, 99))}",
            ms(percentile(lat.commit_to_start, 50)),
            ms(percentile(lat.commit_to_start, 99)),
            ms(max(lat.commit_to_start)),
            f"{ms(percentile(lat.commit_to_finish, 50))} / "
            f"{ms(percentile(lat.commit_to_finish, 99))}",
        ]
        for lat in run.latencies
    ]
    args = run.args
    return [
        "# Background tasks: local dispatcher throughput and outbox relay latency",
        "",
        *run.machine,
        "- load average at the end (1/5/15 min): "
        + ", ".join(f"{x:.2f}" for x in os.getloadavg())
        + " (other work on the machine shows here; the figures move with it)",
        f"- command: `uv run --frozen python bench/tasks.py --jobs {args.jobs} "
        f"--latency-jobs {args.latency_jobs} --rate {args.rate:g} "
        f"--baseline-seconds {args.baseline_seconds:g}`",
        f"- server: {run.server} (functions-framework {package_version('functions-framework')}"
        f", gunicorn {package_version('gunicorn')} gthread, default workers/threads; "
        f"{run.pool})",
        f"- dispatcher: `LocalDispatcher` in the bench process, {run.concurrency} concurrent "
        f"deliveries; queue `{QUEUE}`: {queue.max_dispatches_per_second:g} dispatches/s, "
        f"{queue.max_concurrent_dispatches} concurrent",
        f"- one OIDC token signed by `LocalSigner` (median per call): {run.sign_ms:.2f} ms",
        "- database: PostgreSQL `imangor_bench_tasks` on 127.0.0.1:5432 (pg8000); "
        "Redis db 8 on 127.0.0.1:6379",
        "",
        "## Throughput beside the same server's HTTP rate, same concurrency",
        "",
        *markdown_table(["what", "per second", "÷ 404 baseline", "÷ 401 floor", "detail"], rows),
        "",
        "## Latency from commit to handler start (ms), jobs committed at a steady rate",
        "",
        *markdown_table(
            [
                "arrivals, dispatcher poll",
                "jobs",
                "relay push p50 / p99",
                "commit→start p50",
                "p99",
                "max",
                "commit→finish p50 / p99",
            ],
            lat_rows,
        ),
        "",
        "How to read it:",
        "",
        "- *401 floor*: POST /tasks/send_email with no token: gunicorn + flask + the runtime "
        "refusing it, no crypto, no database. *404 baseline*: the same with an OIDC token "
        "(verified by the unit at every call) and one `SELECT … FOR UPDATE` by primary key. "
        "Both from as many threads as the dispatcher has, each with a new connection per "
        "call, as the dispatcher's `requests.post`.",
        "- *dispatcher*: a committed backlog drained by a dispatcher started afterwards; per "
        "job it signs a token, POSTs, the unit locks the job, runs the handler (one "
        "`sent_emails` row) and commits, and the dispatcher records the answer in "
        "`local_tasks`. *As shipped*: `LocalDispatcher` and `LocalSigner` as the library "
        "has them (the signer keeps its parsed RSA key); *rate cap lifted*: the same with the "
        "queue's dispatch rate set out of the way (its concurrency unchanged), to see whether "
        "that cap binds.",
        "- *relay push*: from COMMIT returning to the after-commit push into `local_tasks` "
        "being done (in the enqueuing thread). *commit→start*: to `jobs.started_at`, set "
        "when the unit starts the handler run; both the host's wall clock. When the "
        "dispatcher is idle it polls every `poll` seconds, so that is most of the wait. "
        f"{run.shipped_poll:g} s is the shipped poll (`LocalDispatcher`'s default, which "
        "`make dev` uses); 0.2 s is shown for comparison.",
        "- Signing a token is now a small share of a delivery (the signing line above). Beyond "
        "the 404 baseline's work, a delivery has the handler's write and commit in the unit "
        "and the dispatcher's lease and record in `local_tasks` (each process on its small "
        "pool, on 2 cores shared with PostgreSQL); this bench does not break that down. "
        "Compare the two dispatcher rows for the queue's dispatch-rate cap: a gap within "
        "run-to-run noise (±20 %, more under load) means the cap hardly binds.",
        "",
    ]


# -- main ---------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description="Background tasks benchmark (see the module)")
    parser.add_argument("--jobs", type=int, default=2000, help="backlog size for throughput")
    parser.add_argument("--latency-jobs", type=int, default=300, help="jobs per latency run")
    parser.add_argument("--rate", type=float, default=10.0, help="arrivals/s in latency runs")
    parser.add_argument("--baseline-seconds", type=float, default=5.0)
    parser.add_argument("--deadline", type=float, default=300.0, help="bound of each phase (s)")
    parser.add_argument("--output", type=Path, default=RESULTS / "tasks.md")
    args = parser.parse_args()
    if not (1 <= args.jobs <= 20_000 and 1 <= args.latency_jobs <= 5_000):
        parser.error("--jobs is 1..20000, --latency-jobs 1..5000")
    if not (0 < args.rate <= 500 and 0 < args.baseline_seconds <= 60 and args.deadline <= 900):
        parser.error("--rate is in (0, 500], --baseline-seconds in (0, 60], --deadline ≤ 900")

    with tempfile.TemporaryDirectory(prefix="imangor-bench-tasks-") as tmp:
        from infra.local.tasks import LocalSigner

        signer = LocalSigner(Path(tmp) / "oidc")
        port = free_port()
        base_url = f"http://{HOST}:{port}"
        env = settings_env(base_url, signer.certs_url)
        for key in DROPPED:
            os.environ.pop(key, None)
        os.environ.update(env)
        from imangor.config import get_settings
        from infra.local.tasks import LocalDispatcher

        get_settings.cache_clear()
        settings = get_settings()
        prepare_database(env)
        stamp_commits()
        probe = LocalDispatcher(signer)  # how wide its delivery pool is, as built
        concurrency = min(probe._pool._max_workers, probe.queues[QUEUE].max_concurrent_dispatches)
        shipped_poll = probe.poll_seconds  # its default, as make dev runs it
        probe.stop()
        run = Run(
            args,
            concurrency,
            server="`functions-framework --source functions/tasks/main.py --target tasks "
            f"--host 127.0.0.1 --port {port}`",
            pool=f"DB pool {settings.db_pool_size}+{settings.db_max_overflow} per process, "
            "the same in the bench process",
            sign_ms=sign_cost(signer) * 1000,
            shipped_poll=shipped_poll,
        )
        url = f"{base_url}/tasks/send_email"
        print(f"tasks unit on {base_url}; {concurrency} concurrent deliveries", flush=True)
        with tasks_unit(port, env, Path(tmp) / "tasks-unit.log"):
            empty_tables()

            def signed() -> dict[str, str]:
                token = signer.sign(base_url, TASKS_ACCOUNT)
                return {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}

            for label, headers, status in (
                ("baseline: 401, no token (HTTP + runtime floor)", None, 401),
                ("baseline: 404, unknown job (OIDC check + 1 DB read)", signed, 404),
            ):
                got = http_rate(
                    label,
                    url,
                    headers or (lambda: {"Content-Type": "application/json"}),
                    status,
                    concurrency,
                    args.baseline_seconds,
                )
                print(f"{got.label}: {got.rate:,.0f}/s {got.statuses}", flush=True)
                if set(got.statuses) != {status}:
                    raise RuntimeError(f"{label}: unexpected answers {got.statuses}")
                run.baselines.append(got)

            for label, lifted in (
                ("dispatcher as shipped (queue limits)", False),
                ("dispatcher as shipped, rate cap lifted", True),
            ):
                with rate_cap_lifted(QUEUE) if lifted else contextlib.nullcontext():
                    got_drain = drain(signer, args.jobs, label, args.deadline)
                print(f"{label}: {got_drain.rate:,.0f} jobs/s", flush=True)
                run.drains.append(got_drain)

            for label, poll in (
                ("as shipped", shipped_poll),  # LocalDispatcher's default, as make dev runs it
                ("for comparison", 0.2),
            ):
                lat = paced(signer, label, args.latency_jobs, args.rate, poll, args.deadline)
                print(
                    f"latency {lat.label}: commit→start p50 "
                    f"{ms(percentile(lat.commit_to_start, 50))} ms, p99 "
                    f"{ms(percentile(lat.commit_to_start, 99))} ms",
                    flush=True,
                )
                run.latencies.append(lat)
            empty_tables()

    lines = report(run)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {args.output}")
    from imangor.db import dispose_engine

    dispose_engine()
    return 0


if __name__ == "__main__":
    sys.exit(main())
