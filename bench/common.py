"""Shared helpers of the benchmarks: the bench database, starting a unit as in production,
plain HTTP calls, memory of a process tree, and the machine header of the result files.

Everything talks to 127.0.0.1 only, and every loop here is bounded by a deadline.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
BASELINES = ROOT / "bench" / "baselines"
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
BENCH_DB = "imangor_bench_startup"  # its own: another bench fills imangor_bench
DATABASE_URL = f"postgresql://postgres@127.0.0.1:5432/{BENCH_DB}"
REDIS_URL = "redis://127.0.0.1:6379/10"  # its own: db 9 is used by another bench
SECRET_KEY = "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"  # noqa: S105
MIB = 1024 * 1024
# Settings a developer's shell may carry that would change what is measured.
_DROPPED = (
    "INSTANCE_CONNECTION_NAME",
    "FIRST_ADMIN_EMAIL",
    "FIRST_ADMIN_PASSWORD",
    "ARGON2_MEMORY_KIB",
    "ARGON2_TIME_COST",
    "ARGON2_PARALLELISM",
    "MAX_CONCURRENT_HASHES",
    "WORKERS",
    "THREADS",
    "STORAGE_EMULATOR_HOST",
    "DEBUG",
)
_BYTECODE_VARS = ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")
# Units run with compiled bytecode, as from an image whose packages were installed with pip
# (which compiles them). It is kept out of the work tree and the venv, in a cache of our own.
PYCACHE = Path(tempfile.gettempdir()) / "imangor-bench-pycache"


def bench_env(*, bytecode: bool = True, **extra: str) -> dict[str, str]:
    """The environment a unit under test (and this process) runs with. With `bytecode`
    False the caller's PYTHONDONTWRITEBYTECODE / PYTHONPYCACHEPREFIX are kept as they are."""
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED}
    if bytecode:
        for key in _BYTECODE_VARS:
            env.pop(key, None)
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    env.update(
        ENVIRONMENT="test",
        DATABASE_URL=DATABASE_URL,
        REDIS_URL=REDIS_URL,
        SECRET_KEY=SECRET_KEY,
        # Limits are on (each request still pays its Redis round trip) but never reached.
        RATE_LIMIT_DEFAULT="1000000/60",
        LOGIN_LIMIT_PER_ACCOUNT="1000000/60",
        LOGIN_LIMIT_PER_IP="1000000/60",
    )
    env.update(extra)
    return env


def configure_this_process(**extra: str) -> None:
    """Point this process's imangor settings at the bench services."""
    for key in _DROPPED:
        os.environ.pop(key, None)
    os.environ.update(bench_env(bytecode=False, **extra))
    from imangor.config import get_settings

    get_settings.cache_clear()


def prepare_database() -> None:
    """Create the bench database if missing, migrate it, empty every table and the Redis db."""
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
        env=bench_env(),
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=120,
    )
    from imangor.db import get_engine
    from imangor.models import all_metadata

    tables = ", ".join(f'"{t.name}"' for t in all_metadata().sorted_tables)
    with get_engine().begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    flush_redis()


def flush_redis() -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    client.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def functions_framework_command(source: Path, target: str, port: int) -> list[str]:
    """The production command line (gunicorn gthread; never `--debug`, Flask's server)."""
    executable = Path(sys.executable).parent / "functions-framework"
    return [
        str(executable),
        "--source",
        str(source),
        "--target",
        target,
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
    ]


def unit_source(unit: str) -> Path:
    return ROOT / "functions" / unit / "main.py"


def start(
    command: Sequence[str], env: Mapping[str, str], log: IO[bytes]
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        list(command), cwd=ROOT, env=dict(env), stdout=log, stderr=subprocess.STDOUT
    )


def stop(proc: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """Stop a started unit: gunicorn's quick shutdown (SIGINT), then SIGKILL by pid."""
    import psutil

    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
    for child in children:  # the worker gunicorn forked; normally gone with its master
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()


@dataclass(frozen=True)
class Memory:
    rss: int  # bytes, summed over the tree (counts shared pages once per process)
    pss: int  # bytes, summed over the tree (shared pages split between sharers)
    processes: int


def tree_memory(pid: int) -> Memory:
    """RSS and PSS of a process and all its descendants, from /proc/<pid>/smaps_rollup."""
    import psutil

    try:
        root = psutil.Process(pid)
        pids = [pid, *(p.pid for p in root.children(recursive=True))]
    except psutil.NoSuchProcess:
        return Memory(0, 0, 0)
    rss = pss = count = 0
    for each in pids:
        try:
            text = Path(f"/proc/{each}/smaps_rollup").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        count += 1
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key == "Rss":
                rss += int(value.split()[0]) * 1024
            elif key == "Pss":
                pss += int(value.split()[0]) * 1024
    return Memory(rss, pss, count)


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by a process and its live descendants."""
    import psutil

    total = 0.0
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


def machine_busy_cores(window: float = 0.25) -> float:
    """Cores the whole machine kept busy over the next `window` seconds."""
    import psutil

    def busy() -> float:
        t = psutil.cpu_times()
        return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))

    before, started = busy(), time.perf_counter()
    time.sleep(window)
    return max(0.0, (busy() - before) / (time.perf_counter() - started))


def wait_for_quiet(max_busy: float = 0.35, timeout: float = 20.0) -> float:
    """Wait (at most `timeout` s) until other work on this shared machine keeps fewer than
    `max_busy` cores busy; return the last reading so results can say how quiet it was."""
    deadline = time.monotonic() + timeout
    reading = machine_busy_cores()
    while reading > max_busy and time.monotonic() < deadline:
        reading = machine_busy_cores()
    return reading


@dataclass(frozen=True)
class Call:
    """One HTTP request to send to a unit."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes | None = None

    @classmethod
    def json(cls, method: str, path: str, payload: Any, headers: dict[str, str]) -> Call:
        return cls(
            method,
            path,
            {**headers, "Content-Type": "application/json"},
            json.dumps(payload).encode(),
        )


def send(
    port: int,
    call: Call,
    timeout: float = 30.0,
    connection: http.client.HTTPConnection | None = None,
) -> tuple[int, bytes]:
    """Send one request (on `connection` if given, kept alive) and read the whole answer."""
    own = connection is None
    conn = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(call.method, call.path, body=call.body, headers=call.headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        if own:
            conn.close()


@dataclass(frozen=True)
class FirstResponse:
    listening: float  # seconds from exec until a connection was accepted
    answered: float  # seconds from exec until the whole first answer was read
    status: int
    body: bytes
    attempts: int


def poll_first_response(
    proc: subprocess.Popen[bytes],
    port: int,
    call: Call,
    started: float,
    *,
    interval: float = 0.005,
    deadline_seconds: float = 60.0,
) -> FirstResponse:
    """Connect every `interval` until the unit accepts, then send `call` and time its answer."""
    deadline = started + deadline_seconds
    attempts = 0
    while True:
        now = time.perf_counter()
        if now > deadline:
            raise TimeoutError(f"no answer on port {port} within {deadline_seconds} s")
        if proc.poll() is not None:
            raise RuntimeError(f"the unit exited with {proc.returncode} before answering")
        attempts += 1
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=deadline - now)
        try:
            conn.connect()
        except (ConnectionRefusedError, ConnectionResetError):
            conn.close()
            time.sleep(interval)
            continue
        listening = time.perf_counter() - started
        try:
            status, body = send(port, call, connection=conn)
        except (ConnectionResetError, http.client.RemoteDisconnected):
            conn.close()
            time.sleep(interval)
            continue
        finally:
            conn.close()
        return FirstResponse(listening, time.perf_counter() - started, status, body, attempts)


@contextlib.contextmanager
def running(
    command: Sequence[str], env: Mapping[str, str], log_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """A started unit, stopped on exit; its output goes to `log_path`."""
    with log_path.open("wb") as log:
        proc = start(command, env, log)
        try:
            yield proc
        finally:
            stop(proc)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sample."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def machine_lines() -> list[str]:
    """Date, cores, CPU, Python and load: the first lines of every result file."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.partition(":")[2].strip()
                break
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    nproc = subprocess.run(["nproc"], capture_output=True, text=True, check=False).stdout.strip()
    return [
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: `nproc` = {nproc or os.cpu_count()}, {cpu}, "
        f"{_memory_total_gib():.0f} GiB RAM, {platform.system()} {platform.release()}",
        f"- python: {platform.python_version()} ({platform.python_implementation()})",
        f"- load average at start of this report (1/5/15 min): {load}",
    ]


def _memory_total_gib() -> float:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / (1024 * 1024)
    return float("nan")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "?"
