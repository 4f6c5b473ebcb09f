"""The review's smaller findings (issue 12, item 9), each fixed in the modules and checked
here; where the answer is a decision, infra/README.md records it with its reason.

- pgAudit: its extension is created by the migration job, which connects as the schema's
  owner (a built-in user in cloudsqlsuperuser, password write-only) on every release;
- a rotated secret version is created before the old one is disabled;
- no secret version keeps its value in the state (write-only everywhere);
- a deleted upload is gone after 8 days, not ~37;
- Cloud SQL: connector enforcement, backups kept after a deletion; Redis: prevent_destroy;
- the WAF's OWASP rules: each environment commits preview or enforce.
"""

from __future__ import annotations

import copy
from typing import Any

from tests.infra.test_terraform import (
    ENVIRONMENTS,
    MODULES,
    ROOT,
    TF_FILES,
    api_call,
    blocks,
    module_resources,
)


def _all_resources() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for path in TF_FILES:
        for address, body in blocks(path, "resource").items():
            found[f"{path.parent.name}/{address}"] = body
    return found


def secret_versions_in_state(resources: dict[str, dict[str, Any]]) -> list[str]:
    """Secret versions whose value Terraform would keep in its state (secret_data)."""
    return sorted(
        address
        for address, body in resources.items()
        if "google_secret_manager_secret_version." in address and "secret_data" in body
    )


def rotations_that_destroy_first(resources: dict[str, dict[str, Any]]) -> list[str]:
    """Write-only secret versions that a new value replaces: without create_before_destroy,
    the old one is disabled before the new exists and `latest` names nothing usable."""
    return sorted(
        address
        for address, body in resources.items()
        if "google_secret_manager_secret_version." in address
        and "${" in str(body.get("secret_data_wo_version", ""))  # a literal is never rotated
        and not body.get("lifecycle", [{}])[0].get("create_before_destroy")
    )


def test_no_secret_value_is_kept_in_the_state() -> None:
    resources = _all_resources()
    assert any("google_secret_manager_secret_version." in a for a in resources)
    assert secret_versions_in_state(resources) == []
    leaky = copy.deepcopy(resources)
    leaky["redis/google_secret_manager_secret_version.url"]["secret_data"] = "${local.url}"
    assert secret_versions_in_state(leaky) == ["redis/google_secret_manager_secret_version.url"]


def test_rotations_create_the_new_version_before_the_old_one_goes() -> None:
    resources = _all_resources()
    rotated = [
        "api/google_secret_manager_secret_version.secret_key",
        "api/google_secret_manager_secret_version.db_owner_password",
        "redis/google_secret_manager_secret_version.auth",
        "redis/google_secret_manager_secret_version.url",
    ]
    for address in rotated:
        assert resources[address]["lifecycle"][0]["create_before_destroy"] is True, address
    assert rotations_that_destroy_first(resources) == []
    mutated = copy.deepcopy(resources)
    del mutated["api/google_secret_manager_secret_version.secret_key"]["lifecycle"]
    assert rotations_that_destroy_first(mutated) == [
        "api/google_secret_manager_secret_version.secret_key"
    ]


def test_pgaudit_is_on_and_its_extension_created_by_the_schema_owner() -> None:
    instance = module_resources("database")["google_sql_database_instance.main"]
    flags = {f["name"]: f["value"] for f in instance["settings"][0]["database_flags"]}
    assert flags["cloudsql.enable_pgaudit"] == "on" and flags["pgaudit.log"]
    migrate = (ROOT / "shared" / "imangor" / "migrate.py").read_text()
    assert "CREATE EXTENSION IF NOT EXISTS" in migrate and '"pgaudit"' in migrate
    api = module_resources("api")
    owner = api["google_sql_user.owner"]
    assert owner["type"] == "BUILT_IN"  # Cloud SQL makes it a member of cloudsqlsuperuser
    assert owner["password_wo"] == "${ephemeral.random_password.db_owner.result}"
    assert "password" not in owner
    version = api["google_secret_manager_secret_version.db_owner_password"]
    assert version["secret_data_wo"] == owner["password_wo"]
    assert version["secret_data_wo_version"] == owner["password_wo_version"]
    # The migration job holds the connector role only, not instanceUser (no IAM login).
    assert api["google_project_iam_member.migrate_sql"]["role"] == "roles/cloudsql.client"


def test_cloud_sql_only_takes_connector_connections_and_keeps_backups_after_deletion() -> None:
    settings = module_resources("database")["google_sql_database_instance.main"]["settings"][0]
    assert settings["connector_enforcement"] == "REQUIRED"
    assert settings["retain_backups_on_delete"] is True


def test_redis_cannot_be_replaced_by_a_plan() -> None:
    cache = module_resources("redis")["google_redis_instance.cache"]
    assert cache["lifecycle"][0]["prevent_destroy"] is True


def _default(module: str, name: str) -> Any:
    variables: dict[str, dict[str, Any]] = {}
    for path in (MODULES / module).glob("*.tf"):
        variables.update(blocks(path, "variable"))
    return variables[name]["default"]


def test_a_deleted_upload_is_gone_within_eight_days() -> None:
    bucket = module_resources("storage")["google_storage_bucket.files"]
    assert bucket["soft_delete_policy"][0]["retention_duration_seconds"] == (
        "${var.soft_delete_days * 24 * 3600}"
    )
    rules = bucket["lifecycle_rule"]
    noncurrent = [r for r in rules if "days_since_noncurrent_time" in r["condition"][0]]
    assert noncurrent[0]["condition"][0]["days_since_noncurrent_time"] == (
        "${var.noncurrent_retention_days}"
    )
    days = _default("storage", "noncurrent_retention_days") + _default(
        "storage", "soft_delete_days"
    )
    assert days <= 8


def test_each_environment_commits_its_waf_mode() -> None:
    variables = blocks(MODULES / "api" / "variables.tf", "variable")
    assert "default" not in variables["waf_preview"]  # no silent choice
    for env in ENVIRONMENTS:
        assert isinstance(api_call(env)["waf_preview"], bool), env
    guide = (ROOT / "infra" / "README.md").read_text()
    assert "waf_preview = false" in guide  # how to go from preview to enforcement
