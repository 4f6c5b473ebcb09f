"""`make dev` from nothing (embedded PostgreSQL, Redis and storage), and a unit run alone
exactly as in production. These start real processes, so they take a few seconds."""

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

import psutil
import pytest
import requests

from tests.conftest import ROOT, _free_port

pytestmark = pytest.mark.slow


def _wait_http(url: str, timeout: float = 60.0) -> requests.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return requests.get(url, timeout=2)
        except requests.ConnectionError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout} s")


def _bare_env(**extra: str) -> dict[str, str]:
    """The environment of a fresh shell: none of the test session's settings."""
    from imangor.config import Settings

    env = {
        k: v
        for k, v in os.environ.items()
        if k.lower() not in Settings.model_fields and not k.startswith("STORAGE_")
    }
    return {**env, **extra}


@pytest.fixture
def local_dir(server_dir: Path) -> Path:
    return server_dir / "local"


@pytest.fixture
def dev_server(local_dir: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = _free_port()
    env = _bare_env(
        PORT=str(port),
        IMANGOR_LOCAL_DIR=str(local_dir),
        FIRST_ADMIN_EMAIL="admin@example.com",
        FIRST_ADMIN_PASSWORD="a long admin passphrase",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "infra.local.dev"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield f"http://127.0.0.1:{port}", process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def test_make_dev_starts_everything_from_nothing_and_stops_cleanly(
    dev_server: tuple[str, subprocess.Popen[str]], local_dir: Path
) -> None:
    base, process = dev_server
    assert _wait_http(f"{base}/health").status_code == 200
    ready = requests.get(f"{base}/ready", timeout=5)
    assert ready.json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}
    assert "swagger-ui" in requests.get(f"{base}/docs", timeout=5).text
    assert requests.get(f"{base}/openapi.json", timeout=5).json()["info"]["title"] == (
        "Imangor API"
    )
    token = requests.post(
        f"{base}/auth/token",
        timeout=10,
        data={"username": "admin@example.com", "password": "a long admin passphrase"},
    )
    assert token.status_code == 200  # the first admin was created from the environment
    _an_order_is_confirmed_by_its_task(base, token.json()["access_token"])
    _make_cron_runs_a_job_through_it(local_dir)
    _make_seed_fills_its_database(base, local_dir)
    children = psutil.Process(process.pid).children(recursive=True)
    assert any("postgres" in c.name() for c in children)
    process.send_signal(signal.SIGINT)
    assert process.wait(30) == 0
    output = process.stdout.read() if process.stdout else ""
    assert f"Imangor API ready on {base}" in output
    assert "POST /cron/cleanup 200" in output  # make cron went through the cron unit
    # Readable local output: text lines, the banner, no key-length warnings, no plugin noise.
    assert "admin:    admin@example.com (FIRST_ADMIN_EMAIL" in output
    assert f"token:    curl -X POST {base}/auth/token" in output
    assert "database: postgresql://postgres@127.0.0.1:" in output
    assert '"severity"' not in output  # no JSON lines locally (LOG_FORMAT=text)
    assert re.search(r"^\d\d:\d\d:\d\d INFO  imangor.request  POST /auth/token 200", output, re.M)
    assert "InsecureKeyLengthWarning" not in output
    assert "setup plugin" not in output
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert not (local_dir / "dev.json").exists()
    stopped = _local_command(local_dir, "infra.local.cron", "cleanup")
    assert (stopped.returncode, stopped.stdout) == (2, "")
    assert stopped.stderr == (
        "error: `make dev` is not running: start it first (in another terminal)\n"
    )
    # make dev stopped: make seed starts its embedded database itself, seeds it, stops it.
    alone = _local_command(local_dir, "infra.local.seed", "--products", "5", "--seed", "7")
    assert alone.returncode == 0, alone.stderr
    assert "seeding make dev's embedded database (.local/postgres)" in alone.stderr
    assert "seeded 5 products" in alone.stderr


def test_a_local_command_names_a_bad_setting_in_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "infra.local.seed", "--products", "1"],
        cwd=ROOT,
        env=_bare_env(DATABASE_URL="mysql://root@127.0.0.1/db", IMANGOR_LOCAL_DIR=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: ")
    assert "database_url" in result.stderr.lower() and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def _local_command(local_dir: Path, module: str, *args: str) -> subprocess.CompletedProcess[str]:
    """A local command (make cron, make seed) as a developer's shell runs it."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=_bare_env(IMANGOR_LOCAL_DIR=str(local_dir)),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _make_cron_runs_a_job_through_it(local_dir: Path) -> None:
    done = _local_command(local_dir, "infra.local.cron", "cleanup", "--at", "2026-12-04T17:17Z")
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed["status"] == 200
    assert printed["outcome"]["ran"] is True
    assert printed["outcome"]["scheduled_for"] == "2026-12-04T17:17:00Z"
    again = json.loads(
        _local_command(local_dir, "infra.local.cron", "cleanup", "--at", "2026-12-04T17:17Z").stdout
    )
    assert again["outcome"]["ran"] is False  # once per schedule time, as Scheduler retries
    unknown = _local_command(local_dir, "infra.local.cron", "nightly")
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("error: no scheduled job 'nightly'; jobs: cleanup, ")


def _make_seed_fills_its_database(base: str, local_dir: Path) -> None:
    """With no DATABASE_URL, make seed finds the running make dev's embedded database, which
    keeps its data for real (fsync and full-page writes on: tests alone turn them off)."""
    from sqlalchemy import create_engine, text

    from imangor.db import sqlalchemy_url

    database_url = json.loads((local_dir / "dev.json").read_text())["database_url"]
    engine = create_engine(sqlalchemy_url(database_url))
    with engine.connect() as connection:
        durable = [
            connection.scalar(text(f"SHOW {name}")) for name in ("fsync", "full_page_writes")
        ]
    engine.dispose()
    assert durable == ["on", "on"]
    seeded = _local_command(local_dir, "infra.local.seed", "--products", "25", "--quiet")
    assert seeded.returncode == 0, seeded.stderr
    assert "seeding the database of the running make dev" in seeded.stderr
    page = requests.get(f"{base}/products/", params={"limit": 100}, timeout=10).json()
    assert len(page["items"]) >= 25


def _an_order_is_confirmed_by_its_task(base: str, admin_token: str) -> None:
    """Through the API only: a product, a customer, an order — confirmed with no human step
    by the process_order task, delivered by the dev server's local Cloud Tasks."""
    admin = {"Authorization": f"Bearer {admin_token}"}
    product = requests.post(
        f"{base}/products/",
        headers=admin,
        timeout=10,
        json={
            "name": "Walnut desk",
            "price": "120.00",
            "stock": 3,
            "attributes": {"category": "furniture", "description": "Solid walnut"},
        },
    ).json()
    requests.post(
        f"{base}/auth/register",
        timeout=10,
        json={"email": "buyer@example.com", "password": "a long buyer passphrase"},
    )
    login = requests.post(
        f"{base}/auth/token",
        timeout=10,
        data={"username": "buyer@example.com", "password": "a long buyer passphrase"},
    ).json()
    buyer = {"Authorization": f"Bearer {login['access_token']}"}
    order = requests.post(
        f"{base}/orders/",
        headers=buyer,
        timeout=10,
        json={"product_id": product["id"], "quantity": 1},
    ).json()
    assert order["status"] == "pending"
    deadline = time.monotonic() + 30
    status = order["status"]
    while status != "confirmed" and time.monotonic() < deadline:
        time.sleep(0.2)
        status = requests.get(f"{base}/orders/{order['id']}", headers=buyer, timeout=10).json()[
            "status"
        ]
    assert status == "confirmed"


def test_a_unit_runs_alone_as_in_production(services: dict[str, str]) -> None:
    port = _free_port()
    env = _bare_env(DATABASE_URL=services["DATABASE_URL"], REDIS_URL=services["REDIS_URL"])
    command = [
        str(Path(sys.executable).parent / "functions-framework"),
        "--source",
        "functions/health/main.py",
        "--target",
        "health",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        assert _wait_http(f"http://127.0.0.1:{port}/health").json() == {"status": "ok"}
        assert requests.get(f"http://127.0.0.1:{port}/ready", timeout=5).status_code == 200
        missing = requests.get(f"http://127.0.0.1:{port}/items/", timeout=5)
        assert missing.status_code == 404  # another unit's path: not served here
        assert missing.headers["Content-Type"] == "application/problem+json"
    finally:
        process.terminate()
        process.wait(10)


def _import_unit(unit: str, **env: str) -> subprocess.CompletedProcess[str]:
    script = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('main', 'functions/{unit}/main.py')\n"
        "module = importlib.util.module_from_spec(spec); sys.modules['main'] = module\n"
        "spec.loader.exec_module(module)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=_bare_env(**env),
        check=False,
    )


def test_production_units_refuse_to_start_without_what_they_need() -> None:
    refused = _import_unit("auth", ENVIRONMENT="production")
    assert refused.returncode != 0
    assert "SECRET_KEY is missing or a placeholder" in refused.stderr
    assert "DATABASE_URL" in refused.stderr
    # The docs unit needs nothing, so it starts with nothing (least privilege).
    assert _import_unit("docs", ENVIRONMENT="production").returncode == 0


def test_a_unit_run_alone_refuses_to_start_without_its_database_and_redis() -> None:
    """`functions-framework --source functions/products/main.py --target products` with
    nothing set stops at once with one line naming the settings (it answered 500 before)."""
    command = [
        str(Path(sys.executable).parent / "functions-framework"),
        "--source",
        "functions/products/main.py",
        "--target",
        "products",
        "--host",
        "127.0.0.1",
        "--port",
        str(_free_port()),
    ]
    refused = subprocess.run(
        command, cwd=ROOT, env=_bare_env(), capture_output=True, text=True, timeout=60, check=False
    )
    assert refused.returncode != 0
    assert "Traceback" not in refused.stderr, refused.stderr
    assert refused.stderr.strip().splitlines()[-1] == (
        "products unit: configuration incomplete: "
        "set DATABASE_URL or INSTANCE_CONNECTION_NAME; set REDIS_URL"
    )
    docs = subprocess.Popen(
        [*command[:2], "functions/docs/main.py", "--target", "docs", *command[5:]],
        cwd=ROOT,
        env=_bare_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:  # a unit that needs nothing starts with nothing
        assert _wait_http(f"http://127.0.0.1:{command[-1]}/openapi.json").status_code == 200
    finally:
        docs.terminate()
        docs.wait(10)
