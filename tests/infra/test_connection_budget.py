"""The connection budget (issue 12, item 3), computed from the generated inventory and each
environment's committed inputs:

- every database unit's pool is its concurrency (one connection per request thread);
- with every unit at its max instances (the service-level maximum, shared by every revision
  that carries traffic), plus one instance per unit of the tagged, traffic-less revision a
  release starts and smoke-tests, at least 25 % of max_connections minus the reserve stays
  free (Cloud Run may briefly exceed a maximum; PostgreSQL keeps 3 superuser slots);
- Terraform computes the same numbers (the registry module, applied by terraform) and its
  plan-time precondition, evaluated by terraform, refuses an environment over the budget.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.infra.test_terraform import (
    ENVIRONMENTS,
    api_call,
    evaluate_registry,
    inventory,
    module_resources,
    needs_terraform,
    terraform,
)

HEADROOM = 0.25  # the share of max_connections minus the reserve kept free


@dataclass(frozen=True)
class Budget:
    steady: int  # every unit at its max instances
    rollout: int  # plus one instance per database unit of the revision being smoke-tested
    usable: int  # max_connections - reserved_connections
    reserve: int

    @property
    def allowed(self) -> int:
        return int(self.usable * (1 - HEADROOM))

    @property
    def free_share(self) -> float:
        """Share of the usable connections left free during a release at every maximum."""
        return 1 - self.rollout / self.usable

    def problems(self) -> list[str]:
        found = []
        if self.reserve < 10:
            found.append(f"reserve {self.reserve} < 10")
        if self.rollout > self.allowed:
            found.append(
                f"a release at every maximum needs {self.rollout} connections, more than"
                f" {self.allowed} (75 % of {self.usable})"
            )
        return found


def budget(data: dict[str, Any], sizing: dict[str, Any]) -> Budget:
    """The budget of one environment: `data` is a generated inventory, `sizing` the
    environment's call of modules/api (max_instances_cap and database)."""
    cap = int(sizing["max_instances_cap"])
    database = sizing["database"]
    overflow = int(data["database_pool"]["max_overflow"])
    per_instance = {
        name: int(unit["pool_size"]) + overflow
        for name, unit in data["units"].items()
        if "database" in unit["needs"]
    }
    steady = sum(
        min(int(data["units"][name]["max_instances"]), cap) * n for name, n in per_instance.items()
    )
    reserve = int(database["reserved_connections"])
    return Budget(
        steady=steady,
        rollout=steady + sum(per_instance.values()),
        usable=int(database["max_connections"]) - reserve,
        reserve=reserve,
    )


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_each_environment_keeps_a_quarter_of_its_connections_free_during_a_release(
    env: str,
) -> None:
    found = budget(inventory(), api_call(env))
    assert found.problems() == [], f"{env}: {found}"
    assert found.free_share >= HEADROOM


def test_pools_follow_each_units_concurrency() -> None:
    data = inventory()
    for name, unit in data["units"].items():
        expected = unit["concurrency"] if "database" in unit["needs"] else 0
        assert unit["pool_size"] == expected, name


def test_a_unit_with_more_threads_or_a_bigger_cap_breaks_the_budget() -> None:
    """Mutations: what the test must catch, each alone."""
    prod = api_call("prod")
    data = inventory()
    wider = copy.deepcopy(data)
    for unit in wider["units"].values():  # every unit serves 8 requests at once
        if "database" in unit["needs"]:
            unit["concurrency"] = unit["pool_size"] = 8
    assert budget(wider, prod).problems()
    more_instances = copy.deepcopy(data)
    for unit in more_instances["units"].values():  # every unit allowed 15 instances
        unit["max_instances"] = max(unit["max_instances"], 15)
    assert budget(more_instances, {**prod, "max_instances_cap": 15}).problems()
    smaller_db = {**prod, "database": {**prod["database"], "max_connections": 480}}
    assert budget(data, smaller_db).problems()  # fits at 100 %, not with 25 % kept free
    thin_reserve = {**prod, "database": {**prod["database"], "reserved_connections": 5}}
    assert budget(data, thin_reserve).problems() == ["reserve 5 < 10"]


@needs_terraform
@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_terraform_counts_the_same_connections(env: str, tmp_path: Path) -> None:
    """The registry module, applied by terraform to the generated inventory with the
    environment's cap, derives the same demand and gives each unit its own pool."""
    sizing = api_call(env)
    outputs = evaluate_registry(tmp_path, inventory(), cap=int(sizing["max_instances_cap"]))
    found = budget(inventory(), sizing)
    assert outputs["connection_demand"] == found.steady
    assert outputs["rollout_connection_demand"] == found.rollout
    for name, unit in outputs["units"].items():
        spec = inventory()["units"][name]
        if "database" in spec["needs"]:
            assert unit["env"]["DB_POOL_SIZE"] == str(spec["pool_size"]), name
        else:
            assert "DB_POOL_SIZE" not in unit["env"], name


def _precondition(tmp: Path, values: dict[str, Any]) -> Any:
    """Apply the database module's budget precondition, copied verbatim onto a provider-less
    resource, with these values."""
    instance = module_resources("database")["google_sql_database_instance.main"]
    precondition = instance["lifecycle"][0]["precondition"][0]
    variables = "".join(f'variable "{name}" {{\n  type = number\n}}\n' for name in values)
    condition = precondition["condition"].removeprefix("${").removesuffix("}")
    (tmp / "main.tf").write_text(
        variables
        + f"""
resource "terraform_data" "budget" {{
  lifecycle {{
    precondition {{
      condition     = {condition}
      error_message = "over budget"
    }}
  }}
}}
"""
    )
    (tmp / "values.auto.tfvars.json").write_text(json.dumps(values))
    terraform(tmp, "init", "-input=false")
    return terraform(tmp, "apply", "-auto-approve", "-input=false", check=False)


@needs_terraform
def test_the_plan_time_precondition_agrees(tmp_path: Path) -> None:
    prod = api_call("prod")
    found = budget(inventory(), prod)
    values = {
        "rollout_connection_demand": found.rollout,
        "max_connections": int(prod["database"]["max_connections"]),
        "reserved_connections": found.reserve,
        "connection_headroom": HEADROOM,
    }
    for name in ("ok", "over"):
        (tmp_path / name).mkdir()
    fits = _precondition(tmp_path / "ok", values)
    assert fits.returncode == 0, fits.stderr
    over = {**values, "rollout_connection_demand": found.allowed + 1}
    result = _precondition(tmp_path / "over", over)
    assert result.returncode != 0 and "over budget" in result.stderr


def test_revisions_share_a_service_level_maximum_the_release_sets() -> None:
    """Minimum instances at the service level (a traffic-less tagged revision starts none);
    each revision bounded at max_instances; the service labelled with the maximum that the
    release applies at the service level (provider 6.50.0 cannot)."""
    service = module_resources("unit")["google_cloud_run_v2_service.unit"]
    assert service["scaling"][0] == {"min_instance_count": "${var.spec.min_instances}"}
    assert service["template"][0]["scaling"][0] == {
        "max_instance_count": "${var.spec.max_instances}"
    }
    assert '"max-instances" = tostring(var.spec.max_instances)' in service["labels"]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_guide_quotes_each_environments_budget(env: str) -> None:
    from tests.infra.test_terraform import ROOT

    found = budget(inventory(), api_call(env))
    guide = (ROOT / "infra" / "README.md").read_text()
    row = (
        f"| {found.steady} | {found.rollout} | {found.usable + found.reserve} - {found.reserve}"
        f" = {found.usable} | {found.allowed} | {found.free_share:.0%} |"
    )
    assert row.replace("%", " %") in guide, row
