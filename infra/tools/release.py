"""The release steps of cloudbuild.yaml: one image per commit, deployed by digest, tagged
without traffic, smoke-tested, moved to by tag, watched, and rolled back by itself.

    python3 infra/tools/release.py units
        every unit of terraform/generated/inventory.json, one per line
    python3 infra/tools/release.py resolve-image --image IMAGE --commit SHA --out FILE
                                    [--promote-from SOURCE] [--wait SECONDS]
        writes IMAGE@sha256:... to FILE and prints "skip" when the commit's image exists
        already (re-running a commit builds and pushes nothing) or was promoted from SOURCE
        (the digest another environment built and tested, copied, never rebuilt); prints
        "build" otherwise
    python3 infra/tools/release.py pushed --image IMAGE --commit SHA --out FILE
        writes the digest just pushed to FILE (so everything deploys that exact image)
    python3 infra/tools/release.py scan --image IMAGE@sha256:... [--max-severity HIGH]
                                    [--timeout 600] [--accept CVE-1,CVE-2]
        waits (bounded) for Artifact Registry's automatic scan of exactly that digest, prints
        every finding, and exits 1 when one is more severe than --max-severity (a CRITICAL
        one, by default) unless its CVE is named in --accept (an emergency override)
    python3 infra/tools/release.py wait-turn --env ENV --build BUILD_ID
        waits while an older build of the same environment is still running (one release
        at a time, in the order the builds started)
    python3 infra/tools/release.py smoke-args --prefix P --region R --tag c-abc1234 [--main]
        the smoke job's arguments: /health and /ready of every public unit (2xx), on the
        revisions tagged TAG (or, with --main, on each service's own URL after the shift)
    python3 infra/tools/release.py dast-args --prefix P --region R --tag c-abc1234
        the DAST job's arguments: the OpenAPI document the tagged docs unit serves, then for
        each public unit its tagged URL and the operations it may exercise there (reads, and
        the public sign-in calls whose generated credentials match nobody: DAST_WRITES)
    python3 infra/tools/release.py record --prefix P --region R --out previous.json
        each unit's current traffic split (revisions, percents, tags), before the release
    python3 infra/tools/release.py release --prefix P --region R --tag c-abc1234
                                    --previous previous.json --project PROJECT [...]
        moves each unit's traffic to the revision tagged TAG (by tag: a revision made later
        by another build or an apply gets none), then checks health through the smoke job
        and each new revision's 5xx ratio over a watch window; on any failure it moves every
        unit back to its recorded split and exits 1. On success it removes the release tags
        other than this release's and the previous one's (kept for a rollback by hand).
    python3 infra/tools/release.py rollback --prefix P --region R --previous previous.json
        moves every unit back to its recorded split

Standard library only: it runs in the gcloud image, from the source checkout. gcloud is run
through one small class so that the tests drive the whole flow with a fake.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
INVENTORY = ROOT / "terraform" / "generated" / "inventory.json"
OPENAPI = ROOT / "functions" / "docs" / "openapi.json"
HEALTH_PATHS = ("/health", "/ready")
TAG_PREFIX = "c-"
MONITORING = "https://monitoring.googleapis.com/v1/projects/{project}/location/global/prometheus/api/v1/query"


class GcloudError(RuntimeError):
    """A gcloud command failed; the message is its stderr."""


class Gcloud:
    """Runs gcloud. `run(args)` returns stdout or raises GcloudError."""

    def __init__(
        self, runner: Callable[[list[str]], subprocess.CompletedProcess[str]] | None = None
    ):
        self._runner = runner or self._subprocess

    @staticmethod
    def _subprocess(args: list[str]) -> subprocess.CompletedProcess[str]:
        gcloud = shutil.which("gcloud") or "gcloud"
        return subprocess.run(  # noqa: S603  # nosec B603
            [gcloud, *args], capture_output=True, text=True, check=False
        )

    def run(self, *args: str) -> str:
        result = self._runner(list(args))
        if result.returncode != 0:
            raise GcloudError(f"gcloud {' '.join(args[:3])}: {result.stderr.strip()}")
        return result.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--format=json"))


def load_inventory(path: Path = INVENTORY) -> dict[str, Any]:
    inventory: dict[str, Any] = json.loads(path.read_text())
    return inventory


def units(inventory: dict[str, Any]) -> list[str]:
    return sorted(inventory["units"])


# ---- the image: built once, deployed by digest ------------------------------------------------


def digest_of(gcloud: Gcloud, reference: str) -> str | None:
    """The sha256 digest an Artifact Registry tag points at, or None if there is no such tag."""
    try:
        out = gcloud.run(
            "artifacts",
            "docker",
            "images",
            "describe",
            reference,
            "--format=value(image_summary.digest)",
        ).strip()
    except GcloudError:
        return None
    return out or None


def resolve_image(
    gcloud: Gcloud,
    image: str,
    commit: str,
    promote_from: str = "",
    wait_seconds: float = 0,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[str, bool]:
    """(IMAGE@digest or "", skip_build). An environment that promotes copies the digest its
    source built (waiting for that build to push it), and checks the copy's digest."""
    if promote_from:
        source = f"{promote_from}:{commit}"
        digest = digest_of(gcloud, source)
        waited = 0.0
        while digest is None and waited < wait_seconds:
            sleep(30)
            waited += 30
            digest = digest_of(gcloud, source)
        if digest is None:
            raise LookupError(
                f"{source} does not exist: the source environment's build has not pushed it"
            )
        if digest_of(gcloud, f"{image}:{commit}") is None:
            gcloud.run(
                "container",
                "images",
                "add-tag",
                f"{promote_from}@{digest}",
                f"{image}:{commit}",
                "--quiet",
            )
        copied = digest_of(gcloud, f"{image}:{commit}")
        if copied != digest:
            raise RuntimeError(f"{image}:{commit} is {copied}, not the promoted {digest}")
        return f"{image}@{digest}", True
    existing = digest_of(gcloud, f"{image}:{commit}")
    if existing is not None:
        return f"{image}@{existing}", True
    return "", False


# ---- the image scan: Artifact Registry's automatic scanning of the pushed digest -------------

# Container Analysis' severities, least first (grafeas Severity; SEVERITY_UNSPECIFIED ranks
# below them all).
SEVERITIES = ("MINIMAL", "LOW", "MEDIUM", "HIGH", "CRITICAL")
# The scan's DISCOVERY occurrence (discovery.analysisStatus): still running, or done.
SCAN_RUNNING = frozenset({"ANALYSIS_STATUS_UNSPECIFIED", "PENDING", "SCANNING"})
SCAN_FINISHED = frozenset({"FINISHED_SUCCESS", "COMPLETE"})


class ScanError(RuntimeError):
    """The image's scan did not finish, or finished without a verdict: nothing is deployed."""


@dataclass(frozen=True)
class Finding:
    """One vulnerable package of the image, as the scan reports it."""

    severity: str
    cve: str
    package: str
    version: str
    fixed: str  # "" when no fixed version exists yet

    def line(self) -> str:
        fix = f"fixed in {self.fixed}" if self.fixed else "no fix released yet"
        return f"{self.severity:<8} {self.cve} {self.package} {self.version} ({fix})"


def scan_report(gcloud: Gcloud, image: str) -> dict[str, Any]:
    """`gcloud artifacts docker images describe IMAGE@DIGEST --show-package-vulnerability`:
    `discovery_summary.discovery[]` (the scan's status) and
    `package_vulnerability_summary.vulnerabilities` (severity -> occurrences)."""
    report: dict[str, Any] = gcloud.json(
        "artifacts", "docker", "images", "describe", image, "--show-package-vulnerability"
    )
    return report


def scan_statuses(report: dict[str, Any]) -> list[str]:
    """The analysisStatus of each DISCOVERY occurrence (none before the scan starts)."""
    discoveries = (report.get("discovery_summary") or {}).get("discovery") or []
    return [
        str(
            (occurrence.get("discovery") or {}).get("analysisStatus", "ANALYSIS_STATUS_UNSPECIFIED")
        )
        for occurrence in discoveries
    ]


def _version(version: dict[str, Any] | None) -> str:
    """A grafeas Version as the distribution writes it ("" for none, or the MAXIMUM marker
    that means no fixed version exists)."""
    if not version or version.get("kind") == "MAXIMUM":
        return ""
    if version.get("fullName"):
        return str(version["fullName"])
    name, revision = version.get("name", ""), version.get("revision", "")
    return f"{name}-{revision}" if name and revision else str(name)


def scan_findings(report: dict[str, Any]) -> list[Finding]:
    """Every (CVE, package, version) the scan found, most severe first."""
    groups = (report.get("package_vulnerability_summary") or {}).get("vulnerabilities") or {}
    found: dict[tuple[str, str, str], Finding] = {}
    for group_severity, occurrences in groups.items():
        for occurrence in occurrences:
            vulnerability = occurrence.get("vulnerability") or {}
            severity = str(
                vulnerability.get("effectiveSeverity")
                or vulnerability.get("severity")
                or group_severity
            )
            cve = str(occurrence.get("noteName", "")).rsplit("/", 1)[-1] or str(
                vulnerability.get("shortDescription", "unknown")
            )
            for issue in vulnerability.get("packageIssue") or [{}]:
                package = str(issue.get("affectedPackage", "unknown package"))
                version = _version(issue.get("affectedVersion")) or "?"
                key = (cve, package, version)
                if key not in found:
                    found[key] = Finding(
                        severity, cve, package, version, _version(issue.get("fixedVersion"))
                    )
    return sorted(found.values(), key=lambda f: (-severity_rank(f.severity), f.cve, f.package))


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else -1


def scan(
    gcloud: Gcloud,
    image: str,
    max_severity: str = "HIGH",
    timeout: float = 600,
    interval: float = 20,
    accept: Sequence[str] = (),
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> list[Finding]:
    """Waits for the scan of `image` (IMAGE@sha256:..., never a tag) and returns the findings
    that refuse it: more severe than `max_severity` and not named in `accept`. Raises
    ScanError when the scan does not finish within `timeout` seconds or fails."""
    if "@sha256:" not in image:
        raise ScanError(f"{image} is not a digest: the gate scans exactly what is deployed")
    deadline = clock() + timeout
    while True:
        report = scan_report(gcloud, image)
        statuses = scan_statuses(report)
        if statuses and all(status in SCAN_FINISHED for status in statuses):
            break
        ended = [s for s in statuses if s not in SCAN_FINISHED and s not in SCAN_RUNNING]
        if ended:
            raise ScanError(
                f"Artifact Registry's scan of {image} ended {ended[0]}: without a verdict "
                "nothing is deployed (infra/README.md, Image scan)"
            )
        left = deadline - clock()
        if left <= 0:
            state = ", ".join(statuses) or "not started"
            raise ScanError(
                f"timed out after {timeout:.0f} s waiting for Artifact Registry's scan of "
                f"{image} ({state}). Is containerscanning.googleapis.com enabled? Re-run the "
                "build once the scan has finished (infra/README.md, Image scan)"
            )
        print(f"waiting for the scan of {image}: {', '.join(statuses) or 'not started'}")
        sleep(min(interval, left))
    findings = scan_findings(report)
    limit = severity_rank(max_severity)
    above = [f for f in findings if severity_rank(f.severity) > limit]
    accepted = [f for f in above if f.cve in accept]
    refused = [f for f in above if f.cve not in accept]
    counts = {s: sum(f.severity == s for f in findings) for s in reversed(SEVERITIES)}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    print(f"scan of {image}: {summary or 'no vulnerability found'}")
    for finding in findings:
        mark = "REFUSED " if finding in refused else "ACCEPTED" if finding in accepted else ""
        print(f"  {mark:<8} {finding.line()}")
    if accepted:
        print(f"accepted by --accept (emergency override): {', '.join(f.cve for f in accepted)}")
    return refused


# ---- one release at a time ------------------------------------------------------------------


def older_running_builds(builds: list[dict[str, Any]], build_id: str) -> list[str]:
    """Ids of the running builds that started before `build_id` (ties broken by id)."""
    mine = next((b for b in builds if b.get("id") == build_id), None)
    if mine is None:
        return []
    key = (mine.get("createTime", ""), build_id)
    # A build still waiting for its approval (PENDING) holds no one up.
    running = [b for b in builds if b.get("status") in ("QUEUED", "WORKING")]
    return sorted(b["id"] for b in running if (b.get("createTime", ""), b["id"]) < key)


def wait_turn(
    gcloud: Gcloud, env: str, build_id: str, sleep: Callable[[float], None] = time.sleep
) -> None:
    while True:
        builds = gcloud.json("builds", "list", "--ongoing", f"--filter=tags=imangor-{env}")
        older = older_running_builds(builds, build_id)
        if not older:
            return
        print(f"waiting for {', '.join(older)} (one release at a time)", flush=True)
        sleep(20)


# ---- traffic ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    revision: str
    percent: int
    tag: str | None = None


def split(service: dict[str, Any]) -> list[Target]:
    """The revisions that carry traffic, from `gcloud run services describe --format=json`."""
    return [
        Target(t["revisionName"], int(t["percent"]), t.get("tag"))
        for t in service.get("status", {}).get("traffic", [])
        if t.get("percent") and t.get("revisionName")
    ]


def tagged(service: dict[str, Any], tag: str) -> dict[str, Any]:
    for target in service.get("status", {}).get("traffic", []):
        if target.get("tag") == tag:
            return dict(target)
    raise LookupError(f"no revision tagged {tag} on {service.get('metadata', {}).get('name')}")


def tag_url(service: dict[str, Any], tag: str) -> str:
    url = tagged(service, tag).get("url")
    if not url:
        raise LookupError(f"the revision tagged {tag} has no URL")
    return str(url)


def stale_tags(service: dict[str, Any], keep: Sequence[str]) -> list[str]:
    tags = {t.get("tag") for t in service.get("status", {}).get("traffic", [])}
    return sorted(t for t in tags if t and t.startswith(TAG_PREFIX) and t not in keep)


def describe(gcloud: Gcloud, service: str, region: str) -> dict[str, Any]:
    found: dict[str, Any] = gcloud.json(
        "run", "services", "describe", service, f"--region={region}"
    )
    return found


def record(
    gcloud: Gcloud, names: list[str], prefix: str, region: str
) -> dict[str, list[dict[str, Any]]]:
    return {
        unit: [vars(t) for t in split(describe(gcloud, f"{prefix}-{unit}", region))]
        for unit in names
    }


def move_to_tag(gcloud: Gcloud, service: str, region: str, tag: str) -> None:
    gcloud.run(
        "run",
        "services",
        "update-traffic",
        service,
        f"--region={region}",
        f"--to-tags={tag}=100",
        "--quiet",
    )


def rollback(
    gcloud: Gcloud, previous: dict[str, list[dict[str, Any]]], prefix: str, region: str
) -> list[str]:
    """Every unit back to its recorded split; returns the units that could not be moved."""
    failed = []
    for unit, targets in sorted(previous.items()):
        if not targets:
            continue
        revisions = ",".join(f"{t['revision']}={t['percent']}" for t in targets)
        try:
            gcloud.run(
                "run",
                "services",
                "update-traffic",
                f"{prefix}-{unit}",
                f"--region={region}",
                f"--to-revisions={revisions}",
                "--quiet",
            )
        except GcloudError as error:
            print(f"ROLLBACK FAILED for {unit}: {error}", file=sys.stderr)
            failed.append(unit)
    return failed


# ---- checks ---------------------------------------------------------------------------------


def smoke_checks(inventory: dict[str, Any]) -> list[tuple[str, str]]:
    """(unit, path) for every public unit: each answers /health and /ready itself (its own
    dependencies; imangor.runtime.probes). Internal units cannot be called from here."""
    return [
        (name, path)
        for name, unit in sorted(inventory["units"].items())
        if not unit["internal"]
        for path in HEALTH_PATHS
    ]


def smoke_args(
    inventory: dict[str, Any],
    prefix: str,
    tag: str | None,
    describe_service: Callable[[str], dict[str, Any]],
) -> list[str]:
    """URLs the smoke job checks: on the revisions tagged `tag`, or each service's own URL."""
    urls: dict[str, str] = {}
    args = []
    for unit, path in smoke_checks(inventory):
        if unit not in urls:
            service = describe_service(f"{prefix}-{unit}")
            url = tag_url(service, tag) if tag else str(service["status"]["url"])
            urls[unit] = url.rstrip("/")
        args.append(f"{urls[unit]}{path}")
    return args


def run_smoke_job(gcloud: Gcloud, job: str, region: str, args: list[str]) -> None:
    gcloud.run(
        "run", "jobs", "execute", job, f"--region={region}", "--wait", f"--args={','.join(args)}"
    )


# ---- DAST: schemathesis against the tagged revisions, before traffic moves -------------------

# Beyond reads (GET), the only operations the DAST pass calls: public, unauthenticated, and
# unable to change anyone's data, because what the generator sends (an e-mail and password,
# a refresh, reset or Google ID token) matches no account, session or request. It runs on
# production data in prod, so anything that creates, changes or deletes is left out; among
# the public POSTs that means POST /auth/register (it would create accounts) and
# POST /auth/password-recovery (it would mail generated addresses).
DAST_WRITES = {
    "POST /auth/token": "generated credentials sign no one in",
    "POST /auth/refresh": "a generated refresh token matches no session",
    "POST /auth/logout": "a generated refresh token ends no session",
    "POST /auth/reset-password": "a generated reset token matches no request",  # pragma: allowlist secret  # noqa: E501
    "POST /auth/google": "a generated ID token fails Google's signature check",
}
DAST_READS = frozenset({"GET"})
SCHEMA_UNIT = "docs"  # serves the committed OpenAPI document at /openapi.json
SCHEMA_PATH = "/openapi.json"


def load_openapi(path: Path = OPENAPI) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def dast_operations(inventory: dict[str, Any], document: dict[str, Any]) -> dict[str, list[str]]:
    """Public unit -> the operationIds of the document the DAST pass exercises on it: each
    GET of the unit, and the public calls of DAST_WRITES. Routes the document does not
    describe (the docs pages, /metrics) are left to the smoke test."""
    plan: dict[str, list[str]] = {}
    for name, unit in sorted(inventory["units"].items()):
        if unit["internal"]:
            continue
        ids = []
        for route in unit["routes"]:
            method, _, path = route.partition(" ")
            operation = document["paths"].get(path, {}).get(method.lower())
            if operation is None:
                continue
            if method in DAST_READS or route in DAST_WRITES:
                ids.append(str(operation["operationId"]))
        if ids:
            plan[name] = sorted(ids)
    return plan


def dast_args(
    inventory: dict[str, Any],
    document: dict[str, Any],
    prefix: str,
    tag: str,
    describe_service: Callable[[str], dict[str, Any]],
) -> list[str]:
    """The DAST job's arguments: the schema URL (the tagged docs unit's /openapi.json, the
    document committed with this release), then per unit its tagged URL and an anchored
    regex of the operationIds it may call (schemathesis --include-operation-id-regex)."""
    if SCHEMA_UNIT not in inventory["units"] or inventory["units"][SCHEMA_UNIT]["internal"]:
        raise LookupError(f"no public {SCHEMA_UNIT} unit serves {SCHEMA_PATH}")

    def url(unit: str) -> str:
        return tag_url(describe_service(f"{prefix}-{unit}"), tag).rstrip("/")

    args = [url(SCHEMA_UNIT) + SCHEMA_PATH]
    for unit, ids in dast_operations(inventory, document).items():
        args += [url(unit), "^(" + "|".join(re.escape(i) for i in ids) + ")$"]
    # gcloud run jobs execute --args takes a comma-separated list.
    bad = [arg for arg in args if "," in arg]
    if bad:
        raise ValueError(f"a DAST argument contains a comma: {bad}")
    return args


Query = Callable[[str], float | None]


def prometheus_query(project: str, token: str) -> Query:
    """One PromQL instant query against Cloud Monitoring; the first sample's value, or None
    when the series is empty."""

    def query(promql: str) -> float | None:
        body = urllib.parse.urlencode({"query": promql}).encode()
        request = urllib.request.Request(  # noqa: S310 - a fixed https URL
            MONITORING.format(project=project),
            data=body,
            headers={"Authorization": f"Bearer {token}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310  # nosec B310
            result = json.load(response)["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    return query


def error_ratio_problem(
    query: Query, service: str, revision: str, window: str, max_ratio: float, min_requests: int
) -> str | None:
    """Why a revision's 5xx ratio over `window` fails the release, or None. Fewer requests than
    `min_requests` are too few to judge: health (the smoke job) decides alone then."""
    selector = (
        f'monitored_resource="cloud_run_revision",service_name="{service}",'
        f'revision_name="{revision}"'
    )
    total = query(f"sum(increase(run_googleapis_com:request_count{{{selector}}}[{window}]))") or 0.0
    if total < min_requests:
        print(f"{service}: {total:.0f} requests in {window}, too few to judge the error rate")
        return None
    errors = (
        query(
            f'sum(increase(run_googleapis_com:request_count{{{selector},response_code_class="5xx"}}[{window}]))'
        )
        or 0.0
    )
    ratio = errors / total
    print(f"{service}: {errors:.0f} of {total:.0f} requests 5xx ({ratio:.1%}) in {window}")
    if ratio > max_ratio:
        return f"{service} {revision}: {ratio:.1%} 5xx (more than {max_ratio:.0%})"
    return None


@dataclass(frozen=True)
class Release:
    prefix: str
    region: str
    tag: str
    smoke_job: str
    watch_seconds: float = 300
    max_error_ratio: float = 0.05
    min_requests: int = 50


def release(
    gcloud: Gcloud,
    inventory: dict[str, Any],
    previous: dict[str, list[dict[str, Any]]],
    plan: Release,
    query: Query,
    sleep: Callable[[float], None] = time.sleep,
) -> list[str]:
    """Shift, check, and roll back on failure. Returns the problems (empty: released)."""
    names = units(inventory)
    problems: list[str] = []
    revisions: dict[str, str] = {}
    try:
        for unit in names:
            service = f"{plan.prefix}-{unit}"
            revisions[unit] = str(
                tagged(describe(gcloud, service, plan.region), plan.tag)["revisionName"]
            )
            move_to_tag(gcloud, service, plan.region, plan.tag)
        sleep(plan.watch_seconds)  # traffic reaches the new revisions; metrics arrive
        describe_service = lambda name: describe(gcloud, name, plan.region)  # noqa: E731
        try:
            run_smoke_job(
                gcloud,
                plan.smoke_job,
                plan.region,
                smoke_args(inventory, plan.prefix, None, describe_service),
            )
        except GcloudError as error:
            problems.append(f"health after the shift: {error}")
        window = f"{max(60, int(plan.watch_seconds))}s"
        for unit in names:
            found = error_ratio_problem(
                query,
                f"{plan.prefix}-{unit}",
                revisions[unit],
                window,
                plan.max_error_ratio,
                plan.min_requests,
            )
            if found:
                problems.append(found)
    except (GcloudError, LookupError) as error:
        problems.append(f"shift: {error}")
    if problems:
        print("RELEASE FAILED, rolling back:\n  " + "\n  ".join(problems), file=sys.stderr)
        failed = rollback(gcloud, previous, plan.prefix, plan.region)
        if failed:
            problems.append(
                f"rollback failed for {', '.join(failed)}: see infra/README.md, Rollback"
            )
        return problems
    for unit in names:
        service = f"{plan.prefix}-{unit}"
        keep = [plan.tag, *(t["tag"] for t in previous.get(unit, []) if t.get("tag"))]
        stale = stale_tags(describe(gcloud, service, plan.region), keep)
        if stale:
            gcloud.run(
                "run",
                "services",
                "update-traffic",
                service,
                f"--region={plan.region}",
                f"--remove-tags={','.join(stale)}",
                "--quiet",
            )
    return []


# ---- command line ---------------------------------------------------------------------------


def main(argv: list[str] | None = None, gcloud: Gcloud | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("units")
    resolve = commands.add_parser("resolve-image")
    pushed = commands.add_parser("pushed")
    for sub in (resolve, pushed):
        sub.add_argument("--image", required=True)
        sub.add_argument("--commit", required=True)
        sub.add_argument("--out", required=True, type=Path)
    resolve.add_argument("--promote-from", default="")
    resolve.add_argument("--wait", type=float, default=1800)
    scanned = commands.add_parser("scan")
    scanned.add_argument("--image", required=True, help="IMAGE@sha256:... (never a tag)")
    scanned.add_argument("--max-severity", choices=SEVERITIES, default="HIGH")
    scanned.add_argument("--timeout", type=float, default=600)
    scanned.add_argument("--interval", type=float, default=20)
    scanned.add_argument("--accept", default="", help="CVE ids to let through (, or space)")
    turn = commands.add_parser("wait-turn")
    turn.add_argument("--env", required=True)
    turn.add_argument("--build", required=True)
    smoke = commands.add_parser("smoke-args")
    smoke.add_argument("--tag")
    smoke.add_argument("--main", action="store_true")
    dast = commands.add_parser("dast-args")
    dast.add_argument("--tag", required=True)
    rec = commands.add_parser("record")
    rec.add_argument("--out", required=True, type=Path)
    rel = commands.add_parser("release")
    rel.add_argument("--tag", required=True)
    rel.add_argument("--project", required=True)
    rel.add_argument("--smoke-job", required=True)
    rel.add_argument("--watch", type=float, default=300)
    rel.add_argument("--max-error-ratio", type=float, default=0.05)
    rel.add_argument("--min-requests", type=int, default=50)
    back = commands.add_parser("rollback")
    for sub in (smoke, dast, rec, rel, back):
        sub.add_argument("--prefix", required=True)
        sub.add_argument("--region", required=True)
    for sub in (rel, back):
        sub.add_argument("--previous", required=True, type=Path)
    args = parser.parse_args(argv)
    gcloud = gcloud or Gcloud()

    if args.command == "units":
        print("\n".join(units(load_inventory())))
    elif args.command == "resolve-image":
        image, skip = resolve_image(gcloud, args.image, args.commit, args.promote_from, args.wait)
        if skip:
            args.out.write_text(image)
        print("skip" if skip else "build")
    elif args.command == "pushed":
        digest = digest_of(gcloud, f"{args.image}:{args.commit}")
        if digest is None:
            raise LookupError(f"{args.image}:{args.commit} was not pushed")
        args.out.write_text(f"{args.image}@{digest}")
    elif args.command == "scan":
        accept = [cve for cve in re.split(r"[,\s]+", args.accept) if cve]
        try:
            refused = scan(
                gcloud, args.image, args.max_severity, args.timeout, args.interval, accept
            )
        except (ScanError, GcloudError) as error:
            print(f"SCAN GATE: {error}", file=sys.stderr)
            return 1
        if refused:
            print(
                f"REFUSED: {len(refused)} finding(s) above {args.max_severity} in {args.image}; "
                "nothing was deployed. Rebuild on a patched base image or dependency, or accept "
                "a named CVE with _ACCEPT_CVES (infra/README.md, Image scan)",
                file=sys.stderr,
            )
            return 1
    elif args.command == "wait-turn":
        wait_turn(gcloud, args.env, args.build)
    elif args.command == "smoke-args":
        if not args.main and not args.tag:
            parser.error("smoke-args needs --tag or --main")
        found = smoke_args(
            load_inventory(),
            args.prefix,
            None if args.main else args.tag,
            lambda name: describe(gcloud, name, args.region),
        )
        print(",".join(found))
    elif args.command == "dast-args":
        found = dast_args(
            load_inventory(),
            load_openapi(),
            args.prefix,
            args.tag,
            lambda name: describe(gcloud, name, args.region),
        )
        print(",".join(found))
    elif args.command == "record":
        args.out.write_text(
            json.dumps(record(gcloud, units(load_inventory()), args.prefix, args.region))
        )
    elif args.command == "release":
        token = gcloud.run("auth", "print-access-token").strip()
        plan = Release(
            args.prefix,
            args.region,
            args.tag,
            args.smoke_job,
            args.watch,
            args.max_error_ratio,
            args.min_requests,
        )
        problems = release(
            gcloud,
            load_inventory(),
            json.loads(args.previous.read_text()),
            plan,
            prometheus_query(args.project, token),
        )
        return 1 if problems else 0
    else:
        failed = rollback(gcloud, json.loads(args.previous.read_text()), args.prefix, args.region)
        return 1 if failed else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
