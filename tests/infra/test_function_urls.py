"""Function URLs without the load balancer, by choice (issue 12, item 11): an environment
may turn the load balancer off; each public unit then answers on its own run.app URL
(ingress open, the app authenticating callers as behind the load balancer), the internal
units stay internal, and `terraform output` lists each path prefix with the URL to call.
The registry module is applied by terraform to the generated inventory in both modes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.infra.test_terraform import (
    ENVIRONMENTS,
    MODULES,
    ROOT,
    api_call,
    blocks,
    evaluate_registry,
    inventory,
    module_resources,
    needs_terraform,
)


@pytest.fixture(scope="module")
def direct(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return evaluate_registry(
        tmp_path_factory.mktemp("registry-direct"), inventory(), behind_load_balancer=False
    )


@needs_terraform
def test_without_a_load_balancer_public_units_answer_on_their_own_url(
    direct: dict[str, Any],
) -> None:
    for name, spec in inventory()["units"].items():
        unit = direct["units"][name]
        if spec["internal"]:
            assert unit["ingress"] == "INGRESS_TRAFFIC_INTERNAL_ONLY", name
            assert unit["audiences"] == [direct["oidc_audience"]], name
        else:
            assert unit["ingress"] == "INGRESS_TRAFFIC_ALL", name
            # Only Cloud Run's front end adds an X-Forwarded-For entry now.
            assert unit["env"]["FORWARDED_HOPS"] == "1", name


@needs_terraform
def test_each_public_prefix_is_listed_with_its_function_url(direct: dict[str, Any]) -> None:
    data = inventory()
    public = {p: n for n, u in data["units"].items() if not u["internal"] for p in u["paths"]}
    assert set(direct["endpoints"]) == set(public)
    for prefix, unit in public.items():
        assert direct["endpoints"][prefix] == direct["units"][unit]["url"], prefix
    assert "/tasks" not in direct["endpoints"] and "/cron" not in direct["endpoints"]


def test_the_load_balancer_and_what_needs_it_exist_only_with_it() -> None:
    api = blocks(MODULES / "api" / "main.tf", "module")
    assert api["load_balancer"]["count"] == "${var.load_balancer ? 1 : 0}"
    assert api["registry"]["behind_load_balancer"] == "${var.load_balancer}"
    assert "var.load_balancer ?" in api["monitoring"]["uptime_host"]
    assert (
        api["monitoring"]["forwarding_rule"]
        == '${try(module.load_balancer[0].forwarding_rule, "")}'
    )
    alert = module_resources("monitoring")["google_monitoring_alert_policy.load_balancer_5xx"]
    assert alert["count"] == '${var.forwarding_rule == "" ? 0 : 1}'
    outputs = blocks(MODULES / "api" / "outputs.tf", "output")
    assert "module.registry.endpoints" in outputs["endpoints"]["value"]
    unit = blocks(MODULES / "unit" / "variables.tf", "variable")["spec"]["validation"][0]
    assert '"INGRESS_TRAFFIC_ALL" && !var.spec.internal' in unit["condition"]


def test_each_environment_commits_its_mode_and_the_guide_explains_both() -> None:
    modes = {env: api_call(env)["load_balancer"] for env in ENVIRONMENTS}
    assert modes == {"dev": False, "prod": True}  # prod keeps Cloud Armor and one domain
    guide = (ROOT / "infra" / "README.md").read_text()
    section = guide[guide.index("## Function URLs or one domain") :]
    for word in ("Cloud Armor", "one domain", "dev", "prod", "endpoints"):
        assert word in section, word
    assert Path(MODULES / "load_balancer" / "main.tf").exists()
