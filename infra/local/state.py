"""What a running `make dev` tells the other local commands (`make seed`, `make cron`): its
base URL, the OIDC audience it verifies, and the URLs of the services it started. Kept in
`.local/dev.json` while the dev server runs, removed when it stops."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
LOCAL = Path(os.environ.get("IMANGOR_LOCAL_DIR", ROOT / ".local"))  # git-ignored state
STATE = LOCAL / "dev.json"


class NotRunning(RuntimeError):
    """No `make dev` runs for this checkout."""


def publish(**values: Any) -> None:
    """Tell the other commands this dev server is up (owner-only: it holds service URLs)."""
    LOCAL.mkdir(parents=True, exist_ok=True)
    STATE.write_text(json.dumps({"pid": os.getpid(), **values}))
    STATE.chmod(0o600)


def withdraw() -> None:
    STATE.unlink(missing_ok=True)


def running() -> dict[str, Any]:
    """The running dev server's state, or NotRunning (a file left by a killed one included)."""
    try:
        state: dict[str, Any] = json.loads(STATE.read_text())
        os.kill(int(state["pid"]), 0)
    except (OSError, ValueError, KeyError):
        message = "`make dev` is not running: start it first (in another terminal)"
        raise NotRunning(message) from None
    return state
