"""Background work on Cloud Tasks: queues, the outbox, handlers and scheduled jobs.

`enqueue` (the outbox, with the job tables' models) is loaded on first use: declaring task
payloads and handlers, which every unit that names a task does at import, stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from imangor.tasks.declare import TaskPayload, scheduled, task

if TYPE_CHECKING:
    from imangor.tasks.outbox import enqueue as enqueue

__all__ = ["TaskPayload", "enqueue", "scheduled", "task"]


def __getattr__(name: str) -> Any:
    if name == "enqueue":
        enqueue = importlib.import_module("imangor.tasks.outbox").enqueue
        globals()["enqueue"] = enqueue  # found directly from now on
        return enqueue
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
