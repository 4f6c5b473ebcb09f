"""The seed's security scanning, complete (issue 13 item 9), checked without a cloud account:

- secrets: detect-secrets against the committed baseline runs in `make test`
  (tests/test_secrets.py), which Cloud Build's lint-and-test step runs;
- dependencies: pip-audit --strict on the lock (the `audit` step, test_delivery.py);
- the image: the `scan` step gates migrate and deploy on Artifact Registry's scan of the
  digest (release.py scan, driven against a fake gcloud in test_release.py);
- DAST: the `dast` step runs schemathesis in the DAST job against the tagged, traffic-less
  revisions before `release` moves traffic: only reads and the public sign-in calls whose
  generated credentials match nobody, since in prod it runs on production data.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from infra.tools import release
from tests.infra.test_delivery import CLOUDBUILD, build, steps, upstream
from tests.infra.test_terraform import MODULES, ROOT, TF_FILES, blocks, inventory, parse

DAST_SCRIPT = MODULES / "api" / "dast.sh"
OPENAPI = ROOT / "functions" / "docs" / "openapi.json"
# Public calls that change data whatever they are sent: the DAST pass must never make them.
CREATES_OR_MAILS = {"POST /auth/register", "POST /auth/password-recovery"}


def document() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(OPENAPI.read_text())
    return data


def operations() -> dict[str, dict[str, Any]]:
    """operationId -> {"route": "METHOD /path", "operation": ...} of the committed document."""
    found = {}
    for path, methods in document()["paths"].items():
        for method, operation in methods.items():
            if isinstance(operation, dict) and "operationId" in operation:
                route = f"{method.upper()} {path}"
                found[operation["operationId"]] = {"route": route, "operation": operation}
    return found


# ---- secrets ---------------------------------------------------------------------------------


def test_secrets_are_scanned_by_make_test_which_cloud_build_runs() -> None:
    makefile = (ROOT / "Makefile").read_text()
    target = makefile[makefile.index("\ntest:") : makefile.index("\ntest-fast:")]
    pytest_line = next(line for line in target.splitlines() if "pytest" in line)
    assert " -m " not in pytest_line and "--ignore" not in pytest_line  # the whole suite
    assert (ROOT / "tests" / "test_secrets.py").is_file()
    assert (ROOT / ".secrets.baseline").is_file()
    lint = steps()["lint-and-test"]["script"]
    assert "make test" in lint and re.search(r"apt-get install .*\bgit\b", lint)
    header = CLOUDBUILD.read_text().split("\nsubstitutions:")[0]
    assert "tests/test_secrets.py" in header and ".secrets.baseline" in header
    assert "pip-audit --strict" in header


# ---- the image scan gate ---------------------------------------------------------------------


def test_the_image_scan_runs_after_digest_and_gates_migrate_and_deploy() -> None:
    all_steps = steps()
    assert "digest" in upstream("scan", all_steps)
    for later in ("migrate", "deploy-no-traffic", "smoke-test", "dast", "release"):
        assert "scan" in upstream(later, all_steps), later
    script = all_steps["scan"]["script"]
    assert 'release.py scan --image="$(cat /workspace/image)"' in script
    assert "skip-build" not in script  # re-runs and promoted digests are scanned too
    assert '--max-severity="$_MAX_SEVERITY"' in script
    assert '--timeout="$_SCAN_TIMEOUT"' in script and '--accept="$_ACCEPT_CVES"' in script
    substitutions = build()["substitutions"]
    assert substitutions["_MAX_SEVERITY"] == "HIGH"  # a CRITICAL finding refuses
    assert substitutions["_ACCEPT_CVES"] == ""  # the override is per build, never standing
    assert 0 < int(substitutions["_SCAN_TIMEOUT"]) <= 1800


def deployer_roles() -> set[str]:
    grant = blocks(MODULES / "api" / "main.tf", "resource")["google_project_iam_member.deployer"]
    return set(re.findall(r'"(roles/[^"]+)"', grant["for_each"]))


def test_the_deployer_may_read_image_scans_and_nothing_more() -> None:
    roles = deployer_roles()
    assert {"roles/containeranalysis.occurrences.viewer"} <= roles
    assert "roles/serviceusage.serviceUsageViewer" in roles  # gcloud's describe checks the API
    assert not [r for r in roles if re.search(r"containeranalysis\.(admin|editor)|\.admin$", r)]
    # Promoting environments read the source project's scan metadata the same way.
    resources = blocks(MODULES / "api" / "main.tf", "resource")
    for name, role in (
        ("reader_occurrences", "roles/containeranalysis.occurrences.viewer"),
        ("reader_service_usage", "roles/serviceusage.serviceUsageViewer"),
    ):
        grant = resources[f"google_project_iam_member.{name}"]
        assert grant["for_each"] == "${toset(var.site.image_readers)}"
        assert (grant["role"], grant["member"]) == (role, "${each.value}")


def test_the_bootstrap_enables_container_scanning_in_one_place() -> None:
    guide = (ROOT / "infra" / "README.md").read_text()
    enabled = re.search(r"gcloud services enable --project=\$PROJECT \\\n(.*?)```", guide, re.S)
    assert enabled, "the bootstrap's one `gcloud services enable` list"
    apis = set(re.findall(r"([a-z]+\.googleapis\.com)", enabled.group(1)))
    assert {"containerscanning.googleapis.com", "containeranalysis.googleapis.com"} <= apis
    assert guide.count("gcloud services enable") == 1
    for path in TF_FILES:  # Terraform does not manage APIs (a plan never disables one)
        assert "google_project_service" not in path.read_text(), path


# ---- DAST --------------------------------------------------------------------------------------


def unsafe_dast_routes(plan: dict[str, list[str]]) -> list[str]:
    """Routes the DAST plan would call that could change data: anything but GET, unless it
    is public, listed with its reason in DAST_WRITES and not one that creates or mails."""
    ops = operations()
    unsafe = []
    for ids in plan.values():
        for operation_id in ids:
            route = ops[operation_id]["route"]
            if route.startswith("GET "):
                continue
            public = not ops[operation_id]["operation"].get("security")
            if not public or route not in release.DAST_WRITES or route in CREATES_OR_MAILS:
                unsafe.append(route)
    return sorted(unsafe)


def test_dast_exercises_every_read_and_only_calls_that_write_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plan = release.dast_operations(inventory(), document())
    ops = operations()
    assert unsafe_dast_routes(plan) == []
    exercised = {ops[i]["route"] for ids in plan.values() for i in ids}
    public_units = {n for n, u in inventory()["units"].items() if not u["internal"]}
    for unit in public_units:
        for route in inventory()["units"][unit]["routes"]:
            method, _, path = route.partition(" ")
            if method == "GET" and method.lower() in document()["paths"].get(path, {}):
                assert route in exercised, f"{route} is not exercised"
    assert set(release.DAST_WRITES) <= exercised  # the allow-list names real operations
    assert not exercised & CREATES_OR_MAILS
    assert set(plan) <= public_units  # tasks and cron are never called
    # The mutation: allowing registration (it creates accounts) is caught.
    monkeypatch.setitem(release.DAST_WRITES, "POST /auth/register", "creates an account")
    assert unsafe_dast_routes(release.dast_operations(inventory(), document())) == [
        "POST /auth/register"
    ]


def tagged_describe(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "status": {
            "url": f"https://{name}-xyz.a.run.app",
            "traffic": [
                {"percent": 100, "revisionName": f"{name}-00001", "tag": "c-old0000"},
                {"tag": "c-abc1234", "url": f"https://c-abc1234---{name}-xyz.a.run.app/"},
            ],
        },
    }


def test_dast_args_point_at_the_tagged_revisions_of_each_public_unit() -> None:
    args = release.dast_args(inventory(), document(), "imangor-dev", "c-abc1234", tagged_describe)
    assert args[0] == "https://c-abc1234---imangor-dev-docs-xyz.a.run.app/openapi.json"
    pairs = dict(zip(args[1::2], args[2::2], strict=True))
    plan = release.dast_operations(inventory(), document())
    assert set(pairs) == {f"https://c-abc1234---imangor-dev-{u}-xyz.a.run.app" for u in plan}
    every_id = list(operations())
    for unit, ids in plan.items():
        regex = re.compile(pairs[f"https://c-abc1234---imangor-dev-{unit}-xyz.a.run.app"])
        # schemathesis matches --include-operation-id-regex with re.search.
        assert sorted(i for i in every_id if regex.search(i)) == ids, unit
    assert not [a for a in args if "," in a]  # gcloud --args is comma-separated
    assert not [a for a in args if "-old0000" in a or a.startswith("https://imangor")]
    with pytest.raises(LookupError, match="tagged c-new"):
        release.dast_args(inventory(), document(), "imangor-dev", "c-new", tagged_describe)


def test_dast_runs_after_the_smoke_test_and_before_traffic_moves() -> None:
    all_steps = steps()
    assert {"smoke-test", "deploy-no-traffic"} <= upstream("dast", all_steps)
    assert {"dast", "scan"} <= upstream("release", all_steps)
    script = all_steps["dast"]["script"]
    assert re.search(r'release\.py dast-args\s+\\\s+--prefix="\$_SERVICE_PREFIX"', script)
    assert '--tag="c-$SHORT_SHA"' in script
    assert re.search(
        r'gcloud run jobs update "\$_SERVICE_PREFIX-dast" .*--image="\$_DAST_IMAGE"', script, re.S
    )
    assert re.search(
        r'gcloud run jobs execute "\$_SERVICE_PREFIX-dast" .*--wait\s+\\\s+--args="\$targets"',
        script,
        re.S,
    )


def test_nothing_gets_traffic_before_the_scan_and_dast_pass() -> None:
    """Only `release` moves traffic, and it waits for both; before it, revisions are
    deployed with --no-traffic only."""
    all_steps = steps()
    for step_id, step in all_steps.items():
        script = step.get("script", "")
        if step_id != "release":
            assert "update-traffic" not in script and "release.py release" not in script
            assert "--to-latest" not in script and "--to-tags" not in script, step_id
            joined = script.replace("\\\n", " ")  # continuation lines
            for deploy in re.findall(r"gcloud run deploy .*", joined):
                assert "--no-traffic" in deploy, step_id
    assert "release.py release" in all_steps["release"]["script"]
    assert {"scan", "dast"} <= upstream("release", all_steps)
    assert "scan" in upstream("deploy-no-traffic", all_steps)  # no revision of a refused image


def dast_module() -> dict[str, Any]:
    module: dict[str, Any] = parse(MODULES / "api" / "main.tf")["module"]
    return next(m["dast"] for m in module if "dast" in m)


def test_the_dast_job_runs_in_the_vpc_as_its_own_account_with_no_role() -> None:
    job = dast_module()
    assert job["source"] == "../job"
    assert job["job_name"] == job["account_id"] == "${local.name_prefix}-dast"
    assert job["egress"] == "ALL_TRAFFIC"  # run.app calls count as internal (ingress LB-only)
    assert "secrets" not in job  # anonymous: no API key, no secret
    assert job["command"] == ["/bin/sh", "-c", '${file("${path.module}/dast.sh")}', "dast"]
    assert job["image"] == "${var.dast_image}"
    # No IAM grant anywhere names the DAST job's account.
    for path in TF_FILES:
        for address, body in blocks(path, "resource").items():
            if "iam" in address:
                assert "module.dast" not in json.dumps(body), f"{path}: {address}"
    # Its image is pinned by digest, the same in Terraform and Cloud Build.
    variable = blocks(MODULES / "api" / "variables.tf", "variable")["dast_image"]
    assert build()["substitutions"]["_DAST_IMAGE"] == variable["default"]
    assert re.fullmatch(
        r"docker\.io/schemathesis/schemathesis@sha256:[0-9a-f]{64}", variable["default"]
    )
    outputs = blocks(MODULES / "api" / "outputs.tf", "output")
    assert outputs["dast_job"]["value"] == "${module.dast.job_name}"


def test_the_dast_image_and_the_tested_schemathesis_are_the_same_version() -> None:
    """tests/test_dast.py runs dast.sh with infra/tools/schemathesis.txt's schemathesis: the
    version the job's image (pinned by digest) was published as."""
    pin = re.search(
        r"^schemathesis==(\S+)$", (ROOT / "infra/tools/schemathesis.txt").read_text(), re.M
    )
    assert pin
    text = CLOUDBUILD.read_text()
    assert f"# schemathesis v{pin.group(1)}\n  _DAST_IMAGE:" in text
    variable = blocks(MODULES / "api" / "variables.tf", "variable")["dast_image"]
    assert f"(v{pin.group(1)})" in variable["description"]


def test_the_dast_run_is_bounded_and_fails_on_5xx_and_schema_violations() -> None:
    job = dast_module()
    env = job["env"]
    checks = set(env["DAST_CHECKS"].split(","))
    assert {
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
        "ignored_auth",
    } <= checks
    # Checks that need valid credentials or writes are left to make test's own run.
    assert not checks & {
        "positive_data_acceptance",
        "use_after_free",
        "ensure_resource_availability",
    }
    assert 0 < int(env["DAST_MAX_EXAMPLES"]) <= 100
    units = len(release.dast_operations(inventory(), document()))
    timeout = int(job["timeout"].rstrip("s"))
    assert units * int(env["DAST_UNIT_SECONDS"]) < timeout <= 3600
    script = DAST_SCRIPT.read_text()
    assert '--max-examples="$DAST_MAX_EXAMPLES"' in script
    assert 'timeout "$DAST_UNIT_SECONDS" schemathesis run' in script
    assert "--phases=examples,coverage,fuzzing" in script  # no stateful chains of writes


# ---- the DAST job's program, run with a stand-in schemathesis ----------------------------------

FAKE_SCHEMATHESIS = """#!/bin/sh
echo "$@" >> "$CALLS"
case "$*" in
  *--url=https://bad*) echo "Server error"; exit 1 ;;
  *--url=https://slow*) sleep 5 ;;
esac
exit 0
"""


def run_dast(
    tmp_path: Path, *args: str, unit_seconds: str = "20"
) -> subprocess.CompletedProcess[str]:
    sh, timeout_bin = shutil.which("sh"), shutil.which("timeout")
    if sh is None or timeout_bin is None:
        pytest.skip("sh or timeout missing")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "schemathesis"
    fake.write_text(FAKE_SCHEMATHESIS)
    fake.chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "CALLS": str(tmp_path / "calls"),
        "DAST_CHECKS": "not_a_server_error,ignored_auth",
        "DAST_MAX_EXAMPLES": "25",
        "DAST_UNIT_SECONDS": unit_seconds,
    }
    # As Cloud Run runs it: command ["/bin/sh", "-c", <dast.sh>, "dast"] plus the args.
    return subprocess.run(
        [sh, "-c", DAST_SCRIPT.read_text(), "dast", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )


def test_the_dast_program_runs_every_unit_with_its_operations(tmp_path: Path) -> None:
    schema = "https://c-1---docs/openapi.json"
    result = run_dast(
        tmp_path, schema, "https://a", "^(list_items|read_item)$", "https://b", "^(token)$"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    assert len(calls) == 2
    assert calls[0].startswith(
        f"run {schema} --url=https://a --include-operation-id-regex=^(list_items|read_item)$"
    )
    assert "--checks=not_a_server_error,ignored_auth" in calls[0]
    assert "--max-examples=25" in calls[0] and "--url=https://b" in calls[1]
    assert "DAST passed" in result.stdout


def test_the_dast_program_fails_after_running_every_unit(tmp_path: Path) -> None:
    result = run_dast(
        tmp_path, "https://s/openapi.json", "https://bad", "^(a)$", "https://b", "^(b)$"
    )
    assert result.returncode == 1
    assert len((tmp_path / "calls").read_text().splitlines()) == 2  # b still ran
    assert "DAST failed on: https://bad" in result.stderr


def test_the_dast_program_fails_a_unit_over_its_time(tmp_path: Path) -> None:
    result = run_dast(tmp_path, "https://s/openapi.json", "https://slow", "^(a)$", unit_seconds="1")
    assert result.returncode == 1
    assert "over 1 s" in result.stdout


def test_the_dast_program_refuses_a_malformed_argument_list(tmp_path: Path) -> None:
    assert run_dast(tmp_path).returncode == 2
    assert run_dast(tmp_path, "https://s/openapi.json", "https://a").returncode == 2
