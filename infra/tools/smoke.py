"""Smoke-test a release's tagged Cloud Run revisions before they get any traffic.

    python infra/tools/smoke.py URL [URL ...]

A plain URL must answer 2xx; a URL written ``~URL`` must answer below 500 (the unit started
and serves; a 401 or 404 to an anonymous GET is fine). Connection errors and 5xx are retried
a few times, for cold starts. The exit status is 1 if any URL fails, and every failure is
printed. Standard library only: Cloud Build runs it in the release image as the Cloud Run
job PREFIX-smoke, whose egress goes through the VPC, so that the calls count as internal
traffic for units that only accept the load balancer.
"""

from __future__ import annotations

import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

ATTEMPTS = 5
TIMEOUT_SECONDS = 10.0
BACKOFF_SECONDS = 2.0


@dataclass(frozen=True)
class Check:
    url: str
    lenient: bool  # any status below 500 passes

    @classmethod
    def parse(cls, arg: str) -> Check:
        lenient = arg.startswith("~")
        url = arg.removeprefix("~")
        if not url.startswith(("https://", "http://")):
            raise ValueError(f"not an http(s) URL: {arg!r}")
        return cls(url, lenient)

    def passes(self, status: int) -> bool:
        return status < 500 if self.lenient else 200 <= status < 300


def fetch_status(url: str, timeout: float = TIMEOUT_SECONDS) -> int:
    """The HTTP status of a GET (error statuses included); raises OSError if unreachable."""
    request = urllib.request.Request(url, headers={"User-Agent": "imangor-smoke"})  # noqa: S310
    try:
        # Only http(s) URLs reach here (Check.parse refuses other schemes).
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310  # nosec B310
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def run(check: Check, attempts: int | None = None, backoff: float | None = None) -> str | None:
    """None if the check passes, else what went wrong on the last attempt."""
    attempts = ATTEMPTS if attempts is None else attempts
    backoff = BACKOFF_SECONDS if backoff is None else backoff
    problem = "not tried"
    for attempt in range(1, attempts + 1):
        try:
            status = fetch_status(check.url)
        except OSError as error:  # URLError, timeouts, refused connections
            problem = f"unreachable: {error}"
        else:
            if check.passes(status):
                return None
            problem = f"HTTP {status}"
            if status < 500:  # a definite answer: retrying will not change it
                break
        if attempt < attempts:
            time.sleep(backoff * attempt)
    return problem


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    checks = [Check.parse(arg) for arg in args]
    failures = 0
    for check in checks:
        problem = run(check)
        print(
            f"{'ok  ' if problem is None else 'FAIL'} {check.url}"
            + (f": {problem}" if problem else "")
        )
        failures += problem is not None
    print(f"{len(checks) - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
