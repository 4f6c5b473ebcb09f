"""`make cron NAME=daily-report`: run a scheduled job now, through the running `make dev`,
the way Cloud Scheduler would (an OIDC-signed POST of the inventory's path to the cron unit
with the schedule time), and print what the job did.

    python -m infra.local.cron NAME [--at 2026-12-04T01:30:00Z]
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime

from infra.local.inventory import load_inventory
from infra.local.state import LOCAL, NotRunning, running

SCHEDULER_ACCOUNT = "scheduler@local.test"  # the account make dev's cron unit accepts


def main(argv: list[str] | None = None) -> int:
    schedules = sorted(load_inventory()["schedules"])
    parser = argparse.ArgumentParser(description="Run a scheduled job now through make dev.")
    parser.add_argument("name", help=f"one of: {', '.join(schedules)}")
    parser.add_argument(
        "--at", type=datetime.fromisoformat, help="schedule time to run for (default: now)"
    )
    args = parser.parse_args(argv)
    if args.name not in schedules:
        print(
            f"error: no scheduled job {args.name!r}; jobs: {', '.join(schedules)}", file=sys.stderr
        )
        return 2
    try:
        dev = running()
    except NotRunning as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    import requests

    from infra.local.tasks import LocalScheduler, LocalSigner

    signer = LocalSigner(LOCAL / "oidc")
    scheduler = LocalScheduler(signer, dev["base_url"], dev["oidc_audience"], SCHEDULER_ACCOUNT)
    try:
        answer = scheduler.trigger(args.name, args.at)
    except requests.RequestException as exc:
        print(f"error: make dev did not answer at {dev['base_url']}: {exc}", file=sys.stderr)
        return 1
    try:
        outcome = answer.json()
    except ValueError:
        outcome = answer.text
    print(json.dumps({"status": answer.status_code, "outcome": outcome}, indent=2))
    return 0 if answer.ok else 1


if __name__ == "__main__":
    sys.exit(main())
