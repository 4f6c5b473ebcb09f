"""`make faults`: the fault suite's long run (`--short` for the one `make test` runs)."""

from __future__ import annotations

import argparse
import logging
import sys

from tests.faults.harness import Profile, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--short", action="store_true", help="the short run of make test")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    report = run(Profile.short() if args.short else Profile.long())
    print(report.summary())
    problems = report.problems()
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
