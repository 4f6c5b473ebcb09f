"""infra/README.md takes an engineer from an empty project to dev and prod (issue 12,
item 10): everything it names exists. Each make target, `terraform output` field,
Terraform input (`name = value`, `site.x`), script and subcommand, Cloud Build
substitution and imangor-ENV-* resource name it mentions is checked against the Makefile,
the modules, the tools and cloudbuild.yaml; every $VARIABLE its shell blocks use is set
first. A mutated guide naming what does not exist is caught."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from tests.infra.test_terraform import MODULES, ROOT, TF_FILES, blocks, inventory, parse

GUIDE = ROOT / "infra" / "README.md"


@cache
def make_targets() -> frozenset[str]:
    text = (ROOT / "Makefile").read_text()
    found: set[str] = set()
    for match in re.finditer(r"^([a-z][a-z -]*):", text, re.M):
        found |= set(match.group(1).split())
    return frozenset(found)


@cache
def api_outputs() -> frozenset[str]:
    return frozenset(blocks(MODULES / "api" / "outputs.tf", "output"))


@cache
def api_inputs() -> frozenset[str]:
    """modules/api's variables and the fields of its object variables (site.mail.smtp_host,
    database.tier, jwt.key_id...), by their last name."""
    variables = blocks(MODULES / "api" / "variables.tf", "variable")
    names = set(variables)
    for body in variables.values():
        names |= set(re.findall(r"(\w+)\s+=", str(body.get("type", ""))))
    return frozenset(names)


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        found = set(value)
        for inner in value.values():
            found |= _keys(inner)
        return found
    if isinstance(value, list):
        return set().union(*(_keys(v) for v in value)) if value else set()
    return set()


@cache
def resource_arguments() -> frozenset[str]:
    """Every argument or block name any resource of the modules sets."""
    found: set[str] = set()
    for path in TF_FILES:
        for body in blocks(path, "resource").values():
            found |= _keys(body)
    return frozenset(found)


@cache
def site_fields() -> frozenset[str]:
    site = blocks(MODULES / "api" / "variables.tf", "variable")["site"]["type"]
    return frozenset(re.findall(r"(\w+)\s+=", site))


@cache
def resource_suffixes() -> frozenset[str]:
    """What Terraform names imangor-ENV-<suffix>: from `name_prefix}-...` in the modules, the
    units, and the registry module's per-unit names."""
    found = set(inventory()["units"])
    for path in TF_FILES:
        found |= set(re.findall(r"name_prefix\}-([a-z][a-z0-9-]*[a-z0-9])", path.read_text()))
    redis = "redis"
    found |= {f"{redis}-auth", f"{redis}-url"}  # the redis module's ${var.name}-auth / -url
    return frozenset(found)


def subcommands(script: Path) -> set[str]:
    return set(re.findall(r'add_parser\("([a-z-]+)"', script.read_text()))


SHELL_BUILTIN_VARIABLES = {"PATH", "HOME"}
# Names the guide's own commands create (a point-in-time clone), not Terraform.
CREATED_BY_THE_GUIDE = {"pg-restore"}


def shell_blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", text, re.S)


def unknown_names(text: str) -> list[str]:
    """What the guide names that does not exist (empty: everything does)."""
    problems: list[str] = []
    for target in re.findall(r"`make ([a-z][a-z-]*)", text):
        if target not in make_targets():
            problems.append(f"make {target}")
    for output in re.findall(r"jq (?:-r )?\.(\w+)", text):
        if output not in api_outputs():
            problems.append(f"output {output}")
    for name in re.findall(r"`([a-z][a-z0-9_]*) = [^`]*`", text):
        if name not in api_inputs() and name not in resource_arguments():
            problems.append(f"input {name}")
    for path in re.findall(r"\bsite\.([a-z_]+)", text):
        if path not in site_fields():
            problems.append(f"site.{path}")
    for script, sub in re.findall(r"(infra/tools/[a-z_]+\.py)(?: ([a-z][a-z-]*))?", text):
        file = ROOT / script
        if not file.exists():
            problems.append(script)
        elif sub and sub not in subcommands(file):
            problems.append(f"{script} {sub}")
    for module in re.findall(r"python3? -m (infra\.[a-z_.]+|imangor\.[a-z_.]+)", text):
        parts = module.split(".")
        base = ROOT / "shared" if parts[0] == "imangor" else ROOT
        if not (
            base.joinpath(*parts).with_suffix(".py").exists() or base.joinpath(*parts).is_dir()
        ):
            problems.append(f"python -m {module}")
    substitutions = set(yaml.safe_load((ROOT / "cloudbuild.yaml").read_text())["substitutions"])
    for name in re.findall(r"`(_[A-Z][A-Z_]+)`", text):
        if name not in substitutions:
            problems.append(f"substitution {name}")
    for suffix in re.findall(r"imangor-(?:ENV|\$ENV|dev|prod)-([a-z][a-z0-9-]*[a-z0-9])", text):
        if suffix not in resource_suffixes() and suffix not in CREATED_BY_THE_GUIDE:
            problems.append(f"imangor-ENV-{suffix}")
    return sorted(set(problems))


def unset_shell_variables(text: str) -> list[str]:
    """$VARIABLES a shell block uses that neither the guide's exports nor the block set."""
    blocks_ = shell_blocks(text)
    exported: set[str] = set()
    for block in blocks_:
        for line in block.splitlines():
            if line.strip().startswith("export "):
                exported |= set(re.findall(r"\b([A-Z_][A-Z0-9_]*)=", line))
    missing = set()
    for block in blocks_:
        assigned = set(re.findall(r"\b([A-Za-z_]\w*)=", block))
        assigned |= set(re.findall(r"\bread -rs (\w+)", block))
        assigned |= set(re.findall(r"\bfor (\w+) in\b", block))
        used = set(re.findall(r"\$\{?([A-Za-z_]\w*)", block))
        missing |= used - assigned - exported - SHELL_BUILTIN_VARIABLES
    return sorted(missing)


def test_everything_the_guide_names_exists() -> None:
    text = GUIDE.read_text()
    assert unknown_names(text) == []


def test_every_shell_variable_of_the_guide_is_set_first() -> None:
    text = GUIDE.read_text()
    assert unset_shell_variables(text) == []
    assert "export DEV_PROJECT=" in text and "REGION=" in text


def test_a_guide_naming_what_does_not_exist_is_caught() -> None:
    text = GUIDE.read_text()
    mutated = (
        text
        + "\nRun `make deploy`, read `terraform output -json api | jq -r .database_password`,"
        + " set `canary_percent = 10` and `site.github`, run"
        + " `python3 infra/tools/release.py promote` and `python3 infra/tools/bootstrap.py`,"
        + " set `_CANARY` and read imangor-ENV-admin-password.\n"
        + "```sh\ngcloud sql instances describe x --zone=$ZONE\n```\n"
    )
    assert unknown_names(mutated) == [
        "imangor-ENV-admin-password",
        "infra/tools/bootstrap.py",
        "infra/tools/release.py promote",
        "input canary_percent",
        "make deploy",
        "output database_password",
        "site.github",
        "substitution _CANARY",
    ]
    assert unset_shell_variables(mutated) == ["ZONE"]


def test_the_guide_covers_every_bootstrap_step() -> None:
    """From zero: APIs, state bucket, first apply, secrets, migrations and grants by a Cloud
    Run job (no VM), dev and prod triggers, prod approval, rollback."""
    text = GUIDE.read_text()
    section = text[text.index("## Bootstrap from zero") : text.index("## Everyday Terraform")]
    for needle in (
        "gcloud services enable",
        "-tfstate",
        "terraform apply",
        "gcloud secrets create",
        "imangor-ENV-migrate",
        "gcloud builds triggers run",
        "gcloud builds approve",
        "roles/cloudbuild.builds.approver",
        "Rollback",
    ):
        assert needle in section, needle
    assert "Cloud SQL Auth Proxy" not in text and "machine in the VPC" not in text
    assert parse(MODULES / "api" / "main.tf")  # the module the guide drives
