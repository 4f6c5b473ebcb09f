"""Cold start: importing a unit loads only what that unit needs. Heavy clients are imported
on first use (measured here: google.cloud.tasks_v2 ≈1.0 s, the Cloud SQL connector ≈1.4 s,
google.cloud.storage ≈0.6 s, redis ≈0.4 s); prometheus_client is fed once the answer is
sent."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from imangor.registry import unit_names
from tests.conftest import ROOT

HEAVY = (
    "google.cloud.tasks_v2",
    "google.cloud.sql.connector",
    "google.cloud.storage",
    "redis",
    "argon2",
    "google.oauth2",
    "google.auth.jwt",
    "alembic",
    "psutil",
    "prometheus_client",
)
DATABASE_FREE = ("sqlalchemy", "pg8000")


def run_with_unit(unit: str, before: str = "", after: str = "") -> list[str]:
    """Run `before`, load functions/<unit>/main.py as the functions-framework command does,
    run `after`, in a fresh interpreter; the lines it printed (log lines left out)."""
    script = (
        "import importlib.util, json, sys\n"
        "import functions_framework._cli  # loaded first, as by the command\n"
        f"{before}"
        f"spec = importlib.util.spec_from_file_location('main', 'functions/{unit}/main.py')\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "sys.modules['main'] = module  # as functions-framework does\n"
        "spec.loader.exec_module(module)\n"
        f"{after}"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        # What a unit served alone needs to start (it connects to neither while importing).
        env={
            "PATH": "/usr/bin:/bin",
            "DATABASE_URL": "postgresql://imangor@127.0.0.1:1/imangor",
            "REDIS_URL": "redis://127.0.0.1:1/0",
        },
    )
    return [line for line in out.stdout.splitlines() if not line.startswith("{")]


def modules_after_import(unit: str) -> set[str]:
    return set(
        json.loads(run_with_unit(unit, after="print(json.dumps(sorted(sys.modules)))\n")[-1])
    )


@pytest.mark.parametrize("unit", unit_names())
def test_importing_a_unit_loads_no_heavy_client(unit: str) -> None:
    loaded = modules_after_import(unit)
    assert not [m for m in HEAVY if m in loaded], f"{unit} imports heavy clients at start"


def test_the_docs_unit_does_not_even_load_the_database_layer() -> None:
    loaded = modules_after_import("docs")
    assert not [m for m in DATABASE_FREE if m in loaded]


def test_the_first_answer_does_not_wait_for_prometheus() -> None:
    printed = run_with_unit(
        "health",
        after=(
            "import gc\n"
            "from flask import Flask, request\n"
            "with Flask('probe').test_request_context('/health'):\n"
            "    response = module.health(request._get_current_object())\n"
            "print(response.status_code, 'prometheus_client' in sys.modules, gc.isenabled())\n"
            "response.close()  # what the WSGI server does once the answer is sent\n"
            "print(gc.isenabled(), gc.get_freeze_count() > 0)\n"
            "from prometheus_client import REGISTRY\n"
            "labels = {'method': 'GET', 'endpoint': '/health', 'status': '200'}\n"
            "print(REGISTRY.get_sample_value('http_request_duration_seconds_count', labels))\n"
        ),
    )
    # Answered without Prometheus and with the collector paused; once the answer is sent,
    # the metrics are in and the collector runs again, start-up objects frozen out of it.
    assert printed == ["200 False False", "True True", "1.0"]


@pytest.mark.parametrize("unit", unit_names())
def test_no_garbage_collection_while_a_unit_starts(unit: str) -> None:
    """The runtime is each unit's first import and pauses the collector: importing the unit
    (and its libraries) triggers no collection, and what it built is frozen before the fork."""
    printed = run_with_unit(
        unit,
        before=("import gc\nbefore = sum(s['collections'] for s in gc.get_stats())\n"),
        after=(
            "after = sum(s['collections'] for s in gc.get_stats())\n"
            "print(json.dumps([after - before, gc.isenabled(), gc.get_freeze_count() > 0]))\n"
        ),
    )
    assert json.loads(printed[-1]) == [0, False, True]


def test_first_metric_flushes_on_several_threads_register_once() -> None:
    script = (
        "import threading\n"
        "from imangor import metrics\n"
        "errors = []\n"
        "def first_flush():\n"
        "    try:\n"
        "        metrics.observe_request('GET', '/x', 200, 0.01)\n"
        "        metrics.flush()\n"
        "    except Exception as exc:\n"
        "        errors.append(repr(exc))\n"
        "threads = [threading.Thread(target=first_flush) for _ in range(8)]\n"
        "for t in threads: t.start()\n"
        "for t in threads: t.join()\n"
        "from prometheus_client import REGISTRY\n"
        "labels = {'method': 'GET', 'endpoint': '/x', 'status': '200'}\n"
        "print(errors, REGISTRY.get_sample_value('http_request_duration_seconds_count', labels))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["[]", "8.0"]


def test_a_file_answer_also_ends_the_start_up() -> None:
    """Static assets are file answers (send_from_directory): served through Flask as by
    functions-framework, they too run the after-answer work once sent."""
    printed = run_with_unit(
        "docs",
        after=(
            "import gc\n"
            "from flask import Flask, request\n"
            "app = Flask('probe')\n"
            "app.add_url_rule('/<path:p>', view_func=lambda p: module.docs(request))\n"
            "response = app.test_client().get('/docs/static/redoc/redoc.standalone.js')\n"
            "print(response.status_code, gc.isenabled(), len(response.get_data()) > 1000)\n"
            "response.close()\n"
            "print(gc.isenabled())\n"
        ),
    )
    assert printed == ["200 False True", "True"]


def test_outside_the_functions_framework_command_the_collector_is_left_alone() -> None:
    script = (
        "import gc, json\n"
        "import imangor.runtime  # tests, the dev server, tools\n"
        "print(json.dumps([gc.isenabled(), gc.get_freeze_count()]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == [True, 0]
