"""Cold start of every unit, started exactly as in production, against two bare baselines.

For each unit (and the baselines `bench/baselines/hello.py`, a bare functions-framework
function, and `bench/baselines/sqlalchemy_jwt.py`, a bare function that verifies a PyJWT token
and reads the caller's row through a SQLAlchemy session over pg8000), this runs

    THREADS=<n> functions-framework --source <file> --target <name> --port <free port> \
        --host 127.0.0.1

(gunicorn gthread, as on Cloud Run; THREADS is the unit's concurrency from
terraform/generated/inventory.json, as Terraform sets it, and the Deploy default 4 for the
baselines; `--threads` overrides it) and polls a real endpoint every 5 ms from exec until its
first normal answer. Rounds are interleaved (every target once per round, in a shuffled
order) so drift on the machine hits every target alike; medians are reported, each ratio
with a 95 % bootstrap interval. After the last round each unit gets
`--warm` more requests and the PSS of its process tree (gunicorn master + worker) is read
from /proc/<pid>/smaps_rollup. Then every target runs `--import-runs` more times under
`python -X importtime` to say which imports its cold start is made of.

Units run with bytecode compiled into a cache of the bench's own (PYTHONPYCACHEPREFIX), as
from an image; a short extra section measures starts with this sandbox's
PYTHONDONTWRITEBYTECODE=1. On this shared 2-core machine each round waits (bounded by
`--quiet-wait`) for other work to calm down, and every sample records how busy it was.

    uv run --frozen python bench/cold_start.py [--runs 10] [--units docs,users] [--warm 50]
        [--threads inventory|default|N]

Writes bench/results/cold_start.md (and the raw samples in cold_start.json).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: bench.* importable

from bench.common import (
    BASELINES,
    MIB,
    RESULTS,
    ROOT,
    Call,
    bench_env,
    configure_this_process,
    flush_redis,
    free_port,
    functions_framework_command,
    machine_busy_cores,
    machine_lines,
    markdown_table,
    median,
    package_version,
    poll_first_response,
    prepare_database,
    running,
    send,
    stop,
    tree_cpu_seconds,
    tree_memory,
    unit_source,
    wait_for_quiet,
)

HELLO, SQLA_JWT = "hello", "sqlalchemy_jwt"
# The floors: each bare baseline plus only what the issue mandates for every unit (settings
# through pydantic-settings, validated at import, and a pydantic answer). No unit built on
# those libraries can start faster than its floor; what a unit costs beyond it is ours.
HELLO_FLOOR, SQLA_FLOOR = "hello_pydantic", "sqlalchemy_jwt_pydantic"
# Not a floor: the bare hello plus pydantic alone (no pydantic-settings), to split the floor.
PYDANTIC_ONLY = "hello_pydantic_model"
NO_DB_BUDGET = 1.3  # × hello, for a unit whose probe touches no database
DB_BUDGET = 1.1  # × the SQLAlchemy+JWT baseline, for a database unit
MEMORY_BUDGET_MIB = 128.0
OIDC_AUDIENCE = "http://127.0.0.1/bench-oidc-audience"
TASKS_ACCOUNT = "tasks-invoker@local.test"
SCHEDULER_ACCOUNT = "scheduler@local.test"
PASSWORD = "correct horse battery staple"  # noqa: S105 - a bench account's password
INVENTORY = ROOT / "terraform" / "generated" / "inventory.json"
DEPLOY_DEFAULT_THREADS = 4  # Deploy.concurrency's default: what a bare function would get


@dataclass
class Probe:
    """How to ask one target for a real answer, and what answer is normal."""

    name: str  # unit or baseline name, also the --target
    source: Path
    description: str
    expected: int
    touches_db: bool
    call: Callable[[int], Call]  # request number → request (may insert the rows it needs)
    before_run: Callable[[], None] | None = None
    note: str = ""
    baseline: bool = False
    threads: int | None = None  # THREADS of the served process (None: functions-framework's)

    def env(self, base: dict[str, str]) -> dict[str, str]:
        """`base` with this target's THREADS (or without any, for functions-framework's own)."""
        env = {k: v for k, v in base.items() if k != "THREADS"}
        if self.threads is not None:
            env["THREADS"] = str(self.threads)
        return env


@dataclass
class Sample:
    answered: float
    listening: float
    attempts: int
    status: int
    cpu: float  # CPU seconds (user + system) of the master and worker until the first answer
    pss_first: int  # bytes, right after the first answer
    busy: float  # cores the machine kept busy just before the run (other work on the box)


@dataclass
class Result:
    probe: Probe
    samples: list[Sample] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    wrong_answer: str | None = None  # the untimed start's answer, when not the expected one
    warm_pss: int | None = None
    warm_rss: int | None = None
    warm_processes: int = 0
    warm_statuses: dict[int, int] = field(default_factory=dict)
    imports: ImportProfile | None = None
    import_runs: list[ImportProfile] = field(default_factory=list)

    @property
    def median(self) -> float:
        return float(median([s.answered for s in self.samples]))

    @property
    def median_listening(self) -> float:
        return float(median([s.listening for s in self.samples]))

    @property
    def median_cpu(self) -> float:
        return float(median([s.cpu for s in self.samples]))


# -- seed data and probes -----------------------------------------------------------------------


@dataclass
class Seed:
    user_id: uuid.UUID
    product_id: uuid.UUID
    job_id: uuid.UUID
    signer: Any  # infra.local.tasks.LocalSigner


def seed(oidc_dir: Path) -> Seed:
    """A customer with items, a product, orders and a finished job, in the bench database."""
    from imangor.auth.passwords import hash_password
    from imangor.db import session_scope
    from imangor.models import Item, Job, Order, Product, User
    from infra.local.tasks import LocalSigner

    with session_scope() as session:
        user = User(
            email="bench-user@example.com",
            hashed_password=hash_password(PASSWORD),
            role="customer",
            full_name="Bench User",
            email_verified=True,
        )
        product = Product(
            name="Bench desk lamp",
            price=Decimal("39.90"),
            stock=1000,
            attributes={"category": "lamps", "description": "a lamp that lights benchmarks"},
        )
        session.add_all([user, product])
        session.flush()
        session.add_all(
            Item(owner_id=user.id, title=f"bench item {n}", description="seeded") for n in range(5)
        )
        session.add_all(
            Order(
                user_id=user.id,
                product_id=product.id,
                quantity=1,
                unit_price=product.price,
                status="confirmed",
            )
            for _ in range(3)
        )
        job = Job(
            kind="send_email",
            queue="high-priority",
            status="succeeded",
            attempts=1,
            payload={"to": user.email, "subject": "hi", "body": "seeded"},
            result={},
            user_id=user.id,
        )
        session.add(job)
        session.flush()
        return Seed(user.id, product.id, job.id, LocalSigner(oidc_dir))


def _bearer(seed: Seed) -> dict[str, str]:
    from imangor.auth.tokens import issue_access_token

    token, _ = issue_access_token(seed.user_id, "customer")
    return {"Authorization": f"Bearer {token}"}


def _queued_email_job() -> tuple[uuid.UUID, dict[str, Any]]:
    from imangor.db import session_scope
    from imangor.models import Job

    payload = {"to": "bench-user@example.com", "subject": "bench", "body": "a cold start"}
    with session_scope() as session:
        job = Job(kind="send_email", queue="high-priority", payload=payload)
        session.add(job)
        session.flush()
        return job.id, payload


_schedule_times = itertools.count()


def _next_schedule_time() -> str:
    """A schedule time not used before, so every cron call really runs the job."""
    when = datetime(2001, 1, 1, tzinfo=UTC) + timedelta(minutes=next(_schedule_times))
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def probes(seed: Seed, units: list[str]) -> list[Probe]:
    """The baselines, then one probe per unit (in registry order)."""

    def get(path: str, auth: bool = False) -> Callable[[int], Call]:
        return lambda _n: Call("GET", path, _bearer(seed) if auth else {})

    def task_call(_n: int) -> Call:
        job_id, payload = _queued_email_job()
        token = seed.signer.sign(OIDC_AUDIENCE, TASKS_ACCOUNT)
        headers = {
            "Authorization": f"Bearer {token}",
            "X-CloudTasks-TaskRetryCount": "0",
            "X-CloudTasks-TaskExecutionCount": "0",
            "X-CloudTasks-TaskName": f"send_email-{job_id}",
            "X-CloudTasks-QueueName": "high-priority",
        }
        return Call.json(
            "POST", "/tasks/send_email", {"job_id": str(job_id), "payload": payload}, headers
        )

    def cron_call(_n: int) -> Call:
        token = seed.signer.sign(OIDC_AUDIENCE, SCHEDULER_ACCOUNT)
        headers = {
            "Authorization": f"Bearer {token}",
            "X-CloudScheduler-ScheduleTime": _next_schedule_time(),
        }
        return Call("POST", "/cron/outbox-sweep", headers)

    def refresh_call(_n: int) -> Call:
        made_up = f"bench-not-a-real-refresh-token-{uuid.uuid4().hex}"
        return Call.json("POST", "/auth/refresh", {"refresh_token": made_up}, {})

    known: dict[str, Probe] = {
        p.name: p
        for p in [
            Probe(
                "docs", unit_source("docs"), "GET /openapi.json", 200, False, get("/openapi.json")
            ),
            Probe("health", unit_source("health"), "GET /health", 200, False, get("/health")),
            Probe(
                "users",
                unit_source("users"),
                "GET /users/me (bearer)",
                200,
                True,
                get("/users/me", True),
            ),
            Probe(
                "items",
                unit_source("items"),
                "GET /items/ (bearer, 5 items)",
                200,
                True,
                get("/items/", True),
            ),
            Probe(
                "products",
                unit_source("products"),
                "GET /products/{id} (public)",
                200,
                True,
                get(f"/products/{seed.product_id}"),
                before_run=flush_redis,
                note="Redis flushed before each cold run: the first read misses the cache and "
                "reads PostgreSQL (a hit would touch no database)",
            ),
            Probe(
                "orders",
                unit_source("orders"),
                "GET /orders/ (bearer, 3 orders)",
                200,
                True,
                get("/orders/", True),
            ),
            Probe(
                "jobs",
                unit_source("jobs"),
                "GET /jobs/{id} (bearer, own job)",
                200,
                True,
                get(f"/jobs/{seed.job_id}", True),
            ),
            Probe(
                "files",
                unit_source("files"),
                "GET /files/{random uuid} (bearer)",
                404,
                True,
                get(f"/files/{uuid.uuid4()}", True),
                note="no storage emulator runs here, so the probe is a 404 for an unknown file: "
                "authentication and one SELECT, no Cloud Storage client",
            ),
            Probe(
                "auth",
                unit_source("auth"),
                "POST /auth/refresh (made-up token)",
                401,
                True,
                refresh_call,
                note="POST /auth/token would time one Argon2 hash (see login.md); the refresh "
                "probe validates JSON and SELECTs the token's hash, then answers 401",
            ),
            Probe(
                "tasks",
                unit_source("tasks"),
                "POST /tasks/send_email (OIDC, queued job)",
                200,
                True,
                task_call,
                note="locally signed OIDC token (LocalSigner, file:// certs); a fresh queued job "
                "per call, so every call runs the handler (mail backend: log → sent_emails)",
            ),
            Probe(
                "cron",
                unit_source("cron"),
                "POST /cron/outbox-sweep (OIDC)",
                200,
                True,
                cron_call,
                note="a new X-CloudScheduler-ScheduleTime per call, so the sweep really runs "
                "(empty outbox, TASKS_BACKEND=local: no Cloud Tasks client)",
            ),
        ]
    }

    def baseline(name: str, description: str, touches_db: bool) -> Probe:
        call = get("/", True) if touches_db else (lambda _n: Call("GET", "/", {}))
        source = BASELINES / f"{name}.py"
        return Probe(name, source, description, 200, touches_db, call, baseline=True)

    chosen = [
        baseline(HELLO, "GET /", False),
        baseline(SQLA_JWT, "GET / (bearer: PyJWT HS256 + session.get(User))", True),
        baseline(HELLO_FLOOR, "GET / (pydantic-settings + a pydantic answer)", False),
        baseline(
            PYDANTIC_ONLY,
            "GET / (pydantic alone: settings from os.environ by a model + a pydantic answer)",
            False,
        ),
        baseline(SQLA_FLOOR, "GET / (SQLA+JWT + pydantic-settings + a pydantic answer)", True),
    ]
    for unit in units:
        if unit in known:
            chosen.append(known[unit])
        else:
            print(f"warning: no probe is defined for unit {unit!r}; skipped", file=sys.stderr)
    return chosen


def assign_threads(targets: list[Probe], mode: str) -> None:
    """THREADS per target. `inventory`: each unit's concurrency as Terraform deploys it (from
    terraform/generated/inventory.json), the Deploy default for the baselines; `default`:
    THREADS unset (functions-framework's 4 × CPU); a number: that for every target."""
    if mode == "default":
        for p in targets:
            p.threads = None
        return
    if mode != "inventory":
        for p in targets:
            p.threads = int(mode)
        return
    units = json.loads(INVENTORY.read_text())["units"]
    for p in targets:
        p.threads = DEPLOY_DEFAULT_THREADS if p.baseline else int(units[p.name]["concurrency"])


def _threads_text(targets: list[Probe]) -> str:
    values = sorted({p.threads for p in targets}, key=lambda t: -1 if t is None else t)
    if values == [None]:
        return "THREADS unset: functions-framework's default 4 × CPU threads"
    if len(values) == 1:
        return f"THREADS={values[0]} for every target"
    return "THREADS per target: " + ", ".join(
        f"{p.name} {p.threads if p.threads is not None else 'unset'}" for p in targets
    )


# -- measuring ----------------------------------------------------------------------------------


def cold_run(
    probe: Probe, env: dict[str, str], logs: Path, n: int, warm: int = 0, quiet: float = 0.0
) -> tuple[Sample, Result | None]:
    """One cold start: exec → first answer. With `warm`, also `warm` more calls and memory."""
    if probe.before_run is not None:
        probe.before_run()
    call = probe.call(n)
    warm_calls = [probe.call(n * 1000 + i) for i in range(warm)]
    port = free_port()
    command = functions_framework_command(probe.source, probe.name, port)
    log_path = logs / f"{probe.name}.log"
    extra: Result | None = None
    busy = wait_for_quiet(timeout=quiet) if quiet else machine_busy_cores()
    started = time.perf_counter()
    with running(command, probe.env(env), log_path) as proc:
        first = poll_first_response(proc, port, call, started)
        cpu = tree_cpu_seconds(proc.pid)
        pss = tree_memory(proc.pid).pss
        sample = Sample(
            first.answered, first.listening, first.attempts, first.status, cpu, pss, busy
        )
        if first.status != probe.expected:
            print(
                f"  {probe.name}: expected {probe.expected}, got {first.status}: "
                f"{first.body[:300]!r} (log: {log_path})",
                file=sys.stderr,
            )
        if warm:
            extra = Result(probe)
            for each in warm_calls:
                status, _ = send(port, each)
                extra.warm_statuses[status] = extra.warm_statuses.get(status, 0) + 1
            time.sleep(0.2)
            memory = tree_memory(proc.pid)
            extra.warm_pss, extra.warm_rss = memory.pss, memory.rss
            extra.warm_processes = memory.processes
    return sample, extra


def _untimed_start(probe: Probe, env: dict[str, str], logs: Path, n: int) -> str | None:
    """Run once untimed: compiles bytecode, warms the page cache, checks the probe. A wrong
    answer does not stop the bench: it is returned (with the unit's logged error) for the
    report, which then marks every timed run of that target as failed."""
    sample, _ = cold_run(probe, env, logs, n)
    if sample.status == probe.expected:
        return None
    return f"answered {sample.status}, expected {probe.expected}" + _logged_error(
        logs / f"{probe.name}.log"
    )


def _logged_error(log: Path) -> str:
    """`: <last line of the first logged traceback>` from a unit's JSON log, or ""."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        message = record.get("message", "") if isinstance(record, dict) else ""
        if "Traceback" in message:
            return ": `" + message.strip().splitlines()[-1].strip().replace("|", "\\|") + "`"
    return ""


# -- import profile -----------------------------------------------------------------------------


@dataclass
class ImportEntry:
    name: str
    self_us: int
    cumulative_us: int
    depth: int
    phase: str  # "startup" (before listening: the master) or "request" (the first request)
    parent: ImportEntry | None = None


@dataclass
class ImportProfile:
    entries: list[ImportEntry]

    def names(self) -> set[str]:
        return {e.name for e in self.entries}

    def self_total(self, phase: str | None = None, exclude: set[str] | None = None) -> int:
        return sum(
            e.self_us
            for e in self.entries
            if (phase is None or e.phase == phase) and not (exclude and e.name in exclude)
        )

    def by_group(self, exclude: set[str]) -> list[tuple[str, int, str]]:
        """(package group, self µs summed, import chain of its first module), biggest first."""
        totals: dict[str, int] = {}
        first: dict[str, ImportEntry] = {}
        for e in self.entries:
            if e.name in exclude:
                continue
            group = _group(e.name)
            totals[group] = totals.get(group, 0) + e.self_us
            first.setdefault(group, e)
        ranked = sorted(totals.items(), key=lambda kv: -kv[1])
        return [(g, us, _chain(first[g])) for g, us in ranked]

    def roots(self, exclude: set[str]) -> list[ImportEntry]:
        """Top-level imports (not nested in another import) by cumulative time."""
        return sorted(
            (e for e in self.entries if e.depth == 0 and e.name not in exclude),
            key=lambda e: -e.cumulative_us,
        )


def _group(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "google" and len(parts) > 2 and parts[1] == "cloud":
        return ".".join(parts[:3])
    if parts[0] in ("google", "imangor") and len(parts) > 1:
        return ".".join(parts[:2])
    return parts[0]


def _chain(entry: ImportEntry) -> str:
    names: list[str] = []
    node: ImportEntry | None = entry
    while node is not None:
        names.append(node.name)
        node = node.parent
    names.reverse()
    if len(names) > 4:
        names = [*names[:2], "…", *names[-2:]]
    return " → ".join(names)


def parse_importtime(lines: list[str], request_from: int) -> ImportProfile:
    """`-X importtime` lines → entries with parents; lines from index `request_from` on were
    written after the unit was listening (the worker serving the first request)."""
    entries: list[ImportEntry] = []
    pending: dict[int, list[ImportEntry]] = {}
    for index, line in enumerate(lines):
        if not line.startswith("import time:") or "imported package" in line:
            continue
        parts = line.split("|")
        if len(parts) != 3:
            continue
        own = int(parts[0].split(":")[1])
        cumulative = int(parts[1])
        text = parts[2].rstrip("\n")
        depth = (len(text) - len(text.lstrip()) - 1) // 2
        entry = ImportEntry(
            text.strip(), own, cumulative, depth, "request" if index >= request_from else "startup"
        )
        for child in pending.pop(depth + 1, []):  # children are printed before their parent
            child.parent = entry
        pending.setdefault(depth, []).append(entry)
        entries.append(entry)
    return ImportProfile(entries)


def merge_profiles(profiles: list[ImportProfile]) -> ImportProfile:
    """The first run's import tree with each module's median self and cumulative time over
    the runs (a single -X importtime run is noisy)."""
    selfs: dict[str, list[int]] = {}
    cumulatives: dict[str, list[int]] = {}
    for prof in profiles:
        for e in prof.entries:
            selfs.setdefault(e.name, []).append(e.self_us)
            cumulatives.setdefault(e.name, []).append(e.cumulative_us)
    for e in profiles[0].entries:
        e.self_us = int(median(selfs[e.name]))
        e.cumulative_us = int(median(cumulatives[e.name]))
    return profiles[0]


def profile_imports(probe: Probe, env: dict[str, str], logs: Path) -> ImportProfile:
    """Run the target under `python -X importtime` exactly as served, send the probe once."""
    port = free_port()
    command = [
        sys.executable,
        "-X",
        "importtime",
        *functions_framework_command(probe.source, probe.name, port),
    ]
    lines: list[str] = []
    log_path = logs / f"{probe.name}.importtime.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            command, cwd=ROOT, env=probe.env(env), stdout=log, stderr=subprocess.PIPE, text=True
        )

        def pump() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                lines.append(line)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            if probe.before_run is not None:
                probe.before_run()
            call = probe.call(999_999)
            # Wait for the port, then let the worker finish booting before the real probe.
            wait_until_answers_no_request(proc, port)
            time.sleep(0.5)
            cut = len(lines)
            status, _ = send(port, call)
            time.sleep(0.3)
            if status != probe.expected:
                print(f"  importtime {probe.name}: got {status}", file=sys.stderr)
        finally:
            stop(proc)
            reader.join(timeout=5)
    return parse_importtime(lines, cut)


def wait_until_answers_no_request(proc: subprocess.Popen[str], port: int) -> None:
    import socket

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the unit exited under -X importtime")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise TimeoutError("the unit never listened under -X importtime")


# -- report -------------------------------------------------------------------------------------


def _warm_note(r: Result) -> str:
    unexpected = {k: v for k, v in r.warm_statuses.items() if k != r.probe.expected}
    return f" ⚠ warm answers {unexpected}" if unexpected else ""


def _verdict(value: float, limit: float) -> str:
    return "PASS" if value <= limit else f"FAIL (+{value - limit:.3f} s over)"


def ratio_interval(
    values: list[float], baseline: list[float], resamples: int = 2000
) -> tuple[float, float]:
    """95 % bootstrap interval of median(values) / median(baseline).

    On this shared machine one start varies by ±25 %, so a ratio of two 15-run medians moves
    by several per cent from one report to the next; the interval says when a verdict is
    within that noise instead of letting it flip with it. Seeded: a report is reproducible.
    A target without samples (every start failed) has no interval: NaN.
    """
    if not values or not baseline:
        return float("nan"), float("nan")
    rng = random.Random(0)
    ratios = sorted(
        median(rng.choices(values, k=len(values))) / median(rng.choices(baseline, k=len(baseline)))
        for _ in range(resamples)
    )
    return ratios[int(0.025 * resamples)], ratios[int(0.975 * resamples) - 1]


def _certainty(low: float, high: float, budget: float) -> str:
    if math.isnan(low):
        return "no samples"
    if high <= budget:
        return "met"
    if low > budget:
        return "missed"
    return "within noise"


def _busy_range(results: list[Result]) -> str:
    busy = [s.busy for r in results for s in r.samples]
    return f"{min(busy):.2f}–{max(busy):.2f} (median {median(busy):.2f})" if busy else "—"


def _ms(us: int) -> str:
    return f"{us / 1000:.0f}"


def report(results: list[Result], runs: int, warm: int, elapsed: float, quiet: float) -> str:
    by_name = {r.probe.name: r for r in results}
    by_probe = [r.probe for r in results]
    hello, sqla = by_name[HELLO].median, by_name[SQLA_JWT].median
    sqla_cpu = by_name[SQLA_JWT].median_cpu
    hello_floor, sqla_floor = by_name[HELLO_FLOOR].median, by_name[SQLA_FLOOR].median
    pydantic_only = by_name[PYDANTIC_ONLY].median
    rows: list[list[str]] = []
    for r in results:
        p = r.probe
        answered = [s.answered for s in r.samples]
        wrong = [s.status for s in r.samples if s.status != p.expected]
        floor = sqla_floor if p.touches_db else hello_floor
        floor_samples = by_name[SQLA_FLOOR if p.touches_db else HELLO_FLOOR].samples
        base, limit = (SQLA_JWT, DB_BUDGET) if p.touches_db else (HELLO, NO_DB_BUDGET)
        low, high = ratio_interval(answered, [s.answered for s in by_name[base].samples])
        if p.baseline:
            budget, verdict, floor_interval = "—", "baseline", "—"
            interval = "—" if p.name == base else f"{low:.2f}–{high:.2f} × {base}"
        else:
            budget = f"≤ {limit}× {'SQLA+JWT' if p.touches_db else 'hello'}"
            verdict = _verdict(r.median, limit * by_name[base].median)
            interval = f"{low:.2f}–{high:.2f}: {_certainty(low, high, limit)}"
            f_low, f_high = ratio_interval(answered, [s.answered for s in floor_samples])
            floor_interval = f"{f_low:.2f}–{f_high:.2f}"
        if wrong or r.failures:
            verdict = f"FAIL (answers {sorted(set(wrong))}, {len(r.failures)} errors)"
        pss = r.warm_pss / MIB if r.warm_pss is not None else float("nan")
        memory = "PASS" if pss <= MEMORY_BUDGET_MIB else "FAIL"
        rows.append(
            [
                f"**{p.name}**" if not p.baseline else f"_{p.name}_ (baseline)",
                f"{p.description} → {p.expected}",
                f"{r.median:.3f}",
                f"{min(answered):.3f}–{max(answered):.3f}" if answered else "—",
                f"{r.median_cpu:.3f}",
                f"{r.median_listening:.3f}",
                f"{r.median - r.median_listening:.3f}",
                f"{r.median / hello:.2f}",
                f"{r.median / sqla:.2f}",
                f"{r.median_cpu / sqla_cpu:.2f}",
                f"{budget}: {verdict}",
                interval,
                f"{r.median / floor:.2f}",
                floor_interval,
                f"{median([s.pss_first for s in r.samples]) / MIB:.1f}",
                f"{pss:.1f} ({r.warm_processes} procs)" + _warm_note(r),
                "—" if p.baseline else f"{memory}",
            ]
        )
    header = [
        "unit",
        "probe → expected status",
        "median cold start (s)",
        "min–max (s)",
        "CPU (s)",
        "listening (s)",
        "listening → answer (s)",
        "× hello",
        "× SQLA+JWT",
        "× SQLA+JWT (CPU)",
        "time budget",
        "budget ratio, 95 % interval",
        "× its floor",
        "× its floor, 95 % interval",
        "PSS after 1st answer (MiB)",
        f"PSS after {warm} warm requests (MiB)",
        f"≤ {MEMORY_BUDGET_MIB:.0f} MiB",
    ]
    from imangor.config import get_settings

    settings = get_settings()
    out = ["# Cold start of each unit (functions-framework / gunicorn, as in production)", ""]
    out += machine_lines()
    out += [
        f"- versions: functions-framework {package_version('functions-framework')}, gunicorn "
        f"{package_version('gunicorn')}, flask {package_version('flask')}, sqlalchemy "
        f"{package_version('sqlalchemy')}, pydantic {package_version('pydantic')}, pg8000 "
        f"{package_version('pg8000')}, pyjwt {package_version('pyjwt')}, redis "
        f"{package_version('redis')}",
        f"- {runs} timed runs per target after one untimed run each (bytecode compiled, page "
        f"cache warm), interleaved round by round; wall time of the whole bench {elapsed:.0f} s",
        "- cold start = `Popen` of `THREADS=… functions-framework --source … --target … --port "
        "… --host 127.0.0.1` → the whole first answer of the probe read; the bench connects "
        "every 5 ms. "
        "`listening` = first accepted connection (the master has imported the unit and bound "
        "the port); `listening → answer` = worker fork + first request (lazy imports, first "
        "database and Redis connections)",
        f"- served as deployed: gunicorn gthread, 1 worker; {_threads_text(list(by_probe))}; "
        f"database pool {settings.db_pool_size} + {settings.db_max_overflow} overflow (the "
        "settings' defaults, which Terraform passes as DB_POOL_SIZE / DB_MAX_OVERFLOW: one "
        "connection per request thread)",
        "- CPU = user + system seconds of the master and its worker until the first answer "
        "(less sensitive than wall time to other work on the machine)",
        "- PSS = Σ Pss of /proc/<pid>/smaps_rollup over the master and its worker(s)",
        f"- shared machine: before each run the bench waits (≤ {quiet:.0f} s per round, ≤ 3 s "
        "per run) until other work keeps < 0.35 cores busy; cores busy just before the runs: "
        f"{_busy_range(results)}. Rounds are interleaved, so what noise is left hits every "
        "target alike",
        "- bytecode: compiled once into a cache outside the tree (`PYTHONPYCACHEPREFIX`), as in "
        "an image whose packages pip installed; see the last section for starts without it",
        "- services: PostgreSQL 127.0.0.1:5432 (database imangor_bench_startup), Redis "
        "127.0.0.1:6379/10; ENVIRONMENT=test; RATE_LIMIT_DEFAULT=1000000/60 (limits are still "
        "checked in Redis, never hit)",
        "",
    ]
    out += markdown_table(header, rows)
    notes = [f"- **{r.probe.name}**: {r.probe.note}" for r in results if r.probe.note]
    notes += [
        f"- **{r.probe.name}**: ⚠ the probe does not work: {r.wrong_answer} (so the times above "
        "are of an error answer, not of the probe's normal work)"
        for r in results
        if r.wrong_answer
    ]
    if notes:
        out += ["", "Probe notes:", "", *notes]
    out += [
        "",
        f"Budgets: a unit whose probe touches no database ≤ {NO_DB_BUDGET}× hello "
        f"({NO_DB_BUDGET * hello:.3f} s); a database unit ≤ {DB_BUDGET}× the SQLAlchemy+JWT "
        f"baseline ({DB_BUDGET * sqla:.3f} s); every unit ≤ {MEMORY_BUDGET_MIB:.0f} MiB PSS "
        "after warm-up. *budget ratio, 95 % interval* is a bootstrap interval (2,000 "
        "resamples) of the unit's median over its budget's baseline median: *met* or "
        "*missed* when the whole interval lies on one side of the budget, *within noise* when "
        "it straddles it (the machine's noise, not the code, decides that verdict).",
        "",
        "Floors: *hello_pydantic* and *sqlalchemy_jwt_pydantic* are the two bare baselines plus "
        "only what the issue mandates for every unit: settings read by pydantic-settings at "
        "import and a pydantic answer (bench/baselines/); like the bare baselines they run "
        "with Python's defaults (the collector on throughout, pg8000's TLS negotiation). "
        "Here the floors themselves are "
        f"{hello_floor / hello:.2f}× hello and {sqla_floor / sqla:.2f}× SQLA+JWT, against "
        f"budgets of {NO_DB_BUDGET}× and {DB_BUDGET}×. *× its floor* is what a unit costs "
        "beside that: our runtime, models and features (per-request Redis rate limit, cache, "
        "metrics, logs) minus what the runtime saves a bare function (the garbage collector "
        "paused while the unit starts, `imangor.runtime.startup`, and no TLS negotiation on a "
        "loopback database), which is why a unit can come in under its floor; its interval "
        "(bootstrap, as above) says whether that difference is more than the machine's noise. "
        "A baseline's *budget ratio* column gives its own interval against its bare baseline.",
        "",
        f"*{PYDANTIC_ONLY}* (reference, not a floor) is the bare hello plus pydantic alone: "
        "two settings read from os.environ by a plain pydantic model and a pydantic answer, "
        f"no pydantic-settings. It comes in at {pydantic_only / hello:.2f}× hello: pydantic "
        "by itself, which the runtime's typed inputs and outputs (item 5) need in every unit, "
        f"costs {'more' if pydantic_only > NO_DB_BUDGET * hello else 'less'} than the "
        f"{NO_DB_BUDGET}× budget of a unit that touches no database.",
    ]
    out += import_report(results)
    return "\n".join(out) + "\n"


def import_report(results: list[Result]) -> list[str]:
    by_name = {r.probe.name: r for r in results}
    base = by_name[HELLO].imports
    if base is None:
        return []
    hello_names = base.names()

    def names_of(*targets: str) -> set[str]:
        profiles = [by_name[t].imports for t in targets if t in by_name]
        return set().union(*(p.names() for p in profiles if p is not None))

    sqla_names = names_of(SQLA_JWT, SQLA_FLOOR)
    hello_floor_names = names_of(HELLO_FLOOR)
    out = [
        "",
        "## What the cold start is made of (`python -X importtime`)",
        "",
        "Each target served again under `-X importtime` by the same command, with the same "
        "probe, a few times (interleaved); each module's median is shown. Times are import "
        "self-times in ms (importtime inflates them somewhat; compare "
        "them with each other). *Beyond hello* leaves out every module the bare hello "
        "function imports too (functions-framework, flask, werkzeug, gunicorn…); *beyond its "
        "floor* also leaves out what the unit's floor imports (pydantic, pydantic-settings and, "
        "for a database unit, sqlalchemy, pg8000, jwt…): that is the unit's own cost. "
        "*startup* is "
        "imported by the master before it listens; *1st request* by the worker while serving "
        "the probe.",
        "",
    ]
    rows: list[list[str]] = []
    ordered = sorted(results, key=lambda r: -r.median)
    for r in ordered:
        prof = r.imports
        if prof is None:
            continue
        groups = prof.by_group(hello_names)[:6]
        floor_names = (sqla_names if r.probe.touches_db else hello_floor_names) | hello_names
        beyond_floor = prof.by_group(floor_names)[:5]
        rows.append(
            [
                r.probe.name,
                f"{r.median:.3f}",
                _ms(prof.self_total()),
                _ms(prof.self_total("startup", hello_names)),
                _ms(prof.self_total("request", hello_names)),
                ", ".join(f"{g} {_ms(us)}" for g, us, _ in groups),
                _ms(prof.self_total(None, floor_names)) if not r.probe.baseline else "—",
                ", ".join(f"{g} {_ms(us)}" for g, us, _ in beyond_floor)
                if not r.probe.baseline
                else "—",
            ]
        )
    out += markdown_table(
        [
            "target",
            "median cold start (s)",
            "all imports (ms)",
            "beyond hello: startup (ms)",
            "beyond hello: 1st request (ms)",
            "biggest packages beyond hello (ms self)",
            "beyond its floor (ms)",
            "biggest packages beyond its floor (ms self)",
        ],
        rows,
    )
    slowest = [r for r in ordered if not r.probe.baseline and r.imports is not None][:4]
    for r in slowest:
        prof = r.imports
        assert prof is not None
        out += ["", f"### {r.probe.name}: top imports beyond hello", ""]
        top_roots = prof.roots(hello_names)[:8]
        out += markdown_table(
            ["top-level import (cumulative)", "ms", "phase"],
            [[e.name, _ms(e.cumulative_us), e.phase] for e in top_roots],
        )
        out += [""]
        out += markdown_table(
            ["package (self, summed)", "ms", "first pulled in by"],
            [[g, _ms(us), chain] for g, us, chain in prof.by_group(hello_names)[:10]],
        )
    return out


# -- main ---------------------------------------------------------------------------------------


def measure(
    targets: list[Probe],
    env: dict[str, str],
    work: Path,
    runs: int,
    warm: int,
    label: str,
    quiet: float,
) -> list[Result]:
    """One untimed start per target, then `runs` interleaved rounds; `warm` on the last.

    Each round runs the targets in its own shuffled order (seeded by the round number, so a
    rerun repeats it): a target always started last, or always right after another, would
    carry whatever that position costs on a shared machine."""
    results = [Result(p) for p in targets]
    counter = itertools.count(1)
    print(f"[{label}] warming up {len(targets)} targets (one untimed start each)…", flush=True)
    for r in results:
        r.wrong_answer = _untimed_start(r.probe, env, work, next(counter))
        if r.wrong_answer is not None:
            print(
                f"  {r.probe.name}: {r.wrong_answer}; measured anyway, reported as failing",
                file=sys.stderr,
            )
    for round_number in range(1, runs + 1):
        last = round_number == runs
        if quiet:
            wait_for_quiet(timeout=quiet)
        for r in random.Random(round_number).sample(results, len(results)):
            try:
                sample, extra = cold_run(
                    r.probe, env, work, next(counter), warm if last else 0, 3.0 if quiet else 0.0
                )
            except (TimeoutError, RuntimeError, OSError) as exc:
                r.failures.append(f"round {round_number}: {exc}")
                print(f"  {r.probe.name}: {exc}", file=sys.stderr)
                continue
            r.samples.append(sample)
            if extra is not None:
                r.warm_pss, r.warm_rss = extra.warm_pss, extra.warm_rss
                r.warm_processes, r.warm_statuses = extra.warm_processes, extra.warm_statuses
        line = "  ".join(
            f"{r.probe.name} {r.samples[-1].answered:.2f}" for r in results if r.samples
        )
        print(f"[{label}] round {round_number}/{runs}: {line}", flush=True)
    return results


def no_bytecode_report(results: list[Result], with_bytecode: list[Result], runs: int) -> list[str]:
    cached = {r.probe.name: r for r in with_bytecode}
    rows = []
    for r in results:
        other = cached[r.probe.name]
        rows.append(
            [
                r.probe.name,
                f"{r.median:.3f}",
                f"{other.median:.3f}",
                f"+{r.median - other.median:.3f}",
                f"{r.median_cpu:.3f}",
            ]
        )
    return [
        "",
        "## Without compiled bytecode (this sandbox's `PYTHONDONTWRITEBYTECODE=1`)",
        "",
        f"The same command with the environment as this sandbox sets it: no `.pyc` is read or "
        f"written, so every import of the project and of site-packages compiles its source at "
        f"each start. {runs} runs each; compare with the table above (bytecode cached).",
        "",
        *markdown_table(
            [
                "target",
                "median cold start, no bytecode (s)",
                "with bytecode (s)",
                "difference (s)",
                "CPU, no bytecode (s)",
            ],
            rows,
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10, help="timed cold starts per target")
    parser.add_argument("--units", default="", help="comma-separated units (default: all)")
    parser.add_argument("--warm", type=int, default=50, help="requests before reading memory")
    parser.add_argument(
        "--import-runs", type=int, default=3, help="-X importtime runs per target (0: skip)"
    )
    parser.add_argument(
        "--no-bytecode-runs",
        type=int,
        default=3,
        help="runs of hello, the SQLAlchemy baseline, docs and users with the environment's own "
        "PYTHONDONTWRITEBYTECODE (0: skip)",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=20.0,
        help="seconds per round to wait for other work on the machine to calm down (0: never)",
    )
    parser.add_argument(
        "--threads",
        default="inventory",
        help="THREADS of the served process: `inventory` (each unit's concurrency, as Terraform "
        "sets it; 4 for the baselines), `default` (unset: functions-framework's 4 × CPU) or N",
    )
    parser.add_argument("--output", type=Path, default=RESULTS / "cold_start.md")
    args = parser.parse_args(argv)
    if args.threads not in ("inventory", "default") and not (
        args.threads.isdigit() and 1 <= int(args.threads) <= 64
    ):
        parser.error("--threads must be inventory, default or 1..64")
    if not 1 <= args.runs <= 100 or not 0 <= args.warm <= 1000:
        parser.error("--runs must be 1..100 and --warm 0..1000")
    if not 0 <= args.import_runs <= 10:
        parser.error("--import-runs must be 0..10")
    if not 0 <= args.no_bytecode_runs <= 20:
        parser.error("--no-bytecode-runs must be 0..20")

    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="imangor-bench-") as tmp:
        work = Path(tmp)
        configure_this_process()
        from imangor.registry import unit_names

        available = unit_names()
        units = [u.strip() for u in args.units.split(",") if u.strip()] or available
        unknown = sorted(set(units) - set(available))
        if unknown:
            parser.error(f"unknown units {unknown}; choose from {available}")
        prepare_database()
        seeded = seed(work / "oidc")
        oidc = {
            "OIDC_AUDIENCE": OIDC_AUDIENCE,
            "OIDC_CERTS_URL": seeded.signer.certs_url,
            "OIDC_SERVICE_ACCOUNTS": json.dumps([TASKS_ACCOUNT, SCHEDULER_ACCOUNT]),
        }
        targets = probes(seeded, units)
        assign_threads(targets, args.threads)
        results = measure(
            targets, bench_env(**oidc), work, args.runs, args.warm, "bytecode", args.quiet_wait
        )
        if args.import_runs:
            print(f"import profiles (-X importtime, {args.import_runs} runs)…", flush=True)
            for _ in range(args.import_runs):  # interleaved, like the timed rounds
                for r in results:
                    try:
                        r.import_runs.append(profile_imports(r.probe, bench_env(**oidc), work))
                    except (TimeoutError, RuntimeError, OSError) as exc:
                        print(f"  importtime {r.probe.name}: {exc}", file=sys.stderr)
            for r in results:
                r.imports = merge_profiles(r.import_runs) if r.import_runs else None
        plain: list[Result] = []
        if args.no_bytecode_runs and os.environ.get("PYTHONDONTWRITEBYTECODE"):
            subset = [p for p in targets if p.name in (HELLO, SQLA_JWT, "docs", "users")]
            plain_env = bench_env(bytecode=False, **oidc)
            plain = measure(
                subset, plain_env, work, args.no_bytecode_runs, 0, "no bytecode", args.quiet_wait
            )
        elapsed = time.perf_counter() - began
        text = report(results, args.runs, args.warm, elapsed, args.quiet_wait)
        if plain:
            text += "\n".join(no_bytecode_report(plain, results, args.no_bytecode_runs)) + "\n"
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    raw = {
        "date": datetime.now(UTC).isoformat(),
        "runs": args.runs,
        "warm": args.warm,
        "targets": [_raw(r) for r in results],
        "no_bytecode": [_raw(r) for r in plain],
    }
    args.output.with_suffix(".json").write_text(json.dumps(raw, indent=2) + "\n")
    print(text)
    return 0


def _raw(r: Result) -> dict[str, Any]:
    return {
        "name": r.probe.name,
        "probe": r.probe.description,
        "expected": r.probe.expected,
        "touches_db": r.probe.touches_db,
        "samples": [asdict(s) for s in r.samples],
        "failures": r.failures,
        "wrong_answer": r.wrong_answer,
        "warm_pss": r.warm_pss,
        "warm_rss": r.warm_rss,
        "warm_statuses": r.warm_statuses,
    }


if __name__ == "__main__":
    sys.exit(main())
