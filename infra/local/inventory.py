"""The generated inventory (`terraform/generated/inventory.json`), as the local stack reads
it: the same file Terraform creates the queues and Scheduler jobs from, so what runs on a
laptop cannot drift from what runs in the cloud. `make inventory` writes it from the code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

INVENTORY = Path(__file__).resolve().parents[2] / "terraform" / "generated" / "inventory.json"


def load_inventory(path: Path | None = None) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((path or INVENTORY).read_text())
    return data


def stale_sections() -> list[str]:
    """The inventory's sections that no longer match the code (after an edit without `make
    inventory`): the local stack would run what Terraform would deploy, not what the code
    says, so the dev server says so at start."""
    from infra.generate import inventory

    current, committed = inventory(), load_inventory()
    return sorted(
        k for k in current.keys() | committed.keys() if current.get(k) != committed.get(k)
    )
