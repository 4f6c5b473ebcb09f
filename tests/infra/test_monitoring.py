"""Monitoring (issue 12, item 8): the alerts the review found missing exist, a production
plan refuses to run without anyone to alert, and the seed's metric names reach Cloud
Monitoring as log-based metrics built from the access log every request writes (checked
against a real access-log line of a unit) and shown on the dashboard."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import pytest

from imangor import metrics
from tests.infra.test_terraform import (
    MODULES,
    ROOT,
    PlanInputs,
    example_site,
    module_resources,
    parse,
    plan_inputs,
)

__all__ = ["plan_inputs"]  # the fixture planning an environment's inputs

DASHBOARD = ROOT / "infra" / "dashboards" / "api.json"

# What each alert must watch (a metric, or a log-based metric read through the wait).
REQUIRED = {
    "queue depth": "cloudtasks_googleapis_com:queue_depth",
    "oldest task wait": "cloudtasks_googleapis_com:queue_task_attempt_delays_bucket",
    "scheduler failures": 'triggers["scheduler_failures"]',
    "Cloud SQL disk": "cloudsql.googleapis.com/database/disk/utilization",
    "Cloud SQL CPU": "cloudsql.googleapis.com/database/cpu/utilization",
    "Cloud SQL connections": "cloudsql.googleapis.com/database/postgresql/num_backends",
    "load balancer 5xx": "loadbalancing_googleapis_com:https_request_count",
    "unit 5xx": 'response_code_class="5xx"',
    "dead tasks": 'triggers["tasks_dead"]',
}


def missing_alerts(resources: dict[str, dict[str, Any]]) -> list[str]:
    alerts = " ".join(
        json.dumps(body)
        for a, body in resources.items()
        if a.startswith("google_monitoring_alert_policy.")
    )
    return sorted(
        name for name, needle in REQUIRED.items() if needle.replace('"', '\\"') not in alerts
    )


def test_every_alert_the_review_asked_for_exists() -> None:
    resources = module_resources("monitoring")
    assert missing_alerts(resources) == []
    for address, body in resources.items():
        if address.startswith("google_monitoring_alert_policy."):
            assert body["notification_channels"] == "${local.channels}", address
            assert body["documentation"][0]["content"], address


def test_a_missing_alert_is_caught() -> None:
    resources = {
        a: b
        for a, b in module_resources("monitoring").items()
        if a != "google_monitoring_alert_policy.sql_disk"
    }
    assert missing_alerts(resources) == ["Cloud SQL disk"]


def test_a_production_plan_needs_someone_to_alert(plan_inputs: PlanInputs) -> None:
    silent = {**example_site("prod"), "alert_emails": []}
    result = plan_inputs("prod", silent)
    assert result.returncode != 0
    assert "prod needs at least one address" in " ".join(result.stderr.split())
    assert plan_inputs("dev", {**example_site("dev"), "alert_emails": []}).returncode == 0


# ---- the seed's metric names ----------------------------------------------------------------


def log_metrics() -> dict[str, dict[str, Any]]:
    return {
        body["name"]: body
        for address, body in module_resources("monitoring").items()
        if address.startswith("google_logging_metric.")
    }


def test_the_seed_metric_names_are_log_based_metrics_on_the_dashboard() -> None:
    found = log_metrics()
    for name in (metrics.REQUEST_DURATION, metrics.ERRORS, metrics.TASKS_DEAD):
        assert name in found, name
    duration = found[metrics.REQUEST_DURATION]
    assert duration["metric_descriptor"][0]["value_type"] == "DISTRIBUTION"
    bounds = duration["bucket_options"][0]["explicit_buckets"][0]["bounds"]
    assert bounds == [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
    dashboard = DASHBOARD.read_text()
    for name in found:
        assert f"logging_googleapis_com:user_{name}" in dashboard, f"{name} is not on the dashboard"


def _access_log_line(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """One real access-log line of a unit (a 404: it needs no database or Redis, which these
    tests do not start), as Cloud Logging receives it on stdout."""
    import functions_framework
    from werkzeug.test import Client

    import imangor.observability as obs

    sample = ROOT / "tests" / "runtime" / "sample" / "main.py"
    client = Client(functions_framework.create_app(target="sample", source=str(sample)))  # type: ignore[no-untyped-call]
    handler = logging.StreamHandler()
    handler.setFormatter(obs.CloudLoggingFormatter("proj"))
    logging.getLogger().addHandler(handler)
    try:
        client.get("/nowhere")
    finally:
        logging.getLogger().removeHandler(handler)
    lines = [
        json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")
    ]
    entry = [e for e in lines if "httpRequest" in e][-1]
    assert entry["httpRequest"]["status"] == 404
    return entry


def test_the_log_based_metrics_read_what_the_access_log_writes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The filters and extractors of the log-based metrics, applied to real access-log lines
    the way Cloud Logging would (httpRequest lifted into the LogEntry, the rest in jsonPayload)."""
    found = log_metrics()
    duration, errors = found[metrics.REQUEST_DURATION], found[metrics.ERRORS]
    assert duration["filter"] == "${local.access_log}"
    assert errors["filter"].startswith("${local.access_log} AND ")
    locals_ = {
        k: v for b in parse(MODULES / "monitoring" / "main.tf")["locals"] for k, v in b.items()
    }
    assert 'jsonPayload.logger="imangor.request"' in locals_["access_log"]
    line = _access_log_line(capsys)
    assert line["logger"] == "imangor.request"  # -> jsonPayload.logger
    latency = re.fullmatch(
        r'REGEXP_EXTRACT\(httpRequest\.latency, "(.+)"\)', duration["value_extractor"]
    )
    assert latency, duration["value_extractor"]
    value = re.fullmatch(latency.group(1), line["httpRequest"]["latency"])
    assert value and float(value.group(1)) >= 0
    status_class = re.fullmatch(
        r'REGEXP_EXTRACT\(httpRequest\.status, "(.+)"\)', errors["label_extractors"]["status_class"]
    )
    assert status_class and re.match(status_class.group(1), str(line["httpRequest"]["status"]))
    assert "httpRequest.status>=400" in errors["filter"]


def test_the_readme_records_the_metrics_decision() -> None:
    guide = (ROOT / "infra" / "README.md").read_text()
    assert "http_request_duration_seconds" in guide and "app_errors_total" in guide
    assert "Managed Service for Prometheus" in guide
