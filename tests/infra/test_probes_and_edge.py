"""Probes and edge (issue 12, items 6 and 7), read from the .tf files and, where Terraform can
evaluate it without a provider, from the registry module applied to the generated inventory:

- every unit's startup probe is an HTTP GET of /ready and its liveness probe of /health, the
  paths imangor.runtime.probes answers in every unit; a spare gunicorn thread answers the
  liveness probe while every request thread is busy;
- the load balancer's default backend is not a unit: unmatched paths cost no instance.
"""

from __future__ import annotations

import copy
from typing import Any

from imangor.runtime import probes
from tests.infra.test_terraform import committed, inventory, module_resources

__all__ = ["committed"]  # the registry module's outputs for the generated inventory (fixture)


def probe_problems(service: dict[str, Any]) -> list[str]:
    """What is wrong with a Cloud Run service's probes (empty when nothing)."""
    container = service["template"][0]["containers"][0]
    problems = []
    for kind, path in (("startup_probe", probes.READINESS), ("liveness_probe", probes.LIVENESS)):
        probe = container.get(kind, [{}])[0]
        http = probe.get("http_get", [{}])[0]
        if http.get("path") != path:
            problems.append(f"{kind} is not an HTTP GET of {path}")
            continue
        if http.get("port") != container["ports"][0]["container_port"]:
            problems.append(f"{kind} probes another port than the container's")
        if probe["timeout_seconds"] > probe["period_seconds"]:
            problems.append(f"{kind}: timeout longer than its period")
    startup = container.get("startup_probe", [{}])[0]
    if startup.get("period_seconds", 0) * startup.get("failure_threshold", 0) > 240:
        problems.append("startup_probe gives an instance more than Cloud Run's 240 s")
    return problems


def test_every_unit_probes_ready_at_start_and_health_while_it_lives() -> None:
    service = module_resources("unit")["google_cloud_run_v2_service.unit"]
    assert probe_problems(service) == []
    assert probes.PATHS == ("/health", "/ready")


def test_a_tcp_startup_probe_is_caught() -> None:
    service = copy.deepcopy(module_resources("unit")["google_cloud_run_v2_service.unit"])
    container = service["template"][0]["containers"][0]
    container["startup_probe"] = [
        {"tcp_socket": [{"port": 8080}], "period_seconds": 2, "timeout_seconds": 1}
    ]
    del container["liveness_probe"]
    assert probe_problems(service) == [
        "startup_probe is not an HTTP GET of /ready",
        "liveness_probe is not an HTTP GET of /health",
    ]


def test_a_spare_thread_answers_probes_beside_the_request_threads(
    committed: dict[str, Any],
) -> None:
    for name, unit in committed["units"].items():
        spec = inventory()["units"][name]
        assert unit["env"]["THREADS"] == str(spec["concurrency"] + 1), name
        assert unit["concurrency"] == spec["concurrency"], name
