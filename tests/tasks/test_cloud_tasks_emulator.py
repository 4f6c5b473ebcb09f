"""The relay's Cloud Tasks request on the wire: through the real google-cloud-tasks client, over
gRPC, to gcloud-tasks-emulator, which pushes it over HTTP to the tasks unit.

The emulator neither backs off, deduplicates task names nor sends OIDC tokens, so this proves
the wire format only (the local dispatcher's tests in test_background.py prove the semantics).
Its push carries no token and the tasks unit refuses such calls, so it goes to a small
forwarder on 127.0.0.1 that records it, adds the token Cloud Tasks would add (signed by the
test key, for the audience and account the emulator stored with the task) and passes it on.

The emulator runs from its own virtualenv (.local/tools/gcloud-tasks-emulator, pinned by
infra/tools/gcloud-tasks-emulator.txt: it needs protobuf < 5), created on first use and
reused, through infra/local/tasks_emulator.py, which binds its gRPC server to 127.0.0.1 only.
"""

from __future__ import annotations

import fcntl
import json
import os
import selectors
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from imangor.db import session_scope
from imangor.models import Job, OutboxEntry, SentEmail
from imangor.registry import REGISTRY
from imangor.schemas.tasks import SendEmail
from imangor.tasks import enqueue
from tests.conftest import LIVE_URL, TASKS_ACCOUNT, wait_for

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".local" / "tools" / "gcloud-tasks-emulator"
PINS = ROOT / "infra" / "tools" / "gcloud-tasks-emulator.txt"
LAUNCHER = ROOT / "infra" / "local" / "tasks_emulator.py"
PROJECT, LOCATION = "imangor-emulated", "europe-west1"
LOOPBACK = {"127.0.0.1", "::ffff:127.0.0.1"}  # gRPC binds 127.0.0.1 as a v4-mapped address

pytestmark = [
    pytest.mark.xdist_group("gcloud-tasks-emulator"),  # one venv, one emulator
    pytest.mark.tools,
]


# ---- the emulator ---------------------------------------------------------------------------


def _install_failed(step: str, result: subprocess.CompletedProcess[str]) -> None:
    tail = (result.stderr or result.stdout or "").strip().splitlines()[-3:]
    pytest.skip(f"cannot {step} for gcloud-tasks-emulator (offline?): {' / '.join(tail)}")


@pytest.fixture(scope="session")
def emulator_python() -> Path:
    """The python of the emulator's virtualenv, created from the pins once and then reused."""
    python = VENV / "bin" / "python"
    stamp = VENV / ".requirements"
    wanted = PINS.read_text()
    VENV.parent.mkdir(parents=True, exist_ok=True)
    with (VENV.parent / "gcloud-tasks-emulator.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another pytest worker may be creating it
        if python.exists() and stamp.exists() and stamp.read_text() == wanted:
            return python
        uv = shutil.which("uv")
        if uv is None:
            pytest.skip("uv is not installed: cannot create gcloud-tasks-emulator's virtualenv")
        env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
        env.pop("VIRTUAL_ENV", None)
        commands = (
            (
                "create a Python 3.11 virtualenv",
                [uv, "venv", "--quiet", "--clear", "--python", "3.11", str(VENV)],
            ),
            (
                "install the pinned packages",
                [uv, "pip", "install", "--quiet", "--python", str(python), "-r", str(PINS)],
            ),
        )
        for step, command in commands:
            try:
                result = subprocess.run(
                    command, capture_output=True, text=True, env=env, timeout=300, check=False
                )
            except subprocess.TimeoutExpired:
                pytest.skip(f"cannot {step} for gcloud-tasks-emulator: timed out (offline?)")
            if result.returncode != 0:
                _install_failed(step, result)
        stamp.write_text(wanted)
    return python


@dataclass
class Emulator:
    port: int
    pid: int


@pytest.fixture(scope="session")
def tasks_emulator(
    emulator_python: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Emulator]:
    """gcloud-tasks-emulator on a free port of 127.0.0.1 (only), stopped after the session."""
    log = tmp_path_factory.mktemp("tasks-emulator") / "emulator.log"
    with log.open("wb") as stderr:
        proc = subprocess.Popen(
            [str(emulator_python), str(LAUNCHER), "--port", "0", "--max-retries", "2"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    try:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            ready = selector.select(timeout=60)
        line = proc.stdout.readline().strip() if ready else ""
        if not line.startswith("LISTENING 127.0.0.1:"):
            raise RuntimeError(f"the emulator did not start ({line!r}): {log.read_text()[-2000:]}")
        yield Emulator(int(line.rpartition(":")[2]), proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def cloud_tasks(tasks_emulator: Emulator) -> Iterator[Any]:
    """The real google-cloud-tasks client, on an insecure channel to the emulator, with our
    queues created in it (as Terraform creates them in the cloud)."""
    import grpc  # type: ignore[import-untyped]  # no stubs in the lock
    from google.cloud import tasks_v2
    from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

    channel = grpc.insecure_channel(f"127.0.0.1:{tasks_emulator.port}")
    client = tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))
    parent = client.common_location_path(PROJECT, LOCATION)
    for name in REGISTRY.queues:
        queue = client.queue_path(PROJECT, LOCATION, name)
        created = client.create_queue(parent=parent, queue=tasks_v2.Queue(name=queue), timeout=10)
        assert created.name == queue
    yield client
    channel.close()


# ---- the forwarder: Cloud Tasks' OIDC token, added on 127.0.0.1 -------------------------------


@dataclass(frozen=True)
class Push:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Forwarder:
    url: str
    pushes: list[Push] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    # (audience, service account) of the token to add; None answers 401, as the unit would.
    identity: tuple[str, str] | None = None


_HOP_BY_HOP = {"host", "content-length", "connection", "accept-encoding", "transfer-encoding"}


@pytest.fixture
def forwarder(live_server: str, signer: Any) -> Iterator[Forwarder]:
    state = Forwarder(url="")

    class Handler(BaseHTTPRequestHandler):
        def _forward(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            state.pushes.append(Push(self.command, self.path, dict(self.headers.items()), body))
            if state.identity is None:
                status, content, kind = 401, b"no identity to sign for", "text/plain"
            else:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                headers["Authorization"] = f"Bearer {signer.sign(*state.identity)}"
                answer = requests.request(
                    self.command,
                    f"{live_server}{self.path}",
                    data=body,
                    headers=headers,
                    timeout=30,
                )
                status, content = answer.status_code, answer.content
                kind = answer.headers.get("Content-Type", "application/octet-stream")
            state.answers.append(status)
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        do_POST = do_PUT = do_GET = do_PATCH = do_DELETE = _forward  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def relay_to_emulator(
    tasks_emulator: Emulator, cloud_tasks: Any, forwarder: Forwarder
) -> Iterator[None]:
    """The relay as in production (TASKS_BACKEND=cloud), its client aimed at the emulator
    (TASKS_EMULATOR_HOST) and its target URL at the forwarder; OIDC_AUDIENCE stays the live
    server's URL."""
    from imangor.config import get_settings

    changes = {
        "TASKS_BACKEND": "cloud",
        "TASKS_PROJECT": PROJECT,
        "TASKS_LOCATION": LOCATION,
        "TASKS_TARGET_URL": forwarder.url,
        "TASKS_EMULATOR_HOST": f"127.0.0.1:{tasks_emulator.port}",
    }
    saved = {key: os.environ.get(key) for key in changes}
    os.environ.update(changes)
    get_settings.cache_clear()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_settings.cache_clear()


# ---- the tests ----------------------------------------------------------------------------


def _job(job_id: uuid.UUID) -> Job:
    with session_scope() as session:
        found = session.get(Job, job_id)
        assert found is not None
        session.expunge(found)
        return found


def test_emulator_listens_on_loopback_only(tasks_emulator: Emulator) -> None:
    import psutil

    listening = [
        c for c in psutil.Process(tasks_emulator.pid).net_connections("inet") if not c.raddr
    ]
    assert listening, "the emulator listens on nothing"
    assert {(c.laddr.ip, c.laddr.port) for c in listening} <= {
        (ip, tasks_emulator.port) for ip in LOOPBACK
    }


def test_relayed_task_goes_through_the_real_client_and_emulator_to_the_tasks_unit(
    cloud_tasks: Any, forwarder: Forwarder, relay_to_emulator: None
) -> None:
    from google.cloud import tasks_v2

    queue = cloud_tasks.queue_path(PROJECT, LOCATION, SendEmail.queue)
    cloud_tasks.purge_queue(name=queue, timeout=10)
    cloud_tasks.pause_queue(name=queue, timeout=10)  # hold the task to read what was stored
    try:
        with session_scope() as session:  # the after-commit relay creates the task over gRPC
            job_id = enqueue(session, SendEmail(to="wire@example.com", subject="s", body="b")).id
        with session_scope() as session:
            left = session.get(OutboxEntry, job_id)
            assert left is None, f"the relay could not push: {left.last_error if left else ''}"

        # What the emulator received and stored, read back over gRPC.
        (stored,) = cloud_tasks.list_tasks(parent=queue, timeout=10)
        assert stored.name == f"{queue}/tasks/send_email-{job_id}"
        http = stored.http_request
        assert http.http_method == tasks_v2.HttpMethod.POST
        assert http.url == f"{forwarder.url}/tasks/send_email"
        assert dict(http.headers) == {"Content-Type": "application/json"}
        envelope = {
            "job_id": str(job_id),
            "payload": {"to": "wire@example.com", "subject": "s", "body": "b"},
        }
        assert json.loads(http.body) == envelope
        assert http.oidc_token.service_account_email == TASKS_ACCOUNT
        assert http.oidc_token.audience == LIVE_URL
        assert stored.dispatch_count == 0
        assert _job(job_id).status == "queued"
        forwarder.identity = (http.oidc_token.audience, http.oidc_token.service_account_email)
    finally:
        cloud_tasks.resume_queue(name=queue, timeout=10)

    wait_for(lambda: _job(job_id).status == "succeeded", timeout=20)
    wait_for(lambda: forwarder.answers)  # the unit's answer is relayed just after its commit

    # What the emulator pushed over HTTP.
    (push,) = forwarder.pushes
    assert forwarder.answers == [200]
    assert (push.method, push.path) == ("POST", "/tasks/send_email")
    headers = {k.lower(): v for k, v in push.headers.items()}
    assert headers["content-type"] == "application/json"
    assert "authorization" not in headers  # the emulator sends no OIDC token
    assert headers["x-cloudtasks-taskname"] == f"send_email-{job_id}"
    assert headers["x-cloudtasks-queuename"] in (SendEmail.queue, queue)  # emulator: full path
    assert headers["x-cloudtasks-taskretrycount"] == "0"
    assert headers["x-cloudtasks-taskexecutioncount"] == "0"
    # Cloud Tasks sends the schedule time; the emulator sets none on create, so sends "".
    eta = headers["x-cloudtasks-tasketa"]
    assert eta == "" or float(eta) == pytest.approx(time.time(), abs=120)
    assert json.loads(push.body) == envelope

    done = _job(job_id)
    assert (done.attempts, done.result) == (1, {})
    with session_scope() as session:
        sent = session.scalars(select(SentEmail)).one()
        assert (sent.recipient, sent.subject, sent.body) == ("wire@example.com", "s", "b")
        assert session.scalar(select(func.count()).select_from(OutboxEntry)) == 0
