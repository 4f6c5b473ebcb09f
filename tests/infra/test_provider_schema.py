"""The google provider's schema check (infra/tools/tf_schema.py): every google_* resource and
data block under terraform/ names a type, arguments and nested blocks the pinned provider has,
and gives every required one; the environment roots pin the provider to that schema's version.
Mutation tests write small .tf files that break each rule and expect the checker to say so.

The schema comes from the npm package pinned in infra/tools/provider-google.txt, fetched once
into .local/tools/provider-google. Without npm or the npm registry (and no cached schema) these
tests skip, saying why; a wrong pin (no such version, other content) fails them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from infra.tools import tf_schema
from infra.tools.tf_schema import Report, Schema

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM = ROOT / "terraform"
# One worker for the whole file (make test runs --dist loadgroup): the real tree is parsed once.
pytestmark = pytest.mark.xdist_group("provider-schema")
GOOGLE_BLOCK = re.compile(r'^[ \t]*(resource|data)[ \t]+"(google[\w-]*)"[ \t]+"([\w-]+)"', re.M)


@pytest.fixture(scope="module")
def schema() -> Schema:
    try:
        return tf_schema.load_schema()
    except tf_schema.SchemaUnavailable as error:
        pytest.skip(f"google provider schema unavailable: {error}")


@pytest.fixture(scope="module")
def terraform_report(schema: Schema) -> Report:
    return tf_schema.check(TERRAFORM, schema)


def check_tf(tmp_path: Path, schema: Schema, text: str) -> list[str]:
    """Findings on one .tf file written into tmp_path, as `block path: message` strings."""
    (tmp_path / "main.tf").write_text(text)
    report = tf_schema.check(tmp_path, schema, tmp_path)
    return [f"{f.block} {f.path}".rstrip() + f": {f.message}" for f in report.findings]


# ---- the real Terraform -----------------------------------------------------------------


def test_terraform_matches_the_provider_schema(terraform_report: Report) -> None:
    findings = "\n".join(str(finding) for finding in terraform_report.findings)
    assert not terraform_report.findings, f"provider schema findings:\n{findings}"


def test_every_google_block_is_checked(terraform_report: Report) -> None:
    """The check is not vacuous: it saw each google block the files declare (and the providers)."""
    declared = [
        f"{kind} {type_name}.{name}"
        for path in tf_schema.tf_files(TERRAFORM)
        for kind, type_name, name in GOOGLE_BLOCK.findall(path.read_text())
    ]
    checked = [block for block in terraform_report.checked if not block.startswith("provider ")]
    assert sorted(checked) == sorted(declared)
    assert len(declared) > 50
    assert terraform_report.checked.count("provider google") == 2  # one per environment


def test_environments_pin_the_provider_version_of_the_schema(schema: Schema) -> None:
    pin = tf_schema.read_pin()
    assert schema.package == pin.spec and schema.integrity == pin.integrity
    assert schema.provider_source == "hashicorp/google"
    environments = sorted(p for p in (TERRAFORM / "environments").iterdir() if p.is_dir())
    assert [p.name for p in environments] == ["dev", "prod"]
    for environment in environments:
        pins = tf_schema.google_pins(environment)
        assert [constraint for _path, constraint in pins] == [schema.provider_version], environment


# ---- mutations: each failure is reported ------------------------------------------------

BUCKET = """
resource "google_storage_bucket" "uploads" {
  name     = "b"
  location = "EU"
%s
}
"""


def test_unknown_types_are_reported(tmp_path: Path, schema: Schema) -> None:
    findings = check_tf(
        tmp_path,
        schema,
        """
resource "google_storage_buckit" "uploads" {
  name     = "b"
  location = "EU"
}
data "google_projekt" "this" {}
data "google_storage_bucket" "also_a_data_source" { name = "b" }
""",
    )
    assert findings == [
        "resource google_storage_buckit.uploads: unknown resource type google_storage_buckit "
        "(did you mean google_storage_bucket?)",
        "data google_projekt.this: unknown data source google_projekt "
        "(did you mean google_project?)",
    ]


def test_unknown_arguments_and_blocks_are_reported(tmp_path: Path, schema: Schema) -> None:
    """At any depth, in blocks and in `dynamic` blocks' content."""
    findings = check_tf(
        tmp_path,
        schema,
        """
resource "google_storage_bucket" "uploads" {
  name       = "b"
  location   = "EU"
  retention  = 7
  versioning {
    enabled  = true
    keep_for = 3
  }
  lifecycle_rule {
    action { type = "Delete" }
    condition {
      age      = 3
      older_by = 1
    }
  }
  no_such_block {
    x = 1
  }
}
resource "google_cloud_run_v2_service" "unit" {
  name     = "s"
  location = "europe-west1"
  template {
    containers {
      image = "i"
      env {
        name = "A"
        value_source {
          secret_key_ref {
            secret   = "s"
            version  = "latest"
            optional = true
          }
        }
      }
    }
    dynamic "volumes" {
      for_each = var.volumes
      content {
        name = volumes.key
        bogus_disk {}
      }
    }
  }
}
""",
    )
    assert findings == [
        "resource google_storage_bucket.uploads: unknown argument retention",
        "resource google_storage_bucket.uploads versioning: unknown argument keep_for",
        "resource google_storage_bucket.uploads lifecycle_rule.condition: "
        "unknown argument older_by",
        "resource google_storage_bucket.uploads: unknown block no_such_block",
        "resource google_cloud_run_v2_service.unit template.containers.env.value_source"
        ".secret_key_ref: unknown argument optional",
        "resource google_cloud_run_v2_service.unit template.volumes: unknown block bogus_disk",
    ]


def test_missing_required_arguments_and_blocks_are_reported(tmp_path: Path, schema: Schema) -> None:
    findings = check_tf(
        tmp_path,
        schema,
        """
resource "google_storage_bucket" "uploads" {
  name = "b"
  lifecycle_rule {
    condition { age = 3 }
  }
}
resource "google_cloud_run_v2_service" "unit" {
  name     = "s"
  location = "europe-west1"
  template {
    containers {
      env { value = "no name" }
    }
  }
}
resource "google_secret_manager_secret_iam_member" "reader" {
  secret_id = "s"
  role      = "roles/secretmanager.secretAccessor"
}
""",
    )
    assert findings == [
        "resource google_storage_bucket.uploads lifecycle_rule: missing required block action",
        "resource google_storage_bucket.uploads: missing required argument location",
        "resource google_cloud_run_v2_service.unit template.containers.env: "
        "missing required argument name",
        "resource google_cloud_run_v2_service.unit template.containers: "
        "missing required argument image",
        "resource google_secret_manager_secret_iam_member.reader: missing required argument member",
    ]


def test_a_dynamic_block_counts_as_present_and_its_content_is_checked(
    tmp_path: Path, schema: Schema
) -> None:
    template = """
resource "google_cloud_run_v2_service" "unit" {
  name     = "s"
  location = "europe-west1"
  dynamic "template" {
    for_each = [1]
    content {
      dynamic "containers" {
        for_each = var.images
        iterator = image
        content { %s }
      }
    }
  }
}
"""
    assert check_tf(tmp_path, schema, template % "image = image.value") == []
    assert check_tf(tmp_path, schema, template % "imag = image.value") == [
        "resource google_cloud_run_v2_service.unit template.containers: "
        "unknown argument imag (did you mean image?)",
        "resource google_cloud_run_v2_service.unit template.containers: "
        "missing required argument image",
    ]
    dynamic_labels = 'dynamic "labels" {\n for_each = {}\n content {}\n}'
    assert check_tf(tmp_path, schema, BUCKET % dynamic_labels) == [
        "resource google_storage_bucket.uploads: "
        'dynamic "labels": labels is an argument, not a block'
    ]


def test_meta_arguments_are_allowed_only_at_the_top(tmp_path: Path, schema: Schema) -> None:
    meta = """
  count      = 1
  provider   = google
  depends_on = [google_project_service.storage]
  lifecycle {
    prevent_destroy = true
  }
"""
    assert check_tf(tmp_path, schema, BUCKET % meta) == []
    assert check_tf(tmp_path, schema, BUCKET % "versioning {\n enabled = true\n count = 1\n}") == [
        "resource google_storage_bucket.uploads versioning: unknown argument count"
    ]


def test_an_argument_written_as_a_block_is_reported(tmp_path: Path, schema: Schema) -> None:
    assert check_tf(tmp_path, schema, BUCKET % 'labels {\n a = "b"\n}') == [
        "resource google_storage_bucket.uploads: labels is an argument (`labels = …`), not a block"
    ]


def test_provider_blocks_and_beta_resources_are_checked(tmp_path: Path, schema: Schema) -> None:
    findings = check_tf(
        tmp_path,
        schema,
        """
provider "google" {
  project = "p"
  region  = "europe-west1"
  zone_id = "x"
}
resource "google_storage_bucket" "beta" {
  provider = google-beta
  name     = "b"
  location = "EU"
}
""",
    )
    assert findings == [
        "resource google_storage_bucket.beta: "
        "uses google-beta, whose schema is not pinned or checked",
        "provider google: unknown argument zone_id",
    ]


def test_an_environment_not_pinned_to_the_schema_version_is_reported(
    tmp_path: Path, schema: Schema
) -> None:
    for name, constraint in (("dev", "~> 6.30"), ("prod", "= 6.50.0"), ("test", None)):
        root = tmp_path / "environments" / name
        root.mkdir(parents=True)
        version = f', version = "{constraint}"' if constraint else ""
        google = f'google = {{ source = "hashicorp/google"{version} }}' if name != "test" else ""
        text = f"terraform {{\n  required_providers {{\n    {google}\n  }}\n}}\n"
        (root / "main.tf").write_text(text)
    report = tf_schema.check(tmp_path, schema, tmp_path)
    assert [(str(f.file), f.message.split(" (")[0]) for f in report.findings] == [
        ("environments/dev/main.tf", "google is pinned to '~> 6.30', not exactly '6.50.0'"),
        ("environments/test/main.tf", "google is not in required_providers"),
    ]


# ---- fetching ---------------------------------------------------------------------------


def test_an_unreachable_registry_means_unavailable_not_failed(tmp_path: Path) -> None:
    """What makes the tests above skip: npm pack against a registry nobody answers (port 9)."""
    pin = tf_schema.read_pin()
    env = {
        "PATH": sys.exec_prefix + "/bin:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "npm_config_registry": "http://127.0.0.1:9/",
        "npm_config_cache": str(tmp_path / "npm-cache"),
    }
    started = time.monotonic()
    with pytest.raises(tf_schema.SchemaUnavailable, match=r"registry unreachable|npm is not"):
        tf_schema.fetch_package(pin, tmp_path / "out", env, retries=0)
    assert time.monotonic() - started < 60
    assert not list((tmp_path / "out").glob("*.tgz"))


def test_the_cli_prints_findings_and_fails(tmp_path: Path, schema: Schema) -> None:
    (tmp_path / "main.tf").write_text(BUCKET % "retention = 7")
    result = subprocess.run(
        [sys.executable, "-m", "infra.tools.tf_schema", str(tmp_path)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    line = "main.tf:2: resource google_storage_bucket.uploads: unknown argument retention"
    assert result.stdout.splitlines() == [line]
    assert f"1 block(s) checked against hashicorp/google {schema.provider_version}" in result.stderr
