"""Cold start: the garbage collector is paused while a unit starts.

Importing a unit's libraries creates hundreds of thousands of objects that live as long as the
process (modules, classes, functions). With the collector on, each one is scanned again and
again while the rest are being created: about 100–150 ms of a database unit's cold start on a
2-core machine, a tenth of it (measured with gc.callbacks on a cold GET /orders/). So this
follows the recipe of Python's own `gc.freeze` documentation for forking servers: in a
process the functions-framework command serves (Cloud Run, `functions-framework --source`,
the cold-start bench), the collector is disabled when the runtime is first imported, what the
master process built is frozen out of future scans just before gunicorn forks the worker
(`before_fork`, from `Unit.entry_point`), and once the worker has sent its first answer
(whose lazy imports are start-up too) that is frozen as well and the collector runs again
(`finish`, called after every answer, acting once). The gunicorn
master, which only supervises, keeps it off. On Cloud Run, whose CPU is throttled between
requests, the after-answer work finishes when the next request brings the CPU back.
"""

from __future__ import annotations

import gc
import sys
import threading

_lock = threading.Lock()
# Only a process the functions-framework command serves: tests, the dev server and tools
# that import the runtime keep Python's defaults.
SERVING = "functions_framework._cli" in sys.modules  # the functions-framework command
_paused = SERVING and gc.isenabled()
_finished = not _paused

if _paused:
    gc.disable()


def before_fork() -> None:
    """Freeze what importing the unit built: the worker's collections never scan it (and so
    never write to its pages, which stay shared with the master)."""
    if _paused:
        gc.freeze()


def finish() -> None:
    """After the first answer: freeze what it loaded and turn the collector back on (once).
    Garbage cycles the first request left are frozen too: a few kilobytes, once, rather than
    a full collection (≈50 ms) on an instance that just started."""
    global _finished
    if _finished:  # every later answer: no lock taken
        return
    with _lock:
        if _finished:
            return
        _finished = True
    gc.freeze()
    gc.enable()
