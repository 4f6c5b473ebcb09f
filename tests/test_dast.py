"""The DAST job's program (terraform/modules/api/dast.sh) with the real schemathesis, at the
version of the job's image, against the live local stack: the arguments `release.py
dast-args` builds select exactly the planned operations, every flag is one schemathesis
takes, and the operations DAST may call on production pass its checks. A server that
answers 5xx, or serves a secured read without credentials, fails it (the mutation)."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.tools import release
from tests.infra.conftest import tool_venv

pytestmark = [pytest.mark.tools, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
DAST_SCRIPT = ROOT / "terraform" / "modules" / "api" / "dast.sh"


@pytest.fixture(scope="module")
def schemathesis() -> Path:
    return tool_venv("schemathesis")


def job_env() -> dict[str, str]:
    """The DAST job's environment, as modules/api sets it (smaller bounds: a test run)."""
    from tests.infra.test_security_scanning import dast_module

    return dict(dast_module()["env"], DAST_MAX_EXAMPLES="5", DAST_UNIT_SECONDS="120")


def run_job(schemathesis: Path, args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    sh = shutil.which("sh")
    if sh is None or shutil.which("timeout") is None:
        pytest.skip("sh or timeout missing")
    env = dict(os.environ, **job_env(), PATH=f"{schemathesis.parent}:{os.environ['PATH']}")
    return subprocess.run(
        [sh, "-c", DAST_SCRIPT.read_text(), "dast", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,  # hypothesis writes .hypothesis/ there
        check=False,
        timeout=600,
    )


def local_args(base: str, units: set[str], schema_base: str | None = None) -> list[str]:
    """dast-args with every unit's tagged URL pointing at `base` (all units are one server
    locally), limited to `units`."""

    def describe(name: str) -> dict[str, Any]:
        return {"metadata": {"name": name}, "status": {"traffic": [{"tag": "c-t", "url": base}]}}

    args = release.dast_args(
        release.load_inventory(), release.load_openapi(), "imangor-dev", "c-t", describe
    )
    plan = list(release.dast_operations(release.load_inventory(), release.load_openapi()))
    pairs = [args[1 + 2 * i : 3 + 2 * i] for i, unit in enumerate(plan) if unit in units]
    schema = f"{schema_base}/openapi.json" if schema_base else args[0]
    return [schema, *(item for pair in pairs for item in pair)]


def test_the_dast_program_passes_on_the_sign_in_calls_and_secured_reads(
    schemathesis: Path, live_server: str, tmp_path: Path
) -> None:
    result = run_job(schemathesis, local_args(live_server, {"auth", "users"}), tmp_path)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Selected: 5/" in result.stdout  # POST /auth/token, refresh, logout, reset, google
    assert "Selected: 4/" in result.stdout  # GET /api-keys/, /users/, /users/me, /users/{id}
    assert result.stdout.count("No issues found") == 2
    assert "DAST passed" in result.stdout


class _Broken(http.server.BaseHTTPRequestHandler):
    """/health answers 500; every other read answers 200 without asking for credentials."""

    def do_GET(self) -> None:
        broken = self.path.startswith("/health")
        body = json.dumps({"detail": "boom"} if broken else {"items": []}).encode()
        self.send_response(500 if broken else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def broken_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Broken)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_dast_program_fails_on_a_5xx_and_on_a_read_without_credentials(
    schemathesis: Path, live_server: str, broken_server: str, tmp_path: Path
) -> None:
    args = local_args(broken_server, {"health", "items"}, schema_base=live_server)
    result = run_job(schemathesis, args, tmp_path)
    assert result.returncode == 1
    assert "Server error" in result.stdout  # GET /health answered 500
    assert "API accepts" in result.stdout  # GET /items/ answered 200 to no credentials
    assert f"DAST failed on: {broken_server} {broken_server}" in result.stderr
