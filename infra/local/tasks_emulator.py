"""gcloud-tasks-emulator on 127.0.0.1 only, for the wire-format test of the Cloud Tasks relay.

The emulator's own entry point binds its gRPC server to every interface (`[::]:PORT`,
hard-coded in `gcloud_tasks_emulator.server.APIThread.run`, whatever host it is given).
This launcher runs the same server with `grpc.server` wrapped so that the one port it adds
is bound on 127.0.0.1, and refuses any other address. Run it with the emulator's own
virtualenv (it imports nothing from this project; see infra/tools/gcloud-tasks-emulator.txt):

    .local/tools/gcloud-tasks-emulator/bin/python infra/local/tasks_emulator.py --port 0

It prints one line, `LISTENING 127.0.0.1:<port>`, once the gRPC server accepts calls, and
stops on SIGTERM/SIGINT or when the process that started it exits.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import queue
import signal
import sys
import threading
from typing import Any

LOOPBACK = "127.0.0.1"
# The addresses the emulator asks for, rewritten to loopback, never bound.
_ANY_INTERFACE = {"[::]", ""}
_ANY_INTERFACE.add("0.0.0.0")  # noqa: S104  # nosec B104


class _LoopbackServer:
    """A grpc.Server whose `add_insecure_port` binds 127.0.0.1 instead of every interface."""

    def __init__(self, server: Any, bound: queue.Queue[int]) -> None:
        self._server = server
        self._bound = bound

    def add_insecure_port(self, address: str) -> int:
        host, _, port = address.rpartition(":")
        if host not in _ANY_INTERFACE and host != LOOPBACK:
            raise ValueError(f"refusing to bind {address!r}: loopback only")
        port_number = int(self._server.add_insecure_port(f"{LOOPBACK}:{port}"))
        if port_number == 0:
            raise OSError(f"could not bind {LOOPBACK}:{port}")
        self._bound.put(port_number)
        return port_number

    def add_secure_port(self, address: str, credentials: Any) -> int:
        raise ValueError(f"refusing to bind {address!r}: the emulator is plaintext, loopback")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)


def _patch_grpc_server(bound: queue.Queue[int]) -> None:
    """Make `grpc.server(...)`, as the emulator calls it, return a loopback-only server."""
    grpc: Any = importlib.import_module("grpc")
    real = grpc.server

    def loopback_server(*args: Any, **kwargs: Any) -> _LoopbackServer:
        return _LoopbackServer(real(*args, **kwargs), bound)

    grpc.server = loopback_server


def _watch_parent(stop: threading.Event) -> None:
    """Stop when the process that started us is gone (a test killed hard leaves no orphan)."""
    parent = os.getppid()
    while not stop.wait(0.5):
        if os.getppid() != parent:
            stop.set()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="gcloud-tasks-emulator on 127.0.0.1 only")
    parser.add_argument("--port", type=int, default=0, help="gRPC port (0: any free one)")
    parser.add_argument(
        "--max-retries", type=int, default=3, help="dispatches of a failing task (bounded)"
    )
    parser.add_argument("--target-port", type=int, default=8080, help="App Engine tasks only")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    bound: queue.Queue[int] = queue.Queue()
    _patch_grpc_server(bound)
    emulator = importlib.import_module("gcloud_tasks_emulator.server")
    server = emulator.create_server(
        LOOPBACK,
        args.port,
        target_host=LOOPBACK,
        target_port=args.target_port,
        default_queue_names=[],
        max_retries=args.max_retries,
    )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    threading.Thread(target=_watch_parent, args=(stop,), daemon=True).start()
    server.start()
    try:
        port = bound.get(timeout=30)
    except queue.Empty:
        print("the emulator's gRPC server did not start", file=sys.stderr, flush=True)
        server.stop()
        return 1
    print(f"LISTENING {LOOPBACK}:{port}", flush=True)
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
