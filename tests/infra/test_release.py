"""Releases that roll back by themselves (issue 12, item 5): infra/tools/release.py driven
end to end against a fake gcloud that keeps Cloud Run's traffic splits and Artifact
Registry's tags the way the real commands change them.

- the image is built once: a re-run of a commit finds its digest and builds nothing; prod
  copies dev's digest and checks the copy;
- one release per environment at a time, in the order the builds started;
- traffic moves by tag, so a revision made after the smoke test gets none;
- health or the 5xx ratio failing after the shift moves every unit back to the split
  recorded before the deploy; the previous release's tag is kept.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from infra.tools import release

INVENTORY = json.loads(
    (Path(__file__).resolve().parents[2] / "terraform/generated/inventory.json").read_text()
)
UNITS = sorted(INVENTORY["units"])
PREFIX, REGION = "imangor-dev", "europe-west1"
OLD, NEW = "c-0ld0000", "c-9e99999"


@dataclass
class FakeCloud:
    """What the release reads and changes: services (their traffic), image tags, builds."""

    services: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)
    builds: list[dict[str, Any]] = field(default_factory=list)
    smoke_fails: bool = False
    copy_changes_digest: bool = False
    calls: list[list[str]] = field(default_factory=list)

    def run(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        self.calls.append(args)
        out, code = self._answer(args)
        return subprocess.CompletedProcess(args, code, out, "" if code == 0 else "failed")

    def _answer(self, args: list[str]) -> tuple[str, int]:
        head = args[:3]
        if head == ["artifacts", "docker", "images"]:
            digest = self.images.get(args[4])
            return (digest or "", 0 if digest else 1)
        if head == ["container", "images", "add-tag"]:
            source_digest = args[3].split("@")[1]
            self.images[args[4]] = "sha256:changed" if self.copy_changes_digest else source_digest
            return "", 0
        if head == ["run", "services", "describe"]:
            name = args[3]
            traffic = self.services[name]
            for t in traffic:
                if t.get("tag"):
                    t["url"] = f"https://{t['tag']}---{name}-x.a.run.app"
            return json.dumps(
                {
                    "metadata": {"name": name},
                    "status": {"url": f"https://{name}-x.a.run.app", "traffic": traffic},
                }
            ), 0
        if head == ["run", "services", "update-traffic"]:
            return self._update_traffic(args[3], args[5]), 0
        if head == ["run", "jobs", "execute"]:
            return "", 1 if self.smoke_fails else 0
        if args[:2] == ["builds", "list"]:
            return json.dumps(self.builds), 0
        if args[:2] == ["auth", "print-access-token"]:
            return "token\n", 0
        raise AssertionError(f"unexpected gcloud {args}")

    def _update_traffic(self, name: str, flag: str) -> str:
        traffic = self.services[name]
        option, _, value = flag.partition("=")
        if option == "--to-tags":
            tag = value.split("=")[0]
            for t in traffic:
                t["percent"] = 100 if t.get("tag") == tag else 0
        elif option == "--to-revisions":
            wanted = dict(item.split("=") for item in value.split(","))
            for t in traffic:
                t["percent"] = int(wanted.get(t["revisionName"], 0))
        elif option == "--remove-tags":
            for t in traffic:
                if t.get("tag") in value.split(","):
                    t.pop("tag")
        traffic[:] = [t for t in traffic if t.get("percent") or t.get("tag")]
        return ""


def deployed(cloud: FakeCloud) -> None:
    """Every unit after `deploy-no-traffic`: the previous release serving, the new one tagged
    with no traffic, and an older release tag left from before."""
    for unit in UNITS:
        cloud.services[f"{PREFIX}-{unit}"] = [
            {"revisionName": f"{unit}-00001", "percent": 0, "tag": "c-older00"},
            {"revisionName": f"{unit}-00002", "percent": 100, "tag": OLD},
            {"revisionName": f"{unit}-00003", "percent": 0, "tag": NEW},
        ]


def serving(cloud: FakeCloud, unit: str) -> dict[str, int]:
    return {
        t["revisionName"]: t["percent"] for t in cloud.services[f"{PREFIX}-{unit}"] if t["percent"]
    }


def tags(cloud: FakeCloud, unit: str) -> set[str]:
    return {t["tag"] for t in cloud.services[f"{PREFIX}-{unit}"] if t.get("tag")}


def metrics(ratio: float = 0.0, total: float = 1000.0) -> release.Query:
    def query(promql: str) -> float | None:
        return total * ratio if "5xx" in promql else total

    return query


PLAN = release.Release(PREFIX, REGION, NEW, f"{PREFIX}-smoke", watch_seconds=0)


def run_release(cloud: FakeCloud, query: release.Query) -> list[str]:
    gcloud = release.Gcloud(cloud.run)
    previous = release.record(gcloud, UNITS, PREFIX, REGION)
    return release.release(gcloud, INVENTORY, previous, PLAN, query, sleep=lambda _s: None)


def test_a_healthy_release_serves_the_tag_and_keeps_the_previous_tag() -> None:
    cloud = FakeCloud()
    deployed(cloud)
    assert run_release(cloud, metrics(0.01)) == []
    for unit in UNITS:
        assert serving(cloud, unit) == {f"{unit}-00003": 100}
        assert tags(cloud, unit) == {NEW, OLD}  # c-older00 removed, the previous one kept
    moves = [c for c in cloud.calls if c[:3] == ["run", "services", "update-traffic"]]
    assert all("--to-latest" not in c for c in moves)
    assert any(f"--to-tags={NEW}=100" in c for c in moves)


def test_a_revision_made_after_the_smoke_test_gets_no_traffic() -> None:
    """An apply (or another build) creates a revision after the smoke test: moving to the
    tag, not to "latest", leaves it without traffic."""
    cloud = FakeCloud()
    deployed(cloud)
    cloud.services[f"{PREFIX}-items"].append(
        {"revisionName": "items-00004", "percent": 0, "tag": "untested"}
    )
    assert run_release(cloud, metrics()) == []
    assert serving(cloud, "items") == {"items-00003": 100}


def test_failing_health_after_the_shift_rolls_every_unit_back() -> None:
    cloud = FakeCloud(smoke_fails=True)
    deployed(cloud)
    problems = run_release(cloud, metrics())
    assert problems and problems[0].startswith("health after the shift")
    for unit in UNITS:
        assert serving(cloud, unit) == {f"{unit}-00002": 100}, unit
        assert OLD in tags(cloud, unit)


def test_a_high_error_ratio_rolls_back_and_too_few_requests_are_not_judged() -> None:
    cloud = FakeCloud()
    deployed(cloud)
    problems = run_release(cloud, metrics(ratio=0.10))
    assert len(problems) == len(UNITS)
    assert "10.0% 5xx" in problems[0]
    assert all(serving(cloud, u) == {f"{u}-00002": 100} for u in UNITS)
    quiet = FakeCloud()
    deployed(quiet)
    assert run_release(quiet, metrics(ratio=0.5, total=10)) == []  # 10 requests: health decides


def test_a_failed_shift_rolls_back_what_moved() -> None:
    cloud = FakeCloud()
    deployed(cloud)
    del cloud.services[f"{PREFIX}-{UNITS[-1]}"][2]["tag"]  # the last unit lost its new tag
    problems = run_release(cloud, metrics())
    assert problems and problems[0].startswith("shift: no revision tagged")
    assert all(serving(cloud, u) == {f"{u}-00002": 100} for u in UNITS)


def test_a_split_is_restored_as_it_was() -> None:
    cloud = FakeCloud()
    deployed(cloud)
    service = cloud.services[f"{PREFIX}-orders"]
    service[0]["percent"], service[1]["percent"] = 10, 90  # a canary by hand before the release
    assert run_release(cloud, metrics(ratio=0.2))
    assert serving(cloud, "orders") == {"orders-00001": 10, "orders-00002": 90}


# ---- the image ------------------------------------------------------------------------------

IMAGE = "europe-west1-docker.pkg.dev/imangor-prod/imangor/api"
DEV = "europe-west1-docker.pkg.dev/imangor-dev/imangor/api"
SHA = "0123456789abcdef0123456789abcdef01234567"


def test_a_rerun_of_a_commit_builds_nothing() -> None:
    cloud = FakeCloud(images={f"{IMAGE}:{SHA}": "sha256:aaa"})
    gcloud = release.Gcloud(cloud.run)
    assert release.resolve_image(gcloud, IMAGE, SHA) == (f"{IMAGE}@sha256:aaa", True)
    assert release.resolve_image(gcloud, IMAGE, "f" * 40) == ("", False)


def test_prod_deploys_the_digest_dev_built() -> None:
    cloud = FakeCloud(images={f"{DEV}:{SHA}": "sha256:bbb"})
    gcloud = release.Gcloud(cloud.run)
    found = release.resolve_image(gcloud, IMAGE, SHA, promote_from=DEV)
    assert found == (f"{IMAGE}@sha256:bbb", True)
    assert cloud.images[f"{IMAGE}:{SHA}"] == "sha256:bbb"
    assert not [c for c in cloud.calls if "build" in c]


def test_a_promotion_fails_closed() -> None:
    broken = FakeCloud(images={f"{DEV}:{SHA}": "sha256:bbb"}, copy_changes_digest=True)
    with pytest.raises(RuntimeError, match="not the promoted"):
        release.resolve_image(release.Gcloud(broken.run), IMAGE, SHA, promote_from=DEV)
    waits: list[float] = []
    missing = FakeCloud()
    with pytest.raises(LookupError, match="has not pushed it"):
        release.resolve_image(
            release.Gcloud(missing.run), IMAGE, SHA, DEV, wait_seconds=90, sleep=waits.append
        )
    assert sum(waits) == 90  # it waited for dev's build before giving up


def test_one_release_at_a_time_in_the_order_builds_started() -> None:
    builds = [
        {"id": "b1", "createTime": "2026-01-01T10:00:00Z", "status": "WORKING"},
        {"id": "b2", "createTime": "2026-01-01T10:05:00Z", "status": "WORKING"},
        {"id": "b0", "createTime": "2026-01-01T09:00:00Z", "status": "PENDING"},  # awaits approval
    ]
    assert release.older_running_builds(builds, "b2") == ["b1"]
    assert release.older_running_builds(builds, "b1") == []
    cloud = FakeCloud(builds=builds)
    slept: list[float] = []

    def finish_b1(seconds: float) -> None:
        slept.append(seconds)
        cloud.builds = [b for b in cloud.builds if b["id"] != "b1"]

    release.wait_turn(release.Gcloud(cloud.run), "dev", "b2", sleep=finish_b1)
    assert len(slept) == 1


def test_the_command_line_records_and_rolls_back(tmp_path: Path) -> None:
    cloud = FakeCloud()
    deployed(cloud)
    gcloud = release.Gcloud(cloud.run)
    out = tmp_path / "previous.json"
    base = [f"--prefix={PREFIX}", f"--region={REGION}"]
    assert release.main(["record", *base, f"--out={out}"], gcloud) == 0
    for unit in UNITS:
        release.move_to_tag(gcloud, f"{PREFIX}-{unit}", REGION, NEW)
    assert release.main(["rollback", *base, f"--previous={out}"], gcloud) == 0
    assert all(serving(cloud, u) == {f"{u}-00002": 100} for u in UNITS)


def test_prod_releases_wait_for_an_approval_and_promote_dev_digests() -> None:
    from tests.infra.test_terraform import MODULES, api_call, example_site, module_resources

    trigger = module_resources("api")["google_cloudbuild_trigger.release"]
    assert trigger["approval_config"][0]["approval_required"] == "${var.release_approval}"
    assert trigger["service_account"] == "${google_service_account.deployer.id}"
    assert trigger["substitutions"]["_PROMOTE_FROM"] == "${var.site.release.promote_from}"
    assert api_call("prod")["release_approval"] is True
    assert "release_approval" not in api_call("dev")
    assert example_site("prod")["release"]["promote_from"].endswith("/imangor-dev/imangor/api")
    assert example_site("dev")["release"].get("promote_from", "") == ""
    variables = (MODULES / "api" / "variables.tf").read_text()
    assert 'condition     = var.environment != "prod" || var.release_approval' in variables
