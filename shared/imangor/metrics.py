"""Prometheus metrics, with the names ops' dashboards and alerts already use.

Recording one is a deque append. prometheus_client (about 60 ms of imports on a 2-core
instance, more than the rest of the runtime) is loaded and fed by `flush()`, which the runtime
calls once each answer has been sent and `/metrics` calls before rendering: a cold instance's
first answer never waits for it, and no observation is lost.
"""

from __future__ import annotations

import threading
from collections import deque
from functools import cache
from typing import Any

REQUEST_DURATION = "http_request_duration_seconds"
ERRORS = "app_errors_total"
TASK_RUNS = "tasks_runs_total"
TASKS_DEAD = "tasks_dead_total"
_FLUSH_AT = 1000  # a process that never answers HTTP (a CLI) still keeps memory bounded

_pending: deque[tuple[str, tuple[str, ...], float]] = deque()
_families_lock = threading.Lock()


def observe_request(method: str, endpoint: str, status: int, seconds: float) -> None:
    _record(REQUEST_DURATION, (method, endpoint, str(status)), seconds)


def count_error(error_type: str, endpoint: str) -> None:
    _record(ERRORS, (error_type, endpoint), 1.0)


def count_task_run(task: str, outcome: str) -> None:
    _record(TASK_RUNS, (task, outcome), 1.0)


def count_dead_task(task: str) -> None:
    _record(TASKS_DEAD, (task,), 1.0)


def _record(name: str, labels: tuple[str, ...], value: float) -> None:
    _pending.append((name, labels, value))
    if len(_pending) >= _FLUSH_AT:
        flush()


def flush() -> None:
    """Apply every pending observation to the Prometheus registry (thread-safe)."""
    families = _families()
    while True:
        try:
            name, labels, value = _pending.popleft()
        except IndexError:
            return
        metric = families[name].labels(*labels)
        if name == REQUEST_DURATION:
            metric.observe(value)
        else:
            metric.inc(value)


def render() -> tuple[bytes, str]:
    """The Prometheus text exposition of this process's metrics and its content type."""
    flush()
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def _families() -> dict[str, Any]:
    # Registering twice raises (duplicated time series): the first flushes of a cold instance
    # run on several request threads at once.
    with _families_lock:
        return _register()


@cache
def _register() -> dict[str, Any]:
    from prometheus_client import Counter, Gauge, Histogram

    Gauge("app_memory_usage_bytes", "Resident memory of this instance").set_function(_memory_bytes)
    Gauge("app_cpu_usage_percent", "CPU use of this instance since the last scrape").set_function(
        _cpu_percent
    )
    return {
        REQUEST_DURATION: Histogram(
            REQUEST_DURATION,
            "Time from request received to response ready",
            ["method", "endpoint", "status"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        ),
        ERRORS: Counter(ERRORS, "Requests that ended in an error", ["error_type", "endpoint"]),
        TASK_RUNS: Counter(TASK_RUNS, "Task deliveries by outcome", ["task", "outcome"]),
        TASKS_DEAD: Counter(TASKS_DEAD, "Tasks that failed their last attempt", ["task"]),
    }


def _memory_bytes() -> float:
    import psutil

    return float(psutil.Process().memory_info().rss)


def _cpu_percent() -> float:
    import psutil

    return float(psutil.Process().cpu_percent(interval=None))
