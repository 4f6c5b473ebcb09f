"""Delivery checks that need no cloud account and no Docker daemon: cloudbuild.yaml's
structure (test services, audit, build, migrate, deploy without traffic, smoke test, then
traffic; substitutions declared and documented; units read from the inventory), the release
helpers it calls, the Dockerfile (hadolint from its own virtualenv, the `hadolint` fixture of
conftest.py, plus explicit rules) and what .dockerignore lets into the image.
"""

from __future__ import annotations

import fnmatch
import http.server
import json
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.tools import release, smoke

ROOT = Path(__file__).resolve().parents[2]
CLOUDBUILD = ROOT / "cloudbuild.yaml"
DOCKERFILE = ROOT / "Dockerfile"
INVENTORY = ROOT / "terraform" / "generated" / "inventory.json"
BUILTINS = {"PROJECT_ID", "PROJECT_NUMBER", "BUILD_ID", "LOCATION", "COMMIT_SHA", "SHORT_SHA"}
BUILTINS |= {"REVISION_ID", "BRANCH_NAME", "TAG_NAME", "REPO_NAME", "REF_NAME", "TRIGGER_NAME"}
SHELL_SPECIALS = {"PATH", "HOME"}


def build() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(CLOUDBUILD.read_text())
    return document


def steps() -> dict[str, dict[str, Any]]:
    return {step["id"]: step for step in build()["steps"]}


def inventory() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(INVENTORY.read_text())
    return data


def upstream(step_id: str, all_steps: dict[str, dict[str, Any]]) -> set[str]:
    """Every step that must succeed before `step_id` starts (Cloud Build's waitFor graph)."""
    order = list(all_steps)
    step = all_steps[step_id]
    waits = step.get("waitFor")
    # No waitFor: after every step listed before it.
    direct = set(order[: order.index(step_id)]) if waits is None else set(waits) - {"-"}
    found = set(direct)
    for name in direct:
        found |= upstream(name, all_steps)
    return found


# ---- cloudbuild.yaml ----------------------------------------------------------------------


def test_cloudbuild_step_ids_are_unique_and_known() -> None:
    ids = [step["id"] for step in build()["steps"]]
    assert len(ids) == len(set(ids))
    for step in build()["steps"]:
        for wait in step.get("waitFor", []):
            assert wait == "-" or wait in ids, f"{step['id']} waits for unknown {wait}"


def test_traffic_moves_only_after_every_other_step_succeeded() -> None:
    all_steps = steps()
    before_release = upstream("release", all_steps)
    assert before_release == set(all_steps) - {"release"}
    assert "smoke-test" in upstream("release", all_steps)
    assert "deploy-no-traffic" in upstream("smoke-test", all_steps)
    assert "migrate" in upstream("deploy-no-traffic", all_steps)
    assert {"digest", "wait-turn"} <= upstream("migrate", all_steps)
    assert {"lint-and-test", "audit", "build"} <= upstream("push", all_steps)
    assert "resolve-image" in upstream("lint-and-test", all_steps)


def test_tests_run_against_postgres_and_redis_service_containers() -> None:
    all_steps = steps()
    services = all_steps["test-services"]["script"]
    assert re.search(r"docker run -d --name postgres --network cloudbuild", services)
    assert re.search(r"docker run -d --name redis --network cloudbuild", services)
    test = all_steps["lint-and-test"]
    env = dict(item.split("=", 1) for item in test["env"])
    assert env["TEST_DATABASE_URL"].startswith("postgresql://postgres@postgres:5432/")
    assert env["TEST_REDIS_URL"].startswith("redis://redis:6379/")
    assert "make test" in test["script"]
    assert "test-services" in upstream("lint-and-test", all_steps)


def test_the_lock_is_audited_strictly() -> None:
    script = steps()["audit"]["script"]
    assert "uv export --frozen --no-dev --no-group local" in script
    assert re.search(r"pip-audit --strict\b", script)


def test_the_image_is_tagged_with_the_commit_and_pushed_to_artifact_registry() -> None:
    document = build()
    assert '--tag "$_IMAGE:$COMMIT_SHA"' in steps()["build"]["script"]
    # Pushed by a step (the deploy steps need it), not by `images:` at the very end, which
    # would push the same tag twice to a repository with immutable tags.
    assert 'docker push "$_IMAGE:$COMMIT_SHA"' in steps()["push"]["script"]
    assert "images" not in document
    assert ".pkg.dev/" in document["substitutions"]["_IMAGE"]


def test_migrations_run_as_the_cloud_run_job_on_the_new_image() -> None:
    script = steps()["migrate"]["script"]
    assert 'gcloud run jobs update "$_SERVICE_PREFIX-migrate"' in script
    assert '--image="$(cat /workspace/image)"' in script  # the digest, never a tag
    assert re.search(r'gcloud run jobs execute "\$_SERVICE_PREFIX-migrate" .*--wait', script)
    api = (ROOT / "terraform" / "modules" / "api" / "main.tf").read_text()
    assert 'command             = ["python", "-m", "imangor.migrate"]' in api


def test_every_unit_deploys_without_traffic_from_the_inventory() -> None:
    script = steps()["deploy-no-traffic"]["script"]
    assert "$(python3 infra/tools/release.py units)" in script
    assert "--no-traffic" in script
    assert '--tag="c-$SHORT_SHA"' in script
    assert '--image="$(cat /workspace/image)"' in script
    assert "release.py record" in script  # the split a rollback returns to
    assert re.search(r'gcloud run services update "\$service" .*--max="\$max"', script)
    released = steps()["release"]["script"]
    assert "release.py release" in released and '--tag="c-$SHORT_SHA"' in released
    assert "--to-latest" not in CLOUDBUILD.read_text()


def test_no_unit_name_is_kept_by_hand_in_the_pipeline() -> None:
    scripts = "\n".join(step.get("script", "") for step in build()["steps"])
    for unit in inventory()["units"]:
        # A service name (PREFIX-unit) or a `for x in a b c` list would be a second list.
        assert not re.search(rf"-{unit}\b", scripts), f"unit {unit} named in cloudbuild.yaml"
        assert not re.search(rf"\bfor \w+ in [^$\n]*\b{unit}\b", scripts), unit


def test_smoke_test_hits_the_tagged_revisions_from_the_smoke_job() -> None:
    script = steps()["smoke-test"]["script"]
    assert "release.py smoke-args" in script and '--tag="c-$SHORT_SHA"' in script
    assert re.search(r'gcloud run jobs execute "\$_SERVICE_PREFIX-smoke" .*--wait', script)


def test_every_substitution_is_declared_documented_and_every_variable_known() -> None:
    document = build()
    declared = set(document["substitutions"])
    header = "\n".join(line for line in CLOUDBUILD.read_text().splitlines() if line.startswith("#"))
    for name in declared:
        assert name.startswith("_")
        assert re.search(rf"#\s+{name}\s", header), f"{name} is not documented in the header"
    options = document["options"]
    assert options["automapSubstitutions"] is True and options["dynamicSubstitutions"] is True
    assert options["logging"] == "CLOUD_LOGGING_ONLY"
    used_in_yaml = set(re.findall(r"\$\{(_[A-Z_]+)\}", CLOUDBUILD.read_text()))
    assert used_in_yaml <= declared
    for step in document["steps"]:
        script = step.get("script", "")
        env = {item.split("=", 1)[0] for item in step.get("env", [])}
        assigned = set(re.findall(r"\b([A-Za-z_]\w*)=", script))
        assigned |= set(re.findall(r"\bfor (\w+) in\b", script))
        variables = set(re.findall(r"\$\{?([A-Za-z_]\w*)", script))
        unknown = variables - declared - BUILTINS - env - assigned - SHELL_SPECIALS
        assert not unknown, f"{step['id']} uses undefined {sorted(unknown)}"


def test_step_scripts_are_valid_bash() -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash not installed")
    for step in build()["steps"]:
        result = subprocess.run(
            [bash, "-n"], input=step["script"], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, f"{step['id']}: {result.stderr}"


def test_images_are_pinned() -> None:
    document = build()
    images = [step["name"] for step in document["steps"]]
    images += [v for k, v in document["substitutions"].items() if k.endswith("_IMAGE")]
    for image in images:
        if image.startswith("${"):
            continue
        assert ":" in image.rsplit("/", 1)[-1], f"{image} has no tag"
        assert not image.endswith(":latest"), image


def test_tool_versions_agree_across_pipeline_dockerfile_and_makefile() -> None:
    substitutions = build()["substitutions"]
    dockerfile = DOCKERFILE.read_text()
    makefile = (ROOT / "Makefile").read_text()
    base = re.search(r"^FROM (\S+)", dockerfile, re.M)
    assert base and substitutions["_PYTHON_IMAGE"] == base.group(1)
    uv_make = re.search(r"^UV_VERSION := (\S+)", makefile, re.M)
    assert uv_make and substitutions["_UV_VERSION"] == uv_make.group(1)
    assert f"ghcr.io/astral-sh/uv:{uv_make.group(1)}," in dockerfile
    database = (ROOT / "terraform" / "modules" / "database" / "variables.tf").read_text()
    pg = re.search(r'default\s+=\s+"POSTGRES_(\d+)"', database)
    assert pg and substitutions["_POSTGRES_IMAGE"].startswith(f"postgres:{pg.group(1)}")
    redis = (ROOT / "terraform" / "modules" / "redis" / "variables.tf").read_text()
    rv = re.search(r'default\s+=\s+"REDIS_(\d+)_(\d+)"', redis)
    assert rv and substitutions["_REDIS_IMAGE"].startswith(f"redis:{rv.group(1)}.{rv.group(2)}")


# ---- release helpers (infra/tools/release.py) ---------------------------------------------


def service(name: str, traffic: list[dict[str, Any]]) -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": {"traffic": traffic}}


def test_release_lists_every_unit_of_the_inventory() -> None:
    assert release.units(inventory()) == sorted(inventory()["units"])
    listed = subprocess.run(
        [sys.executable, str(ROOT / "infra" / "tools" / "release.py"), "units"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert listed.stdout.split() == sorted(inventory()["units"])


def test_release_smoke_checks_health_and_readiness_of_every_public_unit() -> None:
    checks = release.smoke_checks(inventory())
    public = {n for n, u in inventory()["units"].items() if not u["internal"]}
    assert set(checks) == {(unit, path) for unit in public for path in ("/health", "/ready")}


def test_release_builds_smoke_arguments_from_tagged_urls() -> None:
    def describe(name: str) -> dict[str, Any]:
        return {
            "metadata": {"name": name},
            "status": {
                "url": f"https://{name}-xyz.a.run.app",
                "traffic": [
                    {"percent": 100, "revisionName": f"{name}-00001"},
                    {"tag": "c-abc1234", "url": f"https://c-abc1234---{name}-xyz.a.run.app/"},
                ],
            },
        }

    args = release.smoke_args(inventory(), "imangor-dev", "c-abc1234", describe)
    assert "https://c-abc1234---imangor-dev-health-xyz.a.run.app/health" in args
    assert "https://c-abc1234---imangor-dev-products-xyz.a.run.app/ready" in args
    assert not [a for a in args if a.startswith("~")]  # every check is strict now
    assert not [a for a in args if "-tasks-" in a or "-cron-" in a]
    main = release.smoke_args(inventory(), "imangor-dev", None, describe)
    assert "https://imangor-dev-docs-xyz.a.run.app/ready" in main
    with pytest.raises(LookupError):
        release.tag_url(service("x", [{"tag": "c-old", "url": "https://x"}]), "c-new")


def test_release_finds_stale_release_tags() -> None:
    traffic = [{"tag": "c-new"}, {"tag": "c-old"}, {"tag": "c-older"}, {"tag": "keep-me"}, {}]
    assert release.stale_tags(service("x", traffic), ["c-new"]) == ["c-old", "c-older"]
    assert release.stale_tags(service("x", traffic), ["c-new", "c-old"]) == ["c-older"]


# ---- smoke test tool (infra/tools/smoke.py) ----------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = int(self.path.strip("/") or 200)
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def http_base() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_smoke_passes_2xx_and_lenient_4xx(http_base: str) -> None:
    assert smoke.run(smoke.Check.parse(f"{http_base}/200"), attempts=1) is None
    assert smoke.run(smoke.Check.parse(f"~{http_base}/404"), attempts=1) is None
    assert smoke.run(smoke.Check.parse(f"{http_base}/404"), attempts=3, backoff=0) == "HTTP 404"
    assert smoke.run(smoke.Check.parse(f"~{http_base}/503"), attempts=2, backoff=0) == "HTTP 503"


def test_smoke_fails_the_job_when_a_url_fails(
    http_base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(smoke, "BACKOFF_SECONDS", 0.0)
    monkeypatch.setattr(smoke, "ATTEMPTS", 1)
    assert smoke.main([f"{http_base}/204", f"~{http_base}/401"]) == 0
    assert smoke.main([f"{http_base}/204", f"{http_base}/500"]) == 1
    assert smoke.main(["http://127.0.0.1:9/unreachable"]) == 1
    with pytest.raises(ValueError, match="not an http"):
        smoke.Check.parse("ftp://example.com")


# ---- Dockerfile and .dockerignore -----------------------------------------------------------


def test_hadolint_finds_nothing(hadolint: Path) -> None:
    result = subprocess.run(
        [str(hadolint), "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), " ".join(rest.split())))
    return found


def test_dockerfile_base_image_is_pinned_slim_python_311() -> None:
    bases = [args for keyword, args in instructions() if keyword == "FROM"]
    assert len(bases) == 1
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?", bases[0])
    assert not [args for keyword, args in instructions() if keyword == "ADD"], "use COPY, never ADD"


def test_dockerfile_runs_as_a_non_root_user() -> None:
    steps_ = instructions()
    users = [(i, args) for i, (keyword, args) in enumerate(steps_) if keyword == "USER"]
    assert users, "no USER instruction"
    index, user = users[-1]
    assert user.split(":")[0] not in ("root", "0")
    cmd = next(i for i, (keyword, _) in enumerate(steps_) if keyword == "CMD")
    assert index < cmd
    assert not [k for k, _ in steps_[index:] if k == "RUN"], "RUN after USER would run as the user"


def test_dockerfile_installs_the_lock_in_a_cached_layer_before_the_code() -> None:
    steps_ = instructions()
    text = [f"{k} {a}" for k, a in steps_]
    lock_copy = text.index("COPY pyproject.toml uv.lock ./")
    deps = next(i for i, t in enumerate(text) if "--no-install-project" in t)
    code = text.index("COPY shared ./shared")
    assert lock_copy < deps < code
    assert "uv sync --frozen --no-dev --no-group local --no-install-project" in text[deps]
    assert any("python -m compileall" in t for t in text[code:])
    env = " ".join(a for k, a in steps_ if k == "ENV")
    assert "UV_COMPILE_BYTECODE=1" in env


def test_dockerfile_ships_units_migrations_and_starts_the_target_function() -> None:
    copies = " ".join(a for k, a in instructions() if k == "COPY")
    for needed in ("functions", "migrations", "alembic.ini", "shared", "infra/tools/smoke.py"):
        assert needed in copies
    cmd = next(a for k, a in instructions() if k == "CMD")
    assert json.loads(cmd)[:2] == ["/bin/sh", "-c"]
    entry = json.loads(cmd)[2]
    assert 'exec functions-framework --target="$FUNCTION_TARGET"' in entry
    assert '--source="functions/$FUNCTION_TARGET/main.py"' in entry
    assert '--port="$PORT"' in entry
    for unit in inventory()["units"]:
        assert (ROOT / "functions" / unit / "main.py").is_file()


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw[1:] if negate else raw
        pattern = pattern.strip("/")
        if pattern.startswith("**/"):
            rest = pattern[3:]
            hit = any(fnmatch.fnmatchcase(c.rsplit("/", 1)[-1], rest) for c in candidates)
        else:
            hit = any(
                fnmatch.fnmatchcase(c, pattern) and c.count("/") == pattern.count("/")
                for c in candidates
            )
        if hit:
            excluded = not negate
    return excluded


def test_dockerignore_lets_in_exactly_what_the_image_needs() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    needed = ["pyproject.toml", "uv.lock", "README.md", "alembic.ini", "shared/imangor/__init__.py"]
    needed += ["shared/imangor/config.py", "migrations/env.py", "infra/tools/smoke.py"]
    needed += [f"functions/{unit}/main.py" for unit in inventory()["units"]]
    for path in needed:
        assert not dockerignore_excludes(path, patterns), f"{path} would be missing from the image"
    for path in (".venv/bin/python", ".local/tools/x", ".git/HEAD", "tests/conftest.py", ".env"):
        assert dockerignore_excludes(path, patterns), f"{path} would be sent to the build"
    for path in (
        "terraform/generated/inventory.json",
        "infra/local/dev.py",
        "shared/imangor/__pycache__/x.pyc",
    ):
        assert dockerignore_excludes(path, patterns), f"{path} would be sent to the build"
