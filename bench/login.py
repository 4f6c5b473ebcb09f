"""Login throughput and the auth unit's memory under 16 concurrent sign-ins.

The auth unit runs as in production (`functions-framework --source functions/auth/main.py
--target auth`, gunicorn gthread, default settings: Argon2id m=19 MiB t=2 p=1, database pool
4 + 0, hashes on their own pool of MAX_CONCURRENT_HASHES threads), once per pair of

- THREADS (`--threads`): 4, as Terraform deploys the unit (THREADS = its concurrency), and
  `default`, THREADS unset: functions-framework's 4 × CPU request threads;
- MAX_CONCURRENT_HASHES (`--slots`): 2 (the default), 1 and 4.

`--clients` threads, each on its own keep-alive connection, POST /auth/token (OAuth2 password
form) for `--duration` seconds, round-robin over `--users` accounts that share one password
hash (hashed once). The process tree's RSS and PSS are sampled every 50 ms. The baseline is
argon2-cffi in this process: verifications per second with the same parameters, on one
thread and on two.

Login rate limits are set out of reach for the bench: LOGIN_LIMIT_PER_ACCOUNT and
LOGIN_LIMIT_PER_IP = 1000000/60 (the defaults, 10/300 and 50/300, would answer 429 at once).

    uv run --frozen python bench/login.py [--duration 20] [--clients 16] [--slots 2,1,4]
        [--threads 4,default]

Writes bench/results/login.md (and the raw numbers in login.json).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: bench.* importable

from bench.common import (
    BENCH_DB,
    MIB,
    RESULTS,
    Call,
    bench_env,
    configure_this_process,
    free_port,
    functions_framework_command,
    machine_lines,
    markdown_table,
    median,
    package_version,
    percentile,
    poll_first_response,
    prepare_database,
    running,
    tree_cpu_seconds,
    tree_memory,
    unit_source,
    wait_for_quiet,
)

PASSWORD = "correct horse battery staple"  # noqa: S105 - the bench accounts' password
TIME_COST, MEMORY_KIB, PARALLELISM = 2, 19456, 1  # the settings' defaults (OWASP)
LIMITS_OFF = "1000000/60"
DEPLOYED_THREADS = 4  # Terraform: THREADS = the auth unit's concurrency (Deploy default 4)
DEFAULT_SLOTS = 2  # MAX_CONCURRENT_HASHES's default


# -- the bare baseline --------------------------------------------------------------------------


@dataclass
class HashRate:
    verify_1_thread: float  # verifications per second
    hash_1_thread: float
    verify_2_threads: float
    cpu_ms_per_verify: float  # thread CPU time per verification (robust to a busy machine)


def bare_argon2(seconds: float) -> HashRate:
    """argon2-cffi with the unit's parameters, in this process (bounded by time and count)."""
    from argon2 import PasswordHasher

    hasher = PasswordHasher(time_cost=TIME_COST, memory_cost=MEMORY_KIB, parallelism=PARALLELISM)
    stored = hasher.hash(PASSWORD)

    def rate(work: Any, threads: int) -> float:
        done = [0] * threads
        deadline = time.perf_counter() + seconds

        def loop(index: int) -> None:
            for _ in range(100_000):
                if time.perf_counter() >= deadline:
                    return
                work()
                done[index] += 1

        started = time.perf_counter()
        workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        return sum(done) / (time.perf_counter() - started)

    verify_1 = rate(lambda: hasher.verify(stored, PASSWORD), 1)
    # rate() ran its loop on another thread: measure the CPU of a few verifications here.
    cpu_started = time.thread_time()
    count = max(3, int(verify_1 * seconds / 4))
    for _ in range(count):
        hasher.verify(stored, PASSWORD)
    cpu_ms = (time.thread_time() - cpu_started) * 1000 / count
    return HashRate(
        verify_1_thread=verify_1,
        hash_1_thread=rate(lambda: hasher.hash(PASSWORD), 1),
        verify_2_threads=rate(lambda: hasher.verify(stored, PASSWORD), 2),
        cpu_ms_per_verify=cpu_ms,
    )


# -- accounts -----------------------------------------------------------------------------------


def create_accounts(count: int) -> list[str]:
    """`count` customers sharing one real Argon2id hash of PASSWORD (hashed once)."""
    from sqlalchemy import insert

    from imangor.auth.passwords import hash_password
    from imangor.db import session_scope
    from imangor.models import User

    hashed = hash_password(PASSWORD)
    assert hashed.startswith(f"$argon2id$v=19$m={MEMORY_KIB},t={TIME_COST},p={PARALLELISM}$")
    emails = [f"login-{n:04d}@example.com" for n in range(count)]
    rows = [
        {
            "email": e,
            "hashed_password": hashed,
            "role": "customer",
            "full_name": "Login Bench",
            "email_verified": True,
        }
        for e in emails
    ]
    with session_scope() as session:
        session.execute(insert(User), rows)
    return emails


def login_call(email: str) -> Call:
    form = urllib.parse.urlencode(
        {"username": email, "password": PASSWORD, "grant_type": "password"}
    )
    return Call(
        "POST",
        "/auth/token",
        {"Content-Type": "application/x-www-form-urlencoded"},
        form.encode(),
    )


@dataclass(frozen=True)
class Variant:
    """THREADS (None: unset, functions-framework's default), MAX_CONCURRENT_HASHES and any
    extra environment of one run; `--slots` items read "2" or "2+KEY=VALUE"."""

    threads: int | None
    slots: int
    env: dict[str, str]

    @classmethod
    def parse(cls, threads: int | None, text: str) -> Variant:
        first, *extras = text.strip().split("+")
        env = dict(e.split("=", 1) for e in extras)
        return cls(threads, int(first), env)

    @property
    def label(self) -> str:
        threads = "default" if self.threads is None else str(self.threads)
        extras = (f"{k}={v}" for k, v in self.env.items())
        return "+".join([f"threads{threads}", f"slots{self.slots}", *extras])


def parse_threads(text: str) -> int | None:
    """ "default" → None (THREADS unset), else a thread count."""
    return None if text.strip() == "default" else int(text)


def default_threads() -> int:
    """What functions-framework's gunicorn runs with THREADS unset: 4 × CPU."""
    return (os.cpu_count() or 1) * 4


# -- one load run -------------------------------------------------------------------------------


@dataclass
class LoadResult:
    threads: int | None  # None: THREADS unset (functions-framework's 4 × CPU)
    slots: int
    extra_env: dict[str, str] = field(default_factory=dict)
    duration: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)  # seconds, successful logins only
    idle_rss: int = 0
    idle_pss: int = 0
    peak_rss: int = 0
    peak_pss: int = 0
    samples: int = 0
    cpu_seconds: float = 0.0
    machine_busy: float = 0.0  # busy CPU seconds of the whole machine during the load
    peak_db_connections: int = 0
    peak_idle_in_transaction: int = 0

    @property
    def ok(self) -> int:
        return self.statuses.get("200", 0)

    @property
    def rate(self) -> float:
        return self.ok / self.duration if self.duration else 0.0

    @property
    def cpu_ms_per_login(self) -> float:
        return self.cpu_seconds * 1000 / self.ok if self.ok else float("nan")


class Sampler(threading.Thread):
    """Peak RSS/PSS of the unit's process tree every 50 ms; DB connections every 250 ms."""

    def __init__(self, pid: int, result: LoadResult) -> None:
        super().__init__(daemon=True)
        self.pid, self.result = pid, result
        self.stopping = threading.Event()

    def run(self) -> None:
        from sqlalchemy import text

        from imangor.db import get_engine

        query = text(
            "SELECT count(*), count(*) FILTER (WHERE state = 'idle in transaction') "
            "FROM pg_stat_activity WHERE datname = :db AND pid <> pg_backend_pid()"
        )
        r = self.result
        tick = 0
        with get_engine().connect() as connection:
            while not self.stopping.wait(0.05):
                memory = tree_memory(self.pid)
                r.peak_rss, r.peak_pss = max(r.peak_rss, memory.rss), max(r.peak_pss, memory.pss)
                r.samples += 1
                tick += 1
                if tick % 5 == 0:
                    total, idle_tx = connection.execute(query, {"db": BENCH_DB}).one()
                    connection.rollback()
                    r.peak_db_connections = max(r.peak_db_connections, int(total))
                    r.peak_idle_in_transaction = max(r.peak_idle_in_transaction, int(idle_tx))


def drive(port: int, emails: list[str], clients: int, duration: float, result: LoadResult) -> None:
    """`clients` threads logging in on keep-alive connections until the deadline."""
    lock = threading.Lock()
    deadline = time.perf_counter() + duration

    def client(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        statuses: dict[str, int] = {}
        latencies: list[float] = []
        n = index
        for _ in range(1_000_000):  # bounded; the deadline ends it long before
            if time.perf_counter() >= deadline:
                break
            call = login_call(emails[n % len(emails)])
            n += clients
            started = time.perf_counter()
            try:
                conn.request(call.method, call.path, body=call.body, headers=call.headers)
                response = conn.getresponse()
                response.read()
                key = str(response.status)
            except (OSError, http.client.HTTPException) as exc:
                key = type(exc).__name__
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            elapsed = time.perf_counter() - started
            statuses[key] = statuses.get(key, 0) + 1
            if key == "200":
                latencies.append(elapsed)
        conn.close()
        with lock:
            for key, count in statuses.items():
                result.statuses[key] = result.statuses.get(key, 0) + count
            result.latencies.extend(latencies)

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=duration + 120)
    result.duration = time.perf_counter() - started


def _machine_busy() -> float:
    """CPU seconds the whole machine spent busy (all cores) since boot."""
    import psutil

    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


def load_run(
    variant: Variant, emails: list[str], clients: int, duration: float, logs: Path
) -> LoadResult:
    env = {**bench_env(MAX_CONCURRENT_HASHES=str(variant.slots)), **variant.env}
    if variant.threads is not None:  # bench_env drops THREADS: unset unless asked for
        env["THREADS"] = str(variant.threads)
    port = free_port()
    result = LoadResult(variant.threads, variant.slots, dict(variant.env))
    command = functions_framework_command(unit_source("auth"), "auth", port)
    with running(command, env, logs / f"auth-{variant.label}.log") as proc:
        first = poll_first_response(proc, port, login_call(emails[0]), time.perf_counter())
        if first.status != 200:
            raise SystemExit(f"warm-up login answered {first.status}: {first.body[:300]!r}")
        time.sleep(1.0)  # idle: lazy imports and the dummy hash done, nothing in flight
        idle = tree_memory(proc.pid)
        result.idle_rss, result.idle_pss = idle.rss, idle.pss
        sampler = Sampler(proc.pid, result)
        sampler.start()
        cpu_before, busy_before = tree_cpu_seconds(proc.pid), _machine_busy()
        drive(port, emails, clients, duration, result)
        result.cpu_seconds = tree_cpu_seconds(proc.pid) - cpu_before
        result.machine_busy = _machine_busy() - busy_before
        sampler.stopping.set()
        sampler.join(timeout=10)
    return result


# -- report -------------------------------------------------------------------------------------


def _threads_label(r: LoadResult) -> str:
    if r.threads is None:
        return f"unset → {default_threads()} (functions-framework's 4 × CPU)"
    return f"{r.threads}" + (" (Terraform)" if r.threads == DEPLOYED_THREADS else "")


def _variant_label(r: LoadResult) -> str:
    label = f"{r.slots}" + (" (default)" if r.slots == DEFAULT_SLOTS and not r.extra_env else "")
    return label + "".join(f" + `{k}={v}`" for k, v in r.extra_env.items())


def report(
    runs: list[LoadResult],
    bare: list[HashRate],
    clients: int,
    duration: float,
    users: int,
    quiet: list[float],
) -> str:
    verify_1 = median([b.verify_1_thread for b in bare])
    verify_2 = median([b.verify_2_threads for b in bare])
    hash_1 = median([b.hash_1_thread for b in bare])
    cpu_verify = median([b.cpu_ms_per_verify for b in bare])
    from imangor.config import get_settings

    settings = get_settings()
    rows = []
    for r in runs:
        lat = r.latencies
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(r.statuses.items()))
        rows.append(
            [
                _threads_label(r),
                _variant_label(r),
                f"{r.rate:.1f}",
                f"{r.rate / verify_1:.2f}",
                f"{r.rate / verify_2:.2f}",
                f"{median(lat) * 1000:.0f}" if lat else "—",
                f"{percentile(lat, 99) * 1000:.0f}" if lat else "—",
                f"{max(lat) * 1000:.0f}" if lat else "—",
                statuses,
                f"{r.cpu_seconds / r.duration:.2f} / {r.machine_busy / r.duration:.2f}"
                if r.duration
                else "—",
                f"{r.cpu_ms_per_login:.1f} ({r.cpu_ms_per_login / cpu_verify:.2f}×)",
                f"{2000 / r.cpu_ms_per_login:.0f}",
                f"{r.idle_rss / MIB:.1f} / {r.idle_pss / MIB:.1f}",
                f"{r.peak_rss / MIB:.1f} / {r.peak_pss / MIB:.1f}",
                f"+{(r.peak_rss - r.idle_rss) / MIB:.1f} / +{(r.peak_pss - r.idle_pss) / MIB:.1f}",
                f"{(r.peak_pss - r.idle_pss) / (MEMORY_KIB * 1024):.1f}",
                f"{r.peak_db_connections} ({r.peak_idle_in_transaction})",
            ]
        )
    spread = ", ".join(f"{b.verify_1_thread:.1f}" for b in bare)
    out = ["# Login throughput and memory of the auth unit", ""]
    out += machine_lines()
    out += [
        f"- versions: functions-framework {package_version('functions-framework')}, gunicorn "
        f"{package_version('gunicorn')}, argon2-cffi {package_version('argon2-cffi')}, pwdlib "
        f"{package_version('pwdlib')}",
        "- unit: `THREADS=… functions-framework --source functions/auth/main.py --target auth "
        "--host 127.0.0.1 --port …` (gunicorn gthread, 1 worker × THREADS request threads: "
        f"{DEPLOYED_THREADS} as Terraform deploys the unit, THREADS = its concurrency; or "
        f"unset, functions-framework's 4 × CPU = {default_threads()} here), default settings: "
        f"Argon2id m={MEMORY_KIB} KiB t={TIME_COST} p={PARALLELISM}, DB pool "
        f"{settings.db_pool_size} + {settings.db_max_overflow} overflow; bytecode compiled",
        "- hashing: every Argon2 hash and verification runs on the unit's own pool of "
        "MAX_CONCURRENT_HASHES threads (not on the request threads); login ends its read "
        "transaction (the SELECT of the account) before it hashes",
        f"- load: {clients} client threads, each on its own keep-alive connection, POST "
        f"/auth/token (form: username, password, grant_type) for {duration:.0f} s, round-robin "
        f"over {users} accounts sharing one real hash of the same password",
        f"- rate limits moved out of reach for the bench: LOGIN_LIMIT_PER_ACCOUNT = "
        f"LOGIN_LIMIT_PER_IP = {LIMITS_OFF} (still counted in Redis on every attempt); the "
        "defaults (10/300 per account, 50/300 per IP) would answer 429 within a second",
        "- memory: RSS and PSS summed over the gunicorn master and worker, from "
        "/proc/<pid>/smaps_rollup every 50 ms; idle = 1 s after one warm-up login",
        "- CPU: the unit's cores used on average / the whole machine's busy cores (the rest is "
        "this bench's clients, PostgreSQL, Redis and anything else running)",
        "- shared machine: before each bare measure and each run the bench waited (bounded by "
        "--quiet-wait) for other work to keep < 0.35 cores busy; cores busy then: "
        + ", ".join(f"{q:.2f}" for q in quiet),
        "- DB connections: peak sessions of the unit on the bench database in pg_stat_activity "
        "(in parentheses: of them `idle in transaction`), sampled every 250 ms",
        "",
        "Bare argon2-cffi in this process, same parameters, measured before each run and at "
        f"the end (medians of {len(bare)}): **{verify_1:.1f} verifications/s on one thread** "
        f"(samples: {spread}), {hash_1:.1f} hashes/s on one thread, {verify_2:.1f} "
        "verifications/s on two threads (the machine's ceiling); one verification costs "
        f"**{cpu_verify:.1f} ms of CPU** (thread time, which a busy machine hardly changes).",
        "",
        "Wall-clock rates depend on what else this shared 2-core machine ran at the time (see "
        "the machine's busy cores in the table). The CPU cost per login does not, so "
        "`2 cores ÷ CPU per login` is the rate the unit would reach with both cores to "
        "itself: an estimate derived from the measured CPU, not a measured rate.",
        "",
    ]
    out += markdown_table(
        [
            "THREADS (request threads)",
            "MAX_CONCURRENT_HASHES",
            "logins/s",
            "÷ bare (1 thread)",
            "÷ bare (2 threads)",
            "p50 (ms)",
            "p99 (ms)",
            "max (ms)",
            "status counts",
            "CPU unit / machine (cores)",
            "unit CPU ms per login (× bare verify)",
            "2 cores ÷ CPU per login (logins/s)",
            "idle RSS / PSS (MiB)",
            "peak RSS / PSS (MiB)",
            "peak − idle RSS / PSS (MiB)",
            "(peak − idle PSS) ÷ m",
            "peak DB conns (idle in tx)",
        ],
        rows,
    )
    out += [
        "",
        "A 503 is a sign-in that waited `HASH_WAIT_SECONDS` (10 s) for the hashing pool; a 429 "
        "would be a login limit. Each Argon2id hash in flight needs m = 19 MiB, kept in the "
        "malloc arena of the thread that hashed; with hashes on a pool of "
        "MAX_CONCURRENT_HASHES = k threads one would expect peak − idle ≈ k × m whatever "
        "THREADS is; the column `(peak − idle PSS) ÷ m` says how many m-sized buffers the "
        "process really kept. Login ends its read transaction before hashing, so no connection "
        "sits `idle in transaction` through a hash; what that count still catches (peaks of "
        "250 ms samples) is the gap between statements of the transaction that issues the "
        "tokens.",
    ]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load per run")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients")
    parser.add_argument("--users", type=int, default=64, help="accounts to log in as")
    parser.add_argument(
        "--slots",
        default="2,1,4",
        help="MAX_CONCURRENT_HASHES values, each optionally +KEY=VALUE of extra env",
    )
    parser.add_argument(
        "--threads",
        default=f"{DEPLOYED_THREADS},default",
        help="THREADS values (`default`: unset, functions-framework's 4 × CPU); every one is "
        "run with every --slots value",
    )
    parser.add_argument("--baseline-seconds", type=float, default=2.0, help="per bare measure")
    parser.add_argument(
        "--quiet-wait", type=float, default=60.0, help="seconds to wait for a calm machine"
    )
    parser.add_argument("--output", type=Path, default=RESULTS / "login.md")
    args = parser.parse_args(argv)
    try:
        thread_values = [parse_threads(t) for t in args.threads.split(",") if t.strip()]
        variants = [
            Variant.parse(threads, v)
            for threads in thread_values
            for v in args.slots.split(",")
            if v.strip()
        ]
    except ValueError:
        parser.error("--threads: numbers or `default`; --slots: N or N+KEY=VALUE")
    if not 1 <= args.duration <= 120 or not 1 <= args.clients <= 64:
        parser.error("--duration must be 1..120 and --clients 1..64")
    if not 1 <= args.users <= 10_000 or not 0.5 <= args.baseline_seconds <= 10:
        parser.error("--users must be 1..10000 and --baseline-seconds 0.5..10")
    if not variants or not all(1 <= v.slots <= 32 for v in variants):
        parser.error("--slots: values 1..32")
    if not all(v.threads is None or 1 <= v.threads <= 64 for v in variants):
        parser.error("--threads: values 1..64 or `default`")

    configure_this_process()
    prepare_database()
    emails = create_accounts(args.users)
    runs: list[LoadResult] = []
    bare: list[HashRate] = []
    quiet: list[float] = []
    with tempfile.TemporaryDirectory(prefix="imangor-login-bench-") as tmp:
        for variant in variants:
            quiet.append(wait_for_quiet(timeout=args.quiet_wait))
            bare.append(bare_argon2(args.baseline_seconds))
            print(f"bare argon2-cffi: {bare[-1]}", flush=True)
            print(f"{variant.label}: {args.duration:.0f} s…", flush=True)
            run = load_run(variant, emails, args.clients, args.duration, Path(tmp))
            print(
                f"  {run.rate:.1f} logins/s, statuses {run.statuses}, "
                f"peak PSS {run.peak_pss / MIB:.1f} MiB",
                flush=True,
            )
            runs.append(run)
        quiet.append(wait_for_quiet(timeout=args.quiet_wait))
        bare.append(bare_argon2(args.baseline_seconds))
        print(f"bare argon2-cffi: {bare[-1]}", flush=True)
    text = report(runs, bare, args.clients, args.duration, args.users, quiet)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    raw = {
        "date": datetime.now(UTC).isoformat(),
        "load_average": os.getloadavg(),
        "bare": [asdict(b) for b in bare],
        "runs": [
            {
                **{k: v for k, v in asdict(r).items() if k != "latencies"},
                "logins_per_second": r.rate,
                "latency_p50": median(r.latencies) if r.latencies else None,
                "latency_p99": percentile(r.latencies, 99) if r.latencies else None,
            }
            for r in runs
        ],
    }
    args.output.with_suffix(".json").write_text(json.dumps(raw, indent=2) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
