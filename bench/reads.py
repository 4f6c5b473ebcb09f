"""Authenticated reads (issue 14 item 1): `GET /users/me` and `GET /items/{id}` against the
floors a bare function sets and against the FastAPI full-stack template's read path.

    python bench/reads.py [--passes 2] [--seconds 10] [--warmup 3] [--label after]

Every target runs as its own server on 127.0.0.1 (ports 18100-18199) and gets the same load
from bench/load.py (wrk, 16 connections: 3 s of warm-up, then 10 s measured), one after the
other, for 2-3 passes. Targets: a bare hello; a bare function that verifies a JWT and reads
the caller's row with pg8000 (bench/baselines/pg8000_jwt.py) or through a SQLAlchemy session
(bench/baselines/sqlalchemy_jwt.py, the floor our endpoints are held to); our users and
items units; the template's read path (bench/peers/fastapi_template.py, `uv run --group
peer`) under uvicorn with 4 workers (its Dockerfile's `fastapi run --workers 4`) and with 1.
All but the peer run under functions-framework's gunicorn with THREADS=8 (DB_POOL_SIZE=8 and
a baseline pool of 8 for the database ones). Rate limits stay on (one Redis call per request)
with a ceiling this load never reaches.

Per target: req/s, p50, p99, errors, server CPU ms per request (user+sys of the server's
process tree over the measured 10 s, by psutil), PostgreSQL sessions opened while the server
ran (pg_stat_database.sessions), and ratios to the same pass's SQLAlchemy floor and template.
Requests rotate over USERS seeded accounts (one token and one owned item each) in the
`reads_bench` database.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: bench.* importable

from bench import load
from bench.common import (
    BASELINES,
    RESULTS,
    ROOT,
    bench_env,
    machine_lines,
    markdown_table,
    tree_cpu_seconds,
    wait_for_quiet,
)

DATABASE = "reads_bench"
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASE_URL = f"postgresql://postgres@127.0.0.1:5432/{DATABASE}"
REDIS_URL = "redis://127.0.0.1:6379/15"  # its own db: the other benches use 9 and 10
HOST = "127.0.0.1"
FIRST_PORT = 18100
USERS = 64
THREADS = 8
CONNECTIONS = 16
RESULT = RESULTS / "reads.md"
FLOOR = "bare JWT + SQLAlchemy read"


@dataclass(frozen=True)
class Target:
    name: str
    command: list[str]
    env: dict[str, str]
    requests: list[load.Request]
    group: str  # "users/me", "items/{id}" or "" (a baseline): which peer row it compares to


@dataclass
class Row:
    target: str
    group: str
    passes: list[load.Measured] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    sessions: list[int] = field(default_factory=list)


# -- the database ----------------------------------------------------------------------------


def _connect(database: str) -> Any:
    import pg8000.dbapi

    return pg8000.dbapi.connect(user="postgres", host=HOST, port=5432, database=database)


def prepare() -> list[tuple[str, str]]:
    """Create and migrate reads_bench, seed USERS accounts with one item each; (token, item id)
    per account, the tokens signed as the servers expect and valid for two hours."""
    admin = _connect("postgres")
    admin.autocommit = True
    cursor = admin.cursor()
    cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
    if cursor.fetchone() is None:
        cursor.execute(f'CREATE DATABASE "{DATABASE}"')
    admin.close()
    subprocess.run(
        [sys.executable, "-m", "imangor.migrate"],
        cwd=ROOT,
        env=server_env(),
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=120,
    )
    os.environ.update(server_env(ACCESS_TOKEN_MINUTES="120"))  # noqa: S106 - a lifetime
    from imangor.auth.tokens import issue_access_token
    from imangor.config import get_settings

    get_settings.cache_clear()
    connection = _connect(DATABASE)
    cursor = connection.cursor()
    cursor.execute("TRUNCATE users CASCADE")
    pairs = []
    for n in range(USERS):
        user_id, item_id = uuid.uuid4(), uuid.uuid4()
        cursor.execute(
            "INSERT INTO users (id, email, full_name, hashed_password) VALUES (%s, %s, %s, %s)",
            (user_id, f"reader{n}@bench.example", f"Reader {n}", "not-a-hash"),
        )
        cursor.execute(
            "INSERT INTO items (id, owner_id, title, description) VALUES (%s, %s, %s, %s)",
            (item_id, user_id, f"item {n}", "an item to read"),
        )
        pairs.append((issue_access_token(user_id, "customer")[0], str(item_id)))
    connection.commit()
    connection.close()
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    return pairs


def sessions_opened() -> int:
    admin = _connect("postgres")
    cursor = admin.cursor()
    cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = %s", (DATABASE,))
    value = int(cursor.fetchone()[0])
    admin.close()
    return value


# -- the servers -----------------------------------------------------------------------------


def server_env(**extra: str) -> dict[str, str]:
    env = bench_env(
        DATABASE_URL=DATABASE_URL,
        REDIS_URL=REDIS_URL,
        RATE_LIMIT_DEFAULT="100000000/60",  # on, one Redis call per request, never refusing
        PYTHONPATH=str(ROOT),
    )
    for key in [k for k in env if k.startswith(("DB_", "LOG_"))]:
        env.pop(key)  # the defaults a deployment runs with, but for the pool size below
    env.update(extra)
    return dict(env)


def functions_framework(source: Path, target: str, port: int) -> list[str]:
    return [
        str(Path(sys.executable).parent / "functions-framework"),
        f"--source={source}",
        f"--target={target}",
        f"--port={port}",
        f"--host={HOST}",
    ]


def unit(name: str, code: Path) -> Path:
    return code / "functions" / name / "main.py"


def uv() -> list[str]:
    found = shutil.which("uv")
    return [found] if found else ["python3", "-m", "uv"]


def peer(port: int, workers: int) -> list[str]:
    """The template's server: `fastapi run --workers N` is uvicorn with these options."""
    return [
        *uv(),
        "run",
        "--frozen",
        "--group",
        "peer",
        "python",
        "-m",
        "uvicorn",
        "bench.peers.fastapi_template:app",
        f"--host={HOST}",
        f"--port={port}",
        f"--workers={workers}",
    ]


def targets(pairs: list[tuple[str, str]], code: Path = ROOT) -> list[Target]:
    """Every target; our units run the code of the checkout `code` (by default this one)."""

    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    me: list[load.Request] = [("GET", "/users/me", None, bearer(t)) for t, _ in pairs]
    root: list[load.Request] = [("GET", "/", None, bearer(t)) for t, _ in pairs]
    items: list[load.Request] = [("GET", f"/items/{i}", None, bearer(t)) for t, i in pairs]
    api = "/api/v1"
    peer_me: list[load.Request] = [(m, api + p, b, h) for m, p, b, h in me]
    peer_items: list[load.Request] = [(m, api + p, b, h) for m, p, b, h in items]
    ff = server_env(THREADS=str(THREADS))
    ours = {**ff, "DB_POOL_SIZE": str(THREADS), "PYTHONPATH": f"{code / 'shared'}:{ROOT}"}
    port = iter(range(FIRST_PORT, FIRST_PORT + 100))
    hello: list[load.Request] = [("GET", "/", None, {})] * len(pairs)
    ff_ = functions_framework
    return [
        Target("bare hello", ff_(BASELINES / "hello.py", "hello", next(port)), ff, hello, ""),
        Target(
            "bare JWT + pg8000 read",
            ff_(BASELINES / "pg8000_jwt.py", "pg8000_jwt", next(port)),
            ff,
            root,
            "",
        ),
        Target(
            FLOOR,
            ff_(BASELINES / "sqlalchemy_jwt.py", "sqlalchemy_jwt", next(port)),
            {**ff, "POOL_SIZE": str(THREADS)},
            root,
            "",
        ),
        Target(
            "ours GET /users/me",
            ff_(unit("users", code), "users", next(port)),
            ours,
            me,
            "users/me",
        ),
        Target(
            "ours GET /items/{id}",
            ff_(unit("items", code), "items", next(port)),
            ours,
            items,
            "items/{id}",
        ),
        *(
            Target(f"template GET /{what}, {label}", peer(next(port), n), ff, requests, what)
            for n, label in ((4, "4 workers"), (1, "1 worker"))
            for what, requests in (("users/me", peer_me), ("items/{id}", peer_items))
        ),
    ]


def port_of(target: Target) -> int:
    flag = next(a for a in target.command if a.startswith("--port"))
    return int(flag.partition("=")[2])


def ready(port: int, request: load.Request, timeout: float = 90.0) -> None:
    """Wait until the server answers the target's request with 200 (a 4xx means the bench
    is wrong: it stops here rather than measure errors)."""
    method, path, _, headers = request
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=5)
            conn.request(method, path, headers=headers)
            response = conn.getresponse()
            body = response.read()
            conn.close()
        except OSError:
            time.sleep(0.2)
            continue
        if response.status != 200:
            raise RuntimeError(f"{method} {path} on {port}: {response.status} {body[:300]!r}")
        return
    raise RuntimeError(f"no server on port {port} after {timeout:.0f} s")


@contextmanager
def serving(target: Target) -> Iterator[int]:
    """Start the target's server in its own process group; yield the pid whose tree serves."""
    process = subprocess.Popen(
        target.command,
        cwd=ROOT,
        env=target.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        ready(port_of(target), target.requests[0])
        yield process.pid
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # this server's own process group only
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def measure(target: Target, row: Row, client: str, seconds: float, warmup: float) -> None:
    before_sessions = sessions_opened()
    with serving(target) as pid:
        port = port_of(target)
        load.run(client, port, target.requests, connections=CONNECTIONS, seconds=warmup)
        cpu = tree_cpu_seconds(pid)
        result = load.run(client, port, target.requests, connections=CONNECTIONS, seconds=seconds)
        cpu = tree_cpu_seconds(pid) - cpu
    time.sleep(0.5)  # the last sessions' statistics reach pg_stat_database
    row.passes.append(result)
    row.cpu_ms.append(1000 * cpu / max(1, result.requests))
    row.sessions.append(sessions_opened() - before_sessions)
    print(
        f"  {target.name:<40} {result.rps:7.0f} req/s  p50 {result.p50_ms:5.1f} ms  "
        f"p99 {result.p99_ms:6.1f} ms  errors {result.errors}  cpu {row.cpu_ms[-1]:.2f} ms/req  "
        f"sessions {row.sessions[-1]}",
        flush=True,
    )


# -- the report ------------------------------------------------------------------------------


def report(rows: list[Row], label: str, client: str, quiet: list[float]) -> list[str]:
    """A markdown section: medians over the passes, ratios per pass then their median."""
    by_name = {r.target: r for r in rows}
    floor = by_name[FLOOR]

    def per_pass(row: Row, other: Row, value: Any) -> float:
        return float(
            statistics.median(value(row, i) / value(other, i) for i in range(len(row.passes)))
        )

    def rps(r: Row, i: int) -> float:
        return float(r.passes[i].rps)

    def cpu(r: Row, i: int) -> float:
        return float(r.cpu_ms[i])

    def peer_row(row: Row, workers: int) -> Row | None:
        suffix = f"{workers} worker" + ("s" if workers > 1 else "")
        return next(
            (r for r in rows if r.group == row.group and r.target.startswith("template")
             and r.target.endswith(suffix)),
            None,
        )  # fmt: skip

    header = [
        "target",
        "req/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "CPU ms/req",
        "PG sessions",
        "req/s ÷ floor",
        "CPU ÷ template 1w",
        "CPU ÷ template 4w",
    ]
    table = []
    for row in rows:
        cells = [
            row.target,
            f"{statistics.median(m.rps for m in row.passes):,.0f}",
            f"{statistics.median(m.p50_ms for m in row.passes):.1f}",
            f"{statistics.median(m.p99_ms for m in row.passes):.1f}",
            str(sum(m.errors for m in row.passes)),
            f"{statistics.median(row.cpu_ms):.2f}",
            "/".join(str(s) for s in row.sessions),
            f"{per_pass(row, floor, rps):.2f}x",
        ]
        for workers in (1, 4):
            other = peer_row(row, workers) if row.group else None
            cells.append(f"{per_pass(row, other, cpu):.2f}x" if other else "")
        table.append(cells)
    passes = len(rows[0].passes)
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return [
        f"### {label} ({now}, commit {commit})",
        "",
        f"{client}, {CONNECTIONS} connections, {passes} passes (medians; ratios are the median"
        " of each pass's ratio to the same pass's row). Machine busy before each pass (cores): "
        + ", ".join(f"{q:.2f}" for q in quiet)
        + ".",
        "",
        *machine_lines(),
        "",
        *markdown_table(header, table),
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--client", choices=load.CLIENTS, default="auto")
    parser.add_argument("--label", default="current code")
    parser.add_argument("--only", default="", help="comma-separated substrings of target names")
    parser.add_argument(
        "--code",
        type=Path,
        default=ROOT,
        help="run our units from this copy of shared/ and functions/ (e.g. an earlier commit's)",
    )
    parser.add_argument("--no-write", action="store_true", help="print, do not update reads.md")
    args = parser.parse_args(argv)
    client = load.choose_client(args.client)
    pairs = prepare()
    chosen = targets(pairs, args.code.resolve())
    if args.only:
        wanted = args.only.split(",")
        chosen = [t for t in chosen if t.name == FLOOR or any(w in t.name for w in wanted)]
    rows = [Row(t.name, t.group) for t in chosen]
    quiet = []
    for n in range(args.passes):
        quiet.append(wait_for_quiet())
        print(f"pass {n + 1}/{args.passes} (machine busy: {quiet[-1]:.2f} cores)", flush=True)
        for target, row in zip(chosen, rows, strict=True):
            measure(target, row, client, args.seconds, args.warmup)
    section = report(rows, args.label, client, quiet)
    print("\n".join(section))
    if not args.no_write:
        append(section)
    return 0


def append(section: list[str]) -> None:
    """Add this run to reads.md under the measurements heading, newest first."""
    marker = "## Measurements (newest first)\n"
    text = RESULT.read_text() if RESULT.exists() else ""
    if marker not in text:
        text = text.rstrip() + ("\n\n" if text else "") + marker
    head, _, tail = text.partition(marker)
    RESULT.write_text(head + marker + "\n" + "\n".join(section) + tail)


if __name__ == "__main__":
    raise SystemExit(main())
