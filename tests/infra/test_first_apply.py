"""The first `terraform apply` of an environment works (issue 12, item 1), read from the .tf
files as a plan would order them, since the providers cannot run here:

- every secret a revision or job mounts has a version before the revision starts: Terraform
  writes it (write-only, never in state), Memorystore's AUTH feeds it, or ops create it with
  its first version at bootstrap (a data source then reads its metadata, and a missing one
  stops the plan before anything is created);
- every secret grant depends on the secret resource, not on a plain string id;
- revisions and jobs wait for their IAM grants to propagate;
- alerts on a log-based metric wait until Cloud Monitoring accepts the metric.

Each rule is a function returning what breaks it, run on the real modules and on a mutated
copy that must be caught.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from tests.infra.test_terraform import ENVIRONMENTS, MODULES, ROOT, TERRAFORM, blocks, parse

API = MODULES / "api" / "main.tf"
GUIDE = ROOT / "infra" / "README.md"
REF = re.compile(r"(data\.)?(google_secret_manager_secret)\.(\w+)|module\.redis\.(\w+)")


def _resolve(expression: str, locals_: dict[str, Any]) -> str:
    """An expression with `local.X` replaced by the local's own expression (one level deep
    is all this module uses)."""
    return re.sub(
        r"local\.(\w+)", lambda m: str(locals_.get(m.group(1), m.group(0))), str(expression)
    )


def mounted_secret_sources(api: dict[str, Any]) -> dict[str, str]:
    """Each secret the registry module hands to units and jobs (platform.*_secret), with the
    expression it comes from, locals resolved."""
    platform = next(b["registry"] for b in api["module"] if "registry" in b)["platform"]
    locals_ = {k: v for block in api["locals"] for k, v in block.items()}
    found = {k: v for k, v in platform.items() if k.endswith("_secret")}
    found["jwt.private_key_secret"] = platform["jwt"]["private_key_secret"]
    return {name: _resolve(expr, locals_) for name, expr in found.items()}


def _redis_output_is_a_versioned_secret(output: str) -> bool:
    redis = blocks(MODULES / "redis" / "outputs.tf", "output")
    value = str(redis[output]["value"])
    match = re.search(r"google_secret_manager_secret\.(\w+)\.", value)
    if not match:
        return False
    resources = {}
    for path in (MODULES / "redis").glob("*.tf"):
        resources.update(blocks(path, "resource"))
    version = resources.get(f"google_secret_manager_secret_version.{match.group(1)}", {})
    return f"google_secret_manager_secret.{match.group(1)}.id" in str(version.get("secret"))


def secrets_without_a_first_version(api: dict[str, Any], guide: str) -> list[str]:
    """Mounted secrets that a revision could find without any version: a plain string id (no
    dependency on the secret), a managed secret without a version resource, or a secret ops
    supply that the bootstrap guide does not create with its first version."""
    resources = {
        f"{kind}.{name}": body
        for block in api.get("resource", [])
        for kind, named in block.items()
        for name, body in named.items()
    }
    data = {
        f"{kind}.{name}": body
        for block in api.get("data", [])
        for kind, named in block.items()
        for name, body in named.items()
    }
    broken = []
    for name, expression in mounted_secret_sources(api).items():
        match = REF.search(expression)
        if match is None:
            broken.append(f"{name}: a plain string, not the secret resource")
        elif match.group(4):  # module.redis.<output>
            if not _redis_output_is_a_versioned_secret(match.group(4)):
                broken.append(f"{name}: module.redis.{match.group(4)} has no version")
        elif match.group(1):  # a data source: created at bootstrap, with its first version
            body = data[f"google_secret_manager_secret.{match.group(3)}"]
            locals_ = {k: v for b in api["locals"] for k, v in b.items()}
            # secret_id = "${local.x}", local x = "${local.name_prefix}-smtp-password"
            local = re.fullmatch(r"\$\{local\.(\w+)\}", str(body["secret_id"]))
            suffix = str(locals_[local.group(1)] if local else body["secret_id"]).split("}-")[-1]
            if not re.search(rf"gcloud secrets create imangor-[$\w]+-{re.escape(suffix)}\b", guide):
                broken.append(f"{name}: infra/README.md never creates *-{suffix} at bootstrap")
        else:
            version = resources.get(f"google_secret_manager_secret_version.{match.group(3)}")
            if version is None or f"google_secret_manager_secret.{match.group(3)}" not in str(
                version.get("secret")
            ):
                broken.append(
                    f"{name}: google_secret_manager_secret.{match.group(3)} has no version"
                )
            elif "secret_data_wo" not in version:
                broken.append(
                    f"{name}: its version is not write-only (the value would be in state)"
                )
    return sorted(broken)


def test_every_mounted_secret_has_a_version_before_any_revision_starts() -> None:
    api = parse(API)
    sources = mounted_secret_sources(api)
    assert {"secret_key_secret", "smtp_password_secret", "jwt.private_key_secret"} <= set(sources)
    assert secrets_without_a_first_version(api, GUIDE.read_text()) == []


def test_a_secret_without_its_version_or_bootstrap_step_is_caught() -> None:
    api = parse(API)
    guide = GUIDE.read_text()
    # The mutation of the issue: a managed secret with no version (as SMTP_PASSWORD was).
    no_version = copy.deepcopy(api)
    no_version["resource"] = [
        b
        for b in no_version["resource"]
        if "google_secret_manager_secret_version" not in b
        or "secret_key" not in b["google_secret_manager_secret_version"]
    ]
    assert secrets_without_a_first_version(no_version, guide) == [
        "secret_key_secret: google_secret_manager_secret.secret_key has no version"
    ]
    # A plain string id: the grant would not wait for the secret.
    plain = copy.deepcopy(api)
    for block in plain["locals"]:
        if "smtp_password_secret" in block:
            block["smtp_password_secret"] = "${local.smtp_password_secret_id}"
    assert secrets_without_a_first_version(plain, guide) == [
        "smtp_password_secret: a plain string, not the secret resource"
    ]
    # A secret ops supply that the guide forgets to create.
    forgotten = guide.replace("gcloud secrets create imangor-", "gcloud secrets describe imangor-")
    assert secrets_without_a_first_version(api, forgotten) == [
        "jwt.private_key_secret: infra/README.md never creates *-jwt-private-key at bootstrap",
        "smtp_password_secret: infra/README.md never creates *-smtp-password at bootstrap",
    ]


def _module_resources(module: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for path in sorted((MODULES / module).glob("*.tf")):
        found.update(blocks(path, "resource"))
    return found


# Grants a revision or an execution does not need at start: who may deploy it.
NOT_NEEDED_AT_START = {"google_service_account_iam_member.deployer_act_as"}


def grants_not_waited_for(resources: dict[str, dict[str, Any]], workload: str) -> list[str]:
    """IAM grants of a unit/job module that its service/job is created without waiting for:
    each must be in time_sleep.iam_propagation's triggers, and the workload must depend on
    that wait."""
    wait = resources.get("time_sleep.iam_propagation")
    if wait is None:
        return ["no time_sleep.iam_propagation"]
    triggers = str(wait.get("triggers"))
    missing = [
        address
        for address in resources
        if "_iam_member." in address
        and address not in NOT_NEEDED_AT_START
        and address not in triggers
    ]
    if "${time_sleep.iam_propagation}" not in resources[workload].get("depends_on", []):
        missing.append(f"{workload} does not depend on time_sleep.iam_propagation")
    return sorted(missing)


def test_revisions_and_jobs_wait_for_their_grants_to_propagate() -> None:
    unit = _module_resources("unit")
    assert grants_not_waited_for(unit, "google_cloud_run_v2_service.unit") == []
    assert "${google_sql_user.unit}" in unit["google_cloud_run_v2_service.unit"]["depends_on"]
    job = _module_resources("job")
    assert grants_not_waited_for(job, "google_cloud_run_v2_job.job") == []
    assert unit["time_sleep.iam_propagation"]["create_duration"] == "${var.iam_propagation_wait}"


def test_a_grant_left_out_of_the_wait_is_caught() -> None:
    unit = _module_resources("unit")
    mutated = copy.deepcopy(unit)
    wait = mutated["time_sleep.iam_propagation"]["triggers"]
    wait["grants"] = wait["grants"].replace("google_project_iam_member.sql_client[*].id, ", "")
    assert grants_not_waited_for(mutated, "google_cloud_run_v2_service.unit") == [
        "google_project_iam_member.sql_client"
    ]
    mutated["google_cloud_run_v2_service.unit"]["depends_on"] = []
    assert grants_not_waited_for(mutated, "google_cloud_run_v2_service.unit") == [
        "google_cloud_run_v2_service.unit does not depend on time_sleep.iam_propagation",
        "google_project_iam_member.sql_client",
    ]


def alerts_on_unwaited_log_metrics(resources: dict[str, dict[str, Any]]) -> list[str]:
    """Alert policies that read a log-based metric without going through the wait (so they
    could be created before Cloud Monitoring accepts the metric), and log-based metrics the
    wait does not cover."""
    wait = resources.get("time_sleep.log_metrics", {})
    triggers = wait.get("triggers", {})
    broken = [
        f"{address} is not waited for"
        for address, body in resources.items()
        if address.startswith("google_logging_metric.")
        and f"google_logging_metric.{address.split('.')[1]}.name" not in str(triggers)
    ]
    for address, body in resources.items():
        if not address.startswith("google_monitoring_alert_policy."):
            continue
        text = str(body)
        if "logging.googleapis.com/user/" in text or "google_logging_metric." in text:
            broken.append(f"{address} reads a log-based metric directly")
    return sorted(broken)


def test_alerts_on_log_based_metrics_wait_for_the_metric() -> None:
    monitoring = _module_resources("monitoring")
    assert any(a.startswith("google_logging_metric.") for a in monitoring)
    assert alerts_on_unwaited_log_metrics(monitoring) == []
    waiting = [
        a
        for a, body in monitoring.items()
        if a.startswith("google_monitoring_alert_policy.") and "time_sleep.log_metrics" in str(body)
    ]
    assert "google_monitoring_alert_policy.dead_tasks" in waiting


def test_an_alert_created_right_after_its_metric_is_caught() -> None:
    monitoring = copy.deepcopy(_module_resources("monitoring"))
    condition = monitoring["google_monitoring_alert_policy.dead_tasks"]["conditions"][0]
    threshold = condition["condition_threshold"][0]
    threshold["filter"] = threshold["filter"].replace(
        '${time_sleep.log_metrics.triggers["tasks_dead"]}',
        "logging.googleapis.com/user/${google_logging_metric.tasks_dead.name}",
    )
    assert alerts_on_unwaited_log_metrics(monitoring) == [
        "google_monitoring_alert_policy.dead_tasks reads a log-based metric directly"
    ]


def test_environment_roots_pin_the_time_provider() -> None:
    for env in ENVIRONMENTS:
        settings = parse(TERRAFORM / "environments" / env / "main.tf")["terraform"][0]
        time = settings["required_providers"][0]["time"]
        assert time["source"] == "hashicorp/time" and time["version"].startswith("~> 0.")
    for module in ("api", "unit", "job", "monitoring"):
        providers = parse(MODULES / module / "main.tf")["terraform"][0]["required_providers"][0]
        assert providers["time"]["source"] == "hashicorp/time", module


def test_the_guide_never_puts_a_secret_value_on_a_command_line() -> None:
    """Secret values reach gcloud on stdin (--data-file=-), never as an argument that shell
    history and process listings keep."""
    guide = GUIDE.read_text().replace("\\\n", " ")  # join continued shell lines
    for line in guide.splitlines():
        if "gcloud secrets create" in line or "gcloud secrets versions add" in line:
            assert "--data-file=" in line, line
