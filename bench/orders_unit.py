"""The orders unit as `make dev` serves it, for bench/api.py: its entry point unchanged, with
the outbox pushing into the local Cloud Tasks stand-in (`infra/local/tasks.py`: one INSERT
into `local_tasks` in the outbox's own transaction) instead of failing to find a backend.

    functions-framework --source bench/orders_unit.py --target orders

In production the push is a Cloud Tasks API call instead, which this machine cannot make.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Any

_spec = importlib.util.spec_from_file_location(
    "orders_main", Path(__file__).resolve().parents[1] / "functions" / "orders" / "main.py"
)
assert _spec is not None and _spec.loader is not None
_main = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_main)
_lock = threading.Lock()
_ready = False


def orders(request: Any) -> Any:
    """The unit's own entry point, once the local task backend is installed (in the worker,
    on first use: no connection is opened before gunicorn forks)."""
    global _ready
    if not _ready:
        with _lock:
            if not _ready:
                from imangor.db import get_engine
                from infra.local.tasks import prepare

                prepare(get_engine())
                _ready = True
    return _main.orders(request)
