"""The generated inventory (`terraform/generated/inventory.json`), as the local stack reads
it: the same file Terraform creates the queues and Scheduler jobs from, so what runs on a
laptop cannot drift from what runs in the cloud. `make inventory` writes it from the code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

INVENTORY = Path(__file__).resolve().parents[2] / "terraform" / "generated" / "inventory.json"


def load_inventory(path: Path = INVENTORY) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data
