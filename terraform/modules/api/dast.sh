#!/bin/sh
# The DAST job's program (modules/api passes it to the schemathesis image as `sh -c`; the
# image is Alpine, so POSIX sh and busybox). Arguments, from `release.py dast-args`:
# SCHEMA_URL, then UNIT_URL OPERATION_REGEX pairs. Every unit runs, then the job fails if
# any failed; a unit over DAST_UNIT_SECONDS is a failure. Settings come from the job's env:
# DAST_CHECKS, DAST_MAX_EXAMPLES, DAST_UNIT_SECONDS.
set -u
if [ "$#" -lt 3 ] || [ $(( $# % 2 )) -eq 0 ]; then
  echo "usage: SCHEMA_URL UNIT_URL OPERATION_REGEX [UNIT_URL OPERATION_REGEX]..." >&2
  exit 2
fi
schema="$1"
shift
failed=""
while [ "$#" -ge 2 ]; do
  echo "== DAST $1: $2"
  timeout "$DAST_UNIT_SECONDS" schemathesis run "$schema" --url="$1" \
    --include-operation-id-regex="$2" --checks="$DAST_CHECKS" \
    --phases=examples,coverage,fuzzing --mode=all --max-examples="$DAST_MAX_EXAMPLES" \
    --workers=2 --request-timeout=10 --wait-for-schema=60 \
    --suppress-health-check=all --warnings=off --generation-database=none
  status=$?
  if [ "$status" -ne 0 ]; then
    echo "== DAST FAILED $1 (exit $status; 124 or 143: over $DAST_UNIT_SECONDS s)"
    failed="$failed $1"
  fi
  shift 2
done
if [ -n "$failed" ]; then
  echo "DAST failed on:$failed" >&2
  exit 1
fi
echo "DAST passed"
