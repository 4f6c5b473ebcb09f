"""The fault suite's short run (`make faults` runs the long one): PostgreSQL stopped and
frozen, Redis stopped and paused, the API server killed mid-order, under a mixed load
against servers the suite starts itself (see harness.py)."""

from __future__ import annotations

import pytest

from tests.faults.harness import Profile, run

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("faults")]


def test_faults_give_only_503s_and_lose_or_double_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = run(Profile.short())
    with capsys.disabled():
        print(f"\n{report.summary()}")
    assert report.problems() == []  # other 5xx, lost, doubled, stock, jobs, restarts, unfelt
