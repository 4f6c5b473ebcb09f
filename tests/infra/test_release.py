"""Releases that roll back by themselves (issue 12, item 5): infra/tools/release.py driven
end to end against a fake gcloud that keeps Cloud Run's traffic splits and Artifact
Registry's tags the way the real commands change them.

- the image is built once: a re-run of a commit finds its digest and builds nothing; prod
  copies dev's digest and checks the copy;
- one release per environment at a time, in the order the builds started;
- traffic moves by tag, so a revision made after the smoke test gets none;
- health or the 5xx ratio failing after the shift moves every unit back to the split
  recorded before the deploy; the previous release's tag is kept;
- the scan gate (issue 13 item 9) waits for Artifact Registry's scan of exactly the digest
  being deployed (built, re-run or promoted) and refuses a CRITICAL finding, naming it.
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
    # IMAGE@digest -> successive `describe --show-package-vulnerability` answers (the last
    # one repeats): how Artifact Registry's scan of that digest looks at each call.
    scans: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    calls: list[list[str]] = field(default_factory=list)

    def run(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        self.calls.append(args)
        out, code = self._answer(args)
        return subprocess.CompletedProcess(args, code, out, "" if code == 0 else "failed")

    def _answer(self, args: list[str]) -> tuple[str, int]:
        head = args[:3]
        if head == ["artifacts", "docker", "images"] and "--show-package-vulnerability" in args:
            assert args[-1] == "--format=json", args
            answers = self.scans.get(args[4])
            if not answers:
                return "", 1  # no such digest
            return json.dumps(answers.pop(0) if len(answers) > 1 else answers[0]), 0
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


# ---- the image scan gate --------------------------------------------------------------------
# What `gcloud artifacts docker images describe IMAGE@DIGEST --show-package-vulnerability
# --format=json` prints: discovery_summary.discovery[] (the scan's DISCOVERY occurrences,
# discovery.analysisStatus) and package_vulnerability_summary.vulnerabilities (effective
# severity -> VULNERABILITY occurrences: noteName .../notes/CVE-..., vulnerability with
# effectiveSeverity and packageIssue[] affectedPackage / affectedVersion / fixedVersion).

DIGEST = "sha256:" + "c" * 64
DISCOVERY_NOTE = "projects/goog-analysis/notes/PACKAGE_VULNERABILITY"  # pragma: allowlist secret


def occurrence(
    cve: str, severity: str, package: str, version: str, fixed: str | None
) -> dict[str, Any]:
    fixed_version = {"kind": "MAXIMUM"} if fixed is None else {"kind": "NORMAL", "fullName": fixed}
    return {
        "kind": "VULNERABILITY",
        "name": f"projects/imangor-dev/occurrences/{cve.lower()}",
        "noteName": f"projects/goog-vulnz/notes/{cve}",
        "resourceUri": f"https://{IMAGE}@{DIGEST}",
        "vulnerability": {
            "severity": severity,
            "effectiveSeverity": severity,
            "cvssScore": 9.8 if severity == "CRITICAL" else 5.0,
            "fixAvailable": fixed is not None,
            "shortDescription": cve,
            "packageIssue": [
                {
                    "affectedPackage": package,
                    "affectedVersion": {"kind": "NORMAL", "fullName": version},
                    "fixedVersion": fixed_version,
                    "packageType": "OS",
                    "effectiveSeverity": severity,
                }
            ],
        },
    }


def report(status: str | None, *occurrences: dict[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "image_summary": {"digest": DIGEST, "fully_qualified_digest": f"{IMAGE}@{DIGEST}"}
    }
    if status is not None:
        answer["discovery_summary"] = {
            "discovery": [
                {
                    "kind": "DISCOVERY",
                    "noteName": DISCOVERY_NOTE,
                    "discovery": {"analysisStatus": status, "continuousAnalysis": "ACTIVE"},
                }
            ]
        }
    groups: dict[str, list[dict[str, Any]]] = {}
    for found in occurrences:
        groups.setdefault(found["vulnerability"]["effectiveSeverity"], []).append(found)
    if groups:
        answer["package_vulnerability_summary"] = {
            "vulnerabilities": groups,
            "total_vulnerability_count": len(occurrences),
        }
    return answer


CRITICAL = occurrence("CVE-2026-0001", "CRITICAL", "openssl", "3.5.1-1", "3.5.4-1")
HIGH = occurrence("CVE-2026-0002", "HIGH", "libexpat1", "2.7.1-2", None)
MEDIUM = occurrence("CVE-2026-0003", "MEDIUM", "pip", "25.1", "25.3")


class Clock:
    """A clock the fake sleep advances."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def gate(cloud: FakeCloud, image: str, clock: Clock | None = None, **kwargs: Any) -> Any:
    clock = clock or Clock()
    return release.scan(release.Gcloud(cloud.run), image, sleep=clock.sleep, clock=clock, **kwargs)


def test_a_finished_scan_without_a_critical_finding_lets_the_digest_through(
    capsys: pytest.CaptureFixture[str],
) -> None:
    image = f"{IMAGE}@{DIGEST}"
    cloud = FakeCloud(scans={image: [report("FINISHED_SUCCESS", HIGH, MEDIUM)]})
    assert gate(cloud, image) == []
    out = capsys.readouterr().out
    assert "1 HIGH, 1 MEDIUM" in out and "CVE-2026-0002 libexpat1 2.7.1-2" in out
    clean = FakeCloud(scans={image: [report("FINISHED_SUCCESS")]})
    assert release.main(["scan", f"--image={image}"], release.Gcloud(clean.run)) == 0
    assert "no vulnerability found" in capsys.readouterr().out


def test_a_critical_finding_refuses_the_deploy_naming_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    image = f"{IMAGE}@{DIGEST}"
    cloud = FakeCloud(scans={image: [report("FINISHED_SUCCESS", MEDIUM, CRITICAL, HIGH)]})
    refused = gate(cloud, image)
    assert refused == [
        release.Finding("CRITICAL", "CVE-2026-0001", "openssl", "3.5.1-1", "3.5.4-1")
    ]
    capsys.readouterr()
    assert release.main(["scan", f"--image={image}"], release.Gcloud(cloud.run)) == 1
    captured = capsys.readouterr()
    # Package, version, CVE and fixed version of each finding, most severe first.
    lines = [line.split() for line in captured.out.splitlines() if "CVE-" in line]
    assert [words[0] for words in lines] == ["REFUSED", "HIGH", "MEDIUM"]
    assert "CRITICAL CVE-2026-0001 openssl 3.5.1-1 (fixed in 3.5.4-1)" in captured.out
    assert "CVE-2026-0002 libexpat1 2.7.1-2 (no fix released yet)" in captured.out
    assert "REFUSED: 1 finding(s) above HIGH" in captured.err
    assert "nothing was deployed" in captured.err
    # A stricter gate refuses the HIGH one too; severities are ranked, not compared as text.
    stricter = gate(cloud, image, max_severity="MEDIUM")
    assert {f.cve for f in stricter} == {"CVE-2026-0001", "CVE-2026-0002"}


def test_an_accepted_cve_is_let_through_for_this_build_only(
    capsys: pytest.CaptureFixture[str],
) -> None:
    image = f"{IMAGE}@{DIGEST}"
    cloud = FakeCloud(scans={image: [report("FINISHED_SUCCESS", CRITICAL)]})
    gcloud = release.Gcloud(cloud.run)
    assert release.main(["scan", f"--image={image}", "--accept=CVE-2026-0001"], gcloud) == 0
    out = capsys.readouterr().out
    assert "ACCEPTED CRITICAL CVE-2026-0001" in out and "emergency override" in out
    assert release.main(["scan", f"--image={image}", "--accept=CVE-2026-9999"], gcloud) == 1
    assert release.main(["scan", f"--image={image}", "--accept=CVE-1 CVE-2026-0001"], gcloud) == 0


def test_the_gate_waits_for_the_scan_to_finish() -> None:
    image = f"{IMAGE}@{DIGEST}"
    answers = [report(None), report("PENDING"), report("SCANNING"), report("FINISHED_SUCCESS")]
    cloud = FakeCloud(scans={image: answers})
    clock = Clock()
    assert gate(cloud, image, clock, interval=20) == []
    assert clock.sleeps == [20, 20, 20]


def test_a_scan_still_running_at_the_deadline_fails_with_a_clear_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    image = f"{IMAGE}@{DIGEST}"
    cloud = FakeCloud(scans={image: [report(None), report("SCANNING")]})
    clock = Clock()
    with pytest.raises(release.ScanError, match=r"timed out after 100 s .*\(SCANNING\)"):
        gate(cloud, image, clock, timeout=100, interval=30)
    assert clock.now == 100 and clock.sleeps == [30, 30, 30, 10]  # bounded, to the second
    describes = [c for c in cloud.calls if "--show-package-vulnerability" in c]
    assert len(describes) == 5
    never = FakeCloud(scans={image: [report(None)]})
    with pytest.raises(release.ScanError, match=r"\(not started\)\. Is containerscanning"):
        gate(never, image, timeout=0)
    assert release.main(["scan", f"--image={image}", "--timeout=0"], release.Gcloud(never.run)) == 1
    assert capsys.readouterr().err.startswith("SCAN GATE: timed out after 0 s")


def test_a_scan_without_a_verdict_refuses_the_deploy() -> None:
    image = f"{IMAGE}@{DIGEST}"
    for status in ("FINISHED_FAILED", "FINISHED_UNSUPPORTED"):
        cloud = FakeCloud(scans={image: [report(status)]})
        with pytest.raises(release.ScanError, match=f"ended {status}"):
            gate(cloud, image)


def test_the_gate_scans_the_digest_being_deployed_on_reruns_and_promotions(
    tmp_path: Path,
) -> None:
    """A re-run (nothing built) and prod (dev's digest, copied) still pass the gate, on
    exactly the digest /workspace/image names; a tag is refused."""
    out = tmp_path / "image"
    promoted = FakeCloud(images={f"{DEV}:{SHA}": "sha256:" + "b" * 64})
    gcloud = release.Gcloud(promoted.run)
    args = ["resolve-image", f"--image={IMAGE}", f"--commit={SHA}", f"--out={out}"]
    assert release.main([*args, f"--promote-from={DEV}"], gcloud) == 0
    deployed = out.read_text()
    assert deployed == f"{IMAGE}@sha256:" + "b" * 64
    promoted.scans[deployed] = [report("FINISHED_SUCCESS", CRITICAL)]
    assert release.main(["scan", f"--image={deployed}"], gcloud) == 1  # prod's own scan
    described = [c[4] for c in promoted.calls if "--show-package-vulnerability" in c]
    assert described == [deployed]

    rerun = FakeCloud(images={f"{IMAGE}:{SHA}": DIGEST})
    gcloud = release.Gcloud(rerun.run)
    assert release.main(args, gcloud) == 0 and out.read_text() == f"{IMAGE}@{DIGEST}"
    rerun.scans[out.read_text()] = [report("FINISHED_SUCCESS", MEDIUM)]
    assert release.main(["scan", f"--image={out.read_text()}"], gcloud) == 0
    with pytest.raises(release.ScanError, match="not a digest"):
        gate(rerun, f"{IMAGE}:{SHA}")
