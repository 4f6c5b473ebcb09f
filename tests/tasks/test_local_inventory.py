"""The local stack runs what Terraform deploys: its dispatcher's queues and its scheduler's
jobs come from the generated inventory, the file Terraform reads, not from Python dicts."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from imangor.db import session_scope
from imangor.models import CronRun
from imangor.registry import REGISTRY, load_all_units
from infra.local import inventory as local_inventory
from infra.local.tasks import LocalDispatcher, LocalScheduler, inventory_queues
from tests.conftest import LIVE_URL, SCHEDULER_ACCOUNT


@pytest.fixture
def edit_inventory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """edit_inventory(change): the local stack reads a copy of the generated inventory,
    changed by `change(data)`."""

    def edit(change: Any) -> None:
        data = local_inventory.load_inventory()
        change(data)
        copy = tmp_path / "inventory.json"
        copy.write_text(json.dumps(data))
        monkeypatch.setattr(local_inventory, "INVENTORY", copy)

    return edit


def test_the_local_stack_runs_the_inventorys_queues_and_schedules(signer: Any) -> None:
    load_all_units()
    dispatcher = LocalDispatcher(signer)
    dispatcher.stop()
    scheduler = LocalScheduler(signer, LIVE_URL, LIVE_URL, SCHEDULER_ACCOUNT)
    data = local_inventory.load_inventory()
    assert {n: vars(q) for n, q in dispatcher.queues.items()} == data["queues"]
    assert {n: (j.schedule, j.time_zone, j.path) for n, j in scheduler.schedules.items()} == {
        n: (j["schedule"], j["time_zone"], j["path"]) for n, j in data["schedules"].items()
    }
    # ...which is what the code declares (tests/infra/test_terraform.py checks the file).
    assert set(scheduler.schedules) == set(REGISTRY.schedules)


def test_a_queue_setting_changed_in_the_inventory_changes_the_dispatcher(
    edit_inventory: Any, signer: Any
) -> None:
    edit_inventory(
        lambda data: data["queues"]["main"].update(max_concurrent_dispatches=3, max_attempts=2)
    )
    assert inventory_queues()["main"].max_attempts == 2
    dispatcher = LocalDispatcher(signer)
    dispatcher.stop()
    assert dispatcher.queues["main"].max_attempts == 2
    assert dispatcher._slots["main"]._value == 3  # its concurrency limit


def test_the_local_scheduler_posts_the_inventorys_path_as_cloud_scheduler_would(
    live_server: str, edit_inventory: Any, signer: Any
) -> None:
    def rename(data: dict[str, Any]) -> None:
        data["schedules"] = {"nightly-cleanup": data["schedules"]["cleanup"]}

    edit_inventory(rename)
    scheduler = LocalScheduler(signer, live_server, LIVE_URL, SCHEDULER_ACCOUNT)
    assert list(scheduler.schedules) == ["nightly-cleanup"]
    when = datetime(2026, 12, 4, 17, 17, tzinfo=UTC)
    answer = scheduler.trigger("nightly-cleanup", when)
    assert answer.status_code == 200, answer.text
    assert answer.json()["ran"] is True
    with session_scope() as session:
        run = session.scalars(select(CronRun)).one()
        assert (run.name, run.scheduled_for) == ("cleanup", when)
    with pytest.raises(KeyError, match="no schedule 'cleanup'"):
        scheduler.trigger("cleanup")


def test_next_run_follows_the_schedules_time_zone() -> None:
    from infra.local.tasks import Schedule

    job = Schedule("x", "30 1 * * *", "Europe/Paris", "/cron/x")
    following = job.next_after(datetime(2026, 12, 4, 0, 0, tzinfo=UTC))
    assert following == datetime(2026, 12, 4, 0, 30, tzinfo=UTC)  # 01:30 in Paris (UTC+1)
