"""What cloudbuild.yaml's release steps read from the inventory and from gcloud.

    python3 infra/tools/release.py units
        every unit of terraform/generated/inventory.json, one per line
    python3 infra/tools/release.py smoke-args --prefix imangor-dev --region R --tag c-abc1234
        the smoke job's arguments: /health and /ready of the health unit (must be 2xx) and one
        path of every other public unit (~URL: below 500), on the revisions tagged TAG
    python3 infra/tools/release.py stale-tags --keep c-abc1234 < service.json
        release tags (c-*) of a service other than KEEP, comma-separated, from
        `gcloud run services describe --format=json`

Standard library only: it runs in the gcloud image, from the source checkout.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

INVENTORY = Path(__file__).resolve().parents[2] / "terraform" / "generated" / "inventory.json"
HEALTH_UNIT = "health"
HEALTH_PATHS = ("/health", "/ready")
TAG_PREFIX = "c-"

Describe = Callable[[str], dict[str, Any]]


def load_inventory(path: Path = INVENTORY) -> dict[str, Any]:
    inventory: dict[str, Any] = json.loads(path.read_text())
    return inventory


def units(inventory: dict[str, Any]) -> list[str]:
    return sorted(inventory["units"])


def smoke_checks(inventory: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(unit, path, lenient) for every public unit; internal ones are not reachable here."""
    checks: list[tuple[str, str, bool]] = []
    for name, unit in sorted(inventory["units"].items()):
        if unit["internal"] or not unit["paths"]:
            continue
        if name == HEALTH_UNIT:
            missing = [p for p in HEALTH_PATHS if p not in unit["paths"]]
            if missing:
                raise ValueError(f"the health unit does not serve {', '.join(missing)}")
            checks += [(name, path, False) for path in HEALTH_PATHS]
        else:
            checks.append((name, unit["paths"][0], True))
    return checks


def tag_url(service: dict[str, Any], tag: str) -> str:
    for target in service.get("status", {}).get("traffic", []):
        if target.get("tag") == tag and target.get("url"):
            return str(target["url"])
    raise LookupError(f"no revision tagged {tag} on {service.get('metadata', {}).get('name')}")


def stale_tags(service: dict[str, Any], keep: str) -> list[str]:
    tags = {t.get("tag") for t in service.get("status", {}).get("traffic", [])}
    return sorted(t for t in tags if t and t.startswith(TAG_PREFIX) and t != keep)


def smoke_args(inventory: dict[str, Any], prefix: str, tag: str, describe: Describe) -> list[str]:
    urls: dict[str, str] = {}
    args = []
    for unit, path, lenient in smoke_checks(inventory):
        if unit not in urls:
            urls[unit] = tag_url(describe(f"{prefix}-{unit}"), tag).rstrip("/")
        args.append(f"{'~' if lenient else ''}{urls[unit]}{path}")
    return args


def gcloud_describe(region: str) -> Describe:
    def describe(service: str) -> dict[str, Any]:
        command = ["gcloud", "run", "services", "describe", service, f"--region={region}"]
        out = subprocess.run(  # noqa: S603
            [*command, "--format=json"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        result: dict[str, Any] = json.loads(out)
        return result

    return describe


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("units")
    smoke = commands.add_parser("smoke-args")
    smoke.add_argument("--prefix", required=True)
    smoke.add_argument("--region", required=True)
    smoke.add_argument("--tag", required=True)
    stale = commands.add_parser("stale-tags")
    stale.add_argument("--keep", required=True)
    args = parser.parse_args(argv)

    if args.command == "units":
        print("\n".join(units(load_inventory())))
    elif args.command == "smoke-args":
        describe = gcloud_describe(args.region)
        print(",".join(smoke_args(load_inventory(), args.prefix, args.tag, describe)))
    else:
        print(",".join(stale_tags(json.load(sys.stdin), args.keep)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
