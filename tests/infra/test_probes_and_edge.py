"""Probes and edge (issue 12, items 6 and 7), read from the .tf files and, where Terraform can
evaluate it without a provider, from the registry module applied to the generated inventory:

- every unit's startup probe is an HTTP GET of /ready and its liveness probe of /health, the
  paths imangor.runtime.probes answers in every unit; a spare gunicorn thread answers the
  liveness probe while every request thread is busy;
- the load balancer's default backend is not a unit: unmatched paths cost no instance.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from imangor.runtime import probes
from tests.infra.test_terraform import (
    committed,
    inventory,
    module_resources,
    needs_terraform,
    terraform,
)

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


# ---- the edge: unmatched paths cost no instance ---------------------------------------------


def default_backends_that_are_units(url_map: dict[str, Any]) -> list[str]:
    """Where a request no path rule matches would go, if that is a Cloud Run unit."""
    found = [("url map", url_map.get("default_service", ""))]
    found += [
        (f"path matcher {m['name']}", m.get("default_service", "")) for m in url_map["path_matcher"]
    ]
    return [
        where
        for where, service in found
        if "google_compute_backend_bucket." not in str(service) or "backend_service" in str(service)
    ]


def test_paths_no_unit_serves_get_a_static_404_not_a_unit() -> None:
    resources = module_resources("load_balancer")
    url_map = resources["google_compute_url_map.api"]
    assert default_backends_that_are_units(url_map) == []
    bucket = resources["google_compute_backend_bucket.not_found"]
    assert bucket["bucket_name"] == "${google_storage_bucket.not_found.name}"
    website = resources["google_storage_bucket.not_found"]["website"][0]
    assert website["not_found_page"] == "${google_storage_bucket_object.not_found.name}"
    assert "main_page_suffix" not in website  # "/" is a redirect rule, never a 200 "not found"
    root = next(r for r in url_map["path_matcher"][0]["path_rule"] if r["paths"] == ["/"])
    assert root["url_redirect"][0]["path_redirect"] == "/docs"


def test_a_unit_as_default_backend_is_caught() -> None:
    url_map = copy.deepcopy(module_resources("load_balancer")["google_compute_url_map.api"])
    url_map["path_matcher"][0]["default_service"] = (
        '${google_compute_backend_service.unit["health"].id}'
    )
    assert default_backends_that_are_units(url_map) == ["path matcher units"]


@needs_terraform
def test_the_404_document_is_a_problem_document(tmp_path: Path) -> None:
    """The object's content, evaluated by terraform from the module's own expression."""
    obj = module_resources("load_balancer")["google_storage_bucket_object.not_found"]
    assert obj["content_type"] == "application/problem+json"
    expression = obj["content"].removeprefix("${").removesuffix("}")
    (tmp_path / "main.tf").write_text(f'output "content" {{\n  value = {expression}\n}}\n')
    terraform(tmp_path, "init", "-input=false")
    terraform(tmp_path, "apply", "-auto-approve", "-input=false")
    document = json.loads(json.loads(terraform(tmp_path, "output", "-json", "content").stdout))
    assert document["status"] == 404 and document["title"] == "Not Found"
    assert set(document) == {"type", "title", "status", "detail"}
