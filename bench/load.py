"""HTTP load for the benchmarks: wrk when it is installed, a Python client otherwise.

On two cores a Python client competes with the server it measures (16 `http.client`
connections cost about as much CPU as the server's own request handling), so the HTTP
benchmarks drive load with wrk (`apt-get install wrk`), a C client that keeps 16 connections
busy on a fraction of one core. Requests come from a list, one file line each
(bench/wrk_requests.lua), so every run can send distinct requests (cache misses stay misses)
and unique Idempotency-Keys. Without wrk, the same list goes through keep-alive `http.client`
connections in two processes; the report names the client that measured each row.

Both clients only ever target 127.0.0.1, and every run is bounded by its duration.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import multiprocessing
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
LUA = Path(__file__).resolve().with_name("wrk_requests.lua")
UNIQUE = "{unique}"  # in a header value: replaced by a value unique to each request
CLIENTS = ("auto", "wrk", "python")

# (method, path, body or None, headers)
Request = tuple[str, str, bytes | None, dict[str, str]]


@dataclass(frozen=True)
class Measured:
    """One bounded run of one client against one server."""

    client: str
    requests: int
    errors: int  # connection failures, timeouts and answers >= 400
    seconds: float
    p50_ms: float
    p99_ms: float
    client_cpu_seconds: float  # what the load generator itself burned
    statuses: dict[int, int] = field(default_factory=dict)  # the Python client counts them

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def choose_client(preferred: str = "auto") -> str:
    """wrk when asked for or installed; else the Python client, saying how to get wrk."""
    if preferred == "python":
        return "python"
    if shutil.which("wrk"):
        return "wrk"
    if preferred == "wrk":
        raise SystemExit("wrk is not installed: apt-get install -y wrk (or --client python)")
    print(
        "wrk is not installed (apt-get install -y wrk): falling back to the Python client, "
        "which shares the CPU with the servers it measures",
        file=sys.stderr,
    )
    return "python"


def run(
    client: str,
    port: int,
    requests: list[Request],
    *,
    connections: int,
    seconds: float,
) -> Measured:
    """Send `requests` (cycled, disjoint shares per connection group) for `seconds`."""
    if not requests:
        raise ValueError("no requests to send")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    if client == "wrk":
        result = _wrk(port, requests, connections=connections, seconds=seconds)
    else:
        result = _python(port, requests, connections=connections, seconds=seconds)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return Measured(**{**result.__dict__, "client_cpu_seconds": cpu})


# -- wrk -------------------------------------------------------------------------------------


def _line(request: Request) -> str:
    method, path, body, headers = request
    text = body.decode() if body else ""
    fields = [method, path, text, *(f"{k}: {v}" for k, v in headers.items())]
    if any(("\t" in f or "\n" in f) for f in fields):
        raise ValueError(f"a request field holds a tab or newline: {fields!r}")
    return "\t".join(fields)


def _wrk(port: int, requests: list[Request], *, connections: int, seconds: float) -> Measured:
    threads = max(1, min(2, connections))
    with tempfile.TemporaryDirectory(prefix="imangor-wrk-") as folder:
        listing = Path(folder) / "requests.tsv"
        listing.write_text("\n".join(_line(r) for r in requests) + "\n")
        command = [
            str(shutil.which("wrk")),
            "-t",
            str(threads),
            "-c",
            str(connections),
            "-d",
            f"{max(1, round(seconds))}s",
            "--timeout",
            "30s",
            "-s",
            str(LUA),
            f"http://{HOST}:{port}",
            "--",
            str(listing),
            str(threads),
            uuid.uuid4().hex[:12],
        ]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=seconds + 90, check=False
        )
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRK-RESULT ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    data = json.loads(line.removeprefix("WRK-RESULT "))
    errors = sum(data[k] for k in ("connect", "read", "write", "status", "timeout"))
    return Measured(
        client="wrk",
        requests=int(data["requests"]),
        errors=int(errors),
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        client_cpu_seconds=0.0,
    )


# -- Python fallback -------------------------------------------------------------------------


def _expand(request: Request) -> Request:
    method, path, body, headers = request
    if any(UNIQUE in v for v in headers.values()):
        stamp = uuid.uuid4().hex
        headers = {k: v.replace(UNIQUE, stamp) for k, v in headers.items()}
    return method, path, body, headers


def _worker(
    port: int,
    requests: list[Request],
    process_index: int,
    processes: int,
    threads: int,
    seconds: float,
    out: Any,
) -> None:
    """One load process: `threads` keep-alive connections, each sending back to back."""
    stop = time.monotonic() + seconds
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0

    def loop(thread_index: int) -> None:
        nonlocal errors
        slot, slots = process_index * threads + thread_index, processes * threads
        mine = requests[slot::slots] or requests
        conn = http.client.HTTPConnection(HOST, port, timeout=30)
        times: list[float] = []
        codes: dict[int, int] = {}
        failed = 0
        index = 0
        while time.monotonic() < stop:
            method, path, body, headers = _expand(mine[index % len(mine)])
            index += 1
            sent = time.perf_counter()
            try:
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(HOST, port, timeout=30)
                status = 0
            times.append((time.perf_counter() - sent) * 1000)
            codes[status] = codes.get(status, 0) + 1
            if status == 0 or status >= 400:
                failed += 1
        conn.close()
        with lock:
            latencies.extend(times)
            for code, n in codes.items():
                statuses[code] = statuses.get(code, 0) + n
            errors += failed

    workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=seconds + 60)
    out.put((latencies, statuses, errors))


def _python(
    port: int, requests: list[Request], *, connections: int, seconds: float, processes: int = 2
) -> Measured:
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    per = max(1, connections // processes)
    children = [
        context.Process(target=_worker, args=(port, requests, p, processes, per, seconds, out))
        for p in range(processes)
    ]
    started = time.monotonic()
    for child in children:
        child.start()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    for _ in children:
        times, codes, failed = out.get(timeout=seconds + 120)
        latencies.extend(times)
        for code, n in codes.items():
            statuses[code] = statuses.get(code, 0) + n
        errors += failed
    elapsed = time.monotonic() - started
    for child in children:
        child.join(timeout=30)
        with contextlib.suppress(ValueError):
            child.close()
    ordered = sorted(latencies)

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")

    return Measured(
        client="python",
        requests=len(ordered),
        errors=errors,
        seconds=min(elapsed, seconds) if ordered else seconds,
        p50_ms=pct(0.5),
        p99_ms=pct(0.99),
        client_cpu_seconds=0.0,
        statuses=dict(sorted(statuses.items())),
    )
