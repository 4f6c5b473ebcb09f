"""The cold-start bench's verdicts rest on its bootstrap interval: check the statistics."""

import math

from bench.cold_start import _certainty, ratio_interval


def test_a_unit_twice_as_slow_is_placed_around_two_and_the_same_one_around_one() -> None:
    baseline = [0.20, 0.25, 0.30, 0.22, 0.27, 0.24, 0.26, 0.23, 0.28, 0.21]
    low, high = ratio_interval([2 * v for v in baseline], baseline)
    assert 1.5 < low <= 2.0 <= high < 2.5
    low, high = ratio_interval(list(baseline), baseline)
    assert low < 1.0 < high


def test_the_interval_holds_the_ratio_of_medians_and_is_reproducible() -> None:
    baseline = [0.20, 0.31, 0.24, 0.27, 0.22, 0.35, 0.25, 0.29, 0.21, 0.26]
    unit = [0.33, 0.30, 0.41, 0.36, 0.29, 0.45, 0.34, 0.38, 0.31, 0.37]
    low, high = ratio_interval(unit, baseline)
    assert low < 0.355 / 0.255 < high  # the medians' ratio, 1.39
    assert high - low > 0.1  # noisy samples give a wide interval
    assert ratio_interval(unit, baseline) == (low, high)


def test_a_target_whose_starts_all_failed_has_no_interval() -> None:
    low, high = ratio_interval([], [0.2, 0.3])
    assert math.isnan(low) and math.isnan(high)
    assert _certainty(low, high, 1.1) == "no samples"


def test_a_verdict_is_certain_only_when_the_interval_is_on_one_side() -> None:
    assert _certainty(1.01, 1.09, 1.1) == "met"
    assert _certainty(1.12, 1.30, 1.1) == "missed"
    assert _certainty(1.05, 1.15, 1.1) == "within noise"
