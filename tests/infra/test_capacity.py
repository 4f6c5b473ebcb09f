"""The capacity model (issue 12, item 4): infra/capacity.py reads the committed bench
figures and the generated inventory; each environment's committed sizes (instances per unit,
Cloud SQL tier, connections, queue rates) serve its design load of the model's mix; README.md's
Capacity section is the model's own output for 10,000 requests/s."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

from infra import capacity
from tests.infra.test_terraform import ENVIRONMENTS, ROOT, api_call, inventory


def sizes(env: str, data: dict[str, Any] | None = None) -> capacity.Sizes:
    """What Terraform would deploy in `env`, from its module call and the inventory."""
    data = data or inventory()
    call = api_call(env)
    cap = int(call["max_instances_cap"])
    database = call["database"]
    usable = int(database["max_connections"]) - int(database["reserved_connections"])
    rollout = sum(int(u["pool_size"]) for u in data["units"].values())
    return capacity.Sizes(
        max_instances={n: min(int(u["max_instances"]), cap) for n, u in data["units"].items()},
        db_vcpus=capacity.tier_vcpus(database["tier"]),
        connections_allowed=math.floor(usable * 0.75) - rollout,
        queue_rates={n: float(q["max_dispatches_per_second"]) for n, q in data["queues"].items()},
    )


def test_the_model_reads_the_committed_bench_figures() -> None:
    figures = capacity.bench_figures()
    readme = (ROOT / "README.md").read_text()
    # The same figures the README's Benchmarks section quotes.
    for name, row in (
        ("product hit", "GET /products/{id}, cache hit"),
        ("product miss", "GET /products/{id}, cache miss"),
        ("search", "GET /products/?q= mixed, 30 % broad"),
        ("category list", "GET /products/?category="),
        ("order write", "POST /orders/"),
    ):
        quoted = re.search(rf"^\| {re.escape(row)} \| ([\d,.]+) \|", readme, re.M)
        assert quoted, row
        assert figures[name].per_second == float(quoted.group(1).replace(",", "")), name
    assert figures["sign-in"].per_second == 76.1
    assert figures["task"].per_second == 176


def test_the_mix_is_whole_and_every_unit_of_it_exists() -> None:
    assert math.isclose(sum(s.share for s in capacity.MIX), 1.0)
    units = set(inventory()["units"])
    assert {s.unit for s in capacity.MIX} <= units
    assert set().union(*(s.tasks for s in capacity.MIX)) <= set(inventory()["queues"])


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_each_environment_serves_its_design_load(env: str) -> None:
    load = capacity.DESIGN_LOAD[env]
    figures, data = capacity.bench_figures(), inventory()
    assert capacity.problems(sizes(env), load, figures, data) == []
    first, what = capacity.walls(sizes(env), figures, data)[0]
    assert first >= load, f"{env}: {what} at {first:.0f} req/s"


def test_an_environment_too_small_for_its_load_is_caught() -> None:
    figures, data = capacity.bench_figures(), inventory()
    found = capacity.problems(sizes("prod"), 10_000, figures, data)
    assert "products needs 19 instances, may run 10" in found
    assert any(p.startswith("Cloud SQL needs 12.4 vCPU") for p in found)
    assert any(p.startswith("queue main needs 600 dispatches/s") for p in found)
    assert capacity.problems(sizes("dev"), 2_000, figures, data) == [
        "products needs 4 instances, may run 2",
        "Cloud SQL needs 2.5 vCPU, has 1",
        "queue main needs 120 dispatches/s, allows 50",
    ]


def test_prod_first_wall_is_the_main_queue() -> None:
    figures, data = capacity.bench_figures(), inventory()
    load, what = capacity.walls(sizes("prod"), figures, data)[0]
    assert what == "Cloud Tasks queue main: 50 dispatches/s"
    assert round(load) == 833


def test_the_readme_quotes_the_model() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Capacity") :]
    assert capacity.render(10_000, capacity.bench_figures(), inventory()) in section
    for env in ENVIRONMENTS:
        assert f"{capacity.DESIGN_LOAD[env]:,.0f} req/s" in section
