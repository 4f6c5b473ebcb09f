"""Request bodies are refused before they are read, and nothing reads a body further than
its endpoint takes: in process, over real HTTP against the development server, and under
gunicorn as production runs a unit (peak memory with four concurrent 32 MiB bodies)."""

from __future__ import annotations

import contextlib
import io
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import EnvironBuilder

from tests.conftest import ROOT, _free_port

MIB = 1024 * 1024


class Tripwire(io.RawIOBase):
    """A request body of `size` bytes (endless if None) that counts what is read of it."""

    def __init__(self, size: int | None, *, stop_after: int | None = None) -> None:
        self.size, self.stop_after, self.taken = size, stop_after, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = len(buffer)
        if self.size is not None:
            left = min(left, self.size - self.taken)
        if self.stop_after is not None:
            left = min(left, self.stop_after - self.taken)  # the client went away
        left = max(left, 0)
        buffer[:left] = b"{" * left
        self.taken += left
        return left


def call(app: Any, method: str, path: str, body: Tripwire, **environ: Any) -> Any:
    from werkzeug.test import run_wsgi_app
    from werkzeug.wrappers import Response

    env = EnvironBuilder(path=path, method=method).get_environ()
    env.pop("CONTENT_LENGTH", None)
    env.update(environ, **{"wsgi.input": body})
    chunks, status, headers = run_wsgi_app(app, env, buffered=True)
    return Response(b"".join(chunks), status=status, headers=headers)


def problem_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = response.get_json(force=True)
    assert body["status"] == status
    return body


def test_a_declared_length_over_the_limit_is_refused_unread(app: Any) -> None:
    for method, path in (("GET", "/health"), ("POST", "/auth/token"), ("POST", "/nowhere")):
        body = Tripwire(32 * MIB)
        response = call(app, method, path, body, CONTENT_LENGTH=str(32 * MIB))
        assert "declares 33554432" in problem_of(response, 413)["detail"], path
        assert body.taken == 0, path  # not even functions-framework's after_request read it


def test_a_body_the_endpoint_does_not_take_is_never_read(app: Any) -> None:
    body = Tripwire(1000)
    response = call(app, "GET", "/health", body, CONTENT_LENGTH="1000")
    assert response.status_code == 200
    assert body.taken == 0
    chunked = Tripwire(64 * MIB)
    response = call(app, "GET", "/health", chunked, HTTP_TRANSFER_ENCODING="chunked")
    assert response.status_code == 200
    assert chunked.taken == 0


def test_a_chunked_body_stops_at_the_limit(app: Any) -> None:
    from imangor.config import get_settings

    limit = get_settings().max_body_bytes
    body = Tripwire(64 * MIB)
    response = call(
        app,
        "POST",
        "/auth/register",
        body,
        CONTENT_TYPE="application/json",
        HTTP_TRANSFER_ENCODING="chunked",
    )
    problem_of(response, 413)
    assert body.taken == limit + 1  # one byte past the limit says enough


def test_an_aborted_upload_is_one_info_line(app: Any, caplog: pytest.LogCaptureFixture) -> None:
    body = Tripwire(5000, stop_after=100)
    with caplog.at_level(logging.DEBUG):
        response = call(
            app,
            "POST",
            "/auth/register",
            body,
            CONTENT_LENGTH="5000",
            CONTENT_TYPE="application/json",
        )
    assert problem_of(response, 400)["type"].endswith("/incomplete-body")
    lines = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert [(r.name, r.levelname, r.getMessage()) for r in lines] == [
        ("imangor.request", "INFO", "POST /auth/register 400")
    ]
    assert not any(r.exc_info for r in caplog.records)


# -- over real HTTP: the development server (make dev) --------------------------------------


def _exchange(base: str, head: bytes, body: bytes = b"", *, wait: float = 3.0) -> bytes:
    """Send a request's head (and `body`, right after any `100 Continue`), read until the
    server closes the connection; what it sent."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=wait) as sock:
        sock.sendall(head)
        received = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            received += chunk
            if body and received.startswith(b"HTTP/1.1 100"):
                sock.sendall(body)
                body = b""
        return received


def test_the_dev_server_refuses_a_huge_declared_body_at_once(live_server: str) -> None:
    head = (
        b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n"
        b"Expect: 100-continue\r\n\r\n"
    )
    started = time.monotonic()
    answer = _exchange(live_server, head)
    assert time.monotonic() - started < 2  # answered and closed without waiting for a body
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]  # no "100 Continue" first
    assert b"Connection: close" in answer
    assert b"application/problem+json" in answer


def test_the_dev_server_sends_100_continue_when_the_body_is_wanted(live_server: str) -> None:
    form = b"username=nobody%40example.com&password=a+wrong+password"
    head = (
        b"POST /auth/token HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: " + str(len(form)).encode() + b"\r\n\r\n"
    )
    answer = _exchange(live_server, head, form)
    assert answer.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 401 "), answer[:200]


def test_an_upload_aborted_over_http_is_one_info_line(
    live_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    _abort_upload(live_server)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not _lines(caplog, "POST /auth/register"):
        time.sleep(0.05)
    assert [(r.levelname, r.getMessage()) for r in _lines(caplog, "/auth/register")] == [
        ("INFO", "POST /auth/register 400")
    ]
    assert not any(r.exc_info for r in caplog.records)


def _lines(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    # werkzeug's own access line is make dev's to silence (it does: WARNING and up only)
    return [r for r in caplog.records if text in r.getMessage() and r.name != "werkzeug"]


def _abort_upload(base: str) -> None:
    """Declare 5000 bytes of JSON, send 100, hang up."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(
            b"POST /auth/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 5000\r\n\r\n" + b"{" * 100
        )
        time.sleep(0.2)


# -- under gunicorn, as production runs a unit ----------------------------------------------


def _pss(pid: int) -> int:
    import psutil

    process = psutil.Process(pid)
    total = 0
    for member in (process, *process.children(recursive=True)):
        with contextlib.suppress(psutil.Error):
            total += member.memory_full_info().pss
    return total


@contextlib.contextmanager
def _serve(
    unit: str, services: dict[str, str], output: Any = subprocess.DEVNULL
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A unit as Cloud Run runs it: functions-framework (gunicorn), 4 threads."""
    from tests.test_local_stack import _bare_env, _wait_http

    port = _free_port()
    env = _bare_env(
        DATABASE_URL=services["DATABASE_URL"], REDIS_URL=services["REDIS_URL"], THREADS="4"
    )
    command = [
        str(Path(sys.executable).parent / "functions-framework"),
        *("--source", f"functions/{unit}/main.py", "--target", unit),
        *("--host", "127.0.0.1", "--port", str(port)),
    ]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=output)
    try:
        base = f"http://127.0.0.1:{port}"
        assert _wait_http(f"{base}/no-such-path").status_code == 404
        yield base, process
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def health_unit(services: dict[str, str]) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    with _serve("health", services) as served:
        yield served


@pytest.mark.slow
def test_an_upload_aborted_under_gunicorn_is_one_info_line(
    services: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "auth.log"
    with log.open("wb") as output, _serve("auth", services, output) as (base, _):
        _abort_upload(base)
        time.sleep(1.0)
    text = log.read_text()
    lines = [line for line in text.splitlines() if "/auth/register" in line]
    assert len(lines) == 1, text
    assert '"severity": "INFO"' in lines[0] and "POST /auth/register 400" in lines[0]
    assert "Traceback" not in text and '"severity": "ERROR"' not in text, text


def _upload(base: str, size: int, *, chunked: bool, outcome: list[str]) -> None:
    """GET /health with a `size`-byte body pushed as fast as the server takes it."""
    host, port = base.removeprefix("http://").split(":")
    framing = b"Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}".encode()
    block = b"x" * 65536
    try:
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n" + framing + b"\r\n\r\n")
            sent = 0
            while sent < size:
                piece = b"10000\r\n" + block + b"\r\n" if chunked else block
                sock.sendall(piece)
                sent += len(block)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
            outcome.append(sock.recv(100).split(b"\r\n")[0].decode())
    except OSError as exc:  # the server closed on an unread body: fine, nothing buffered
        outcome.append(type(exc).__name__)


@pytest.mark.slow
def test_four_32_mib_bodies_leave_gunicorn_memory_flat(
    health_unit: tuple[str, subprocess.Popen[bytes]],
) -> None:
    import requests

    base, process = health_unit
    for _ in range(50):  # warm: the first answers load what the unit loads lazily
        requests.get(f"{base}/health", timeout=5)
    time.sleep(0.5)
    idle = _pss(process.pid)
    peak = idle
    outcomes: list[str] = []
    for chunked in (False, True):
        uploads = [
            threading.Thread(
                target=_upload,
                args=(base, 32 * MIB),
                kwargs={"chunked": chunked, "outcome": outcomes},
            )
            for _ in range(4)
        ]
        for upload in uploads:
            upload.start()
        while any(upload.is_alive() for upload in uploads):
            peak = max(peak, _pss(process.pid))
            time.sleep(0.02)
    after = _pss(process.pid)
    print(
        f"\nhealth unit PSS: idle {idle / MIB:.1f} MiB, peak {peak / MIB:.1f} MiB, "
        f"after {after / MIB:.1f} MiB; outcomes {sorted(outcomes)}"
    )
    assert len(outcomes) == 8
    assert peak <= idle * 1.10, (idle, peak)
    assert requests.get(f"{base}/health", timeout=5).status_code == 200  # still serving
    huge = b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n"
    started = time.monotonic()
    answer = _exchange(base, huge, wait=10)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert time.monotonic() - started < 7  # gunicorn waits up to 5 s for a body to drain
