"""The report's intervals (rules/statistics.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from journeys.rules.statistics import claim_rate, difference_of_means, mean


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [
        # Wilson 95 % intervals (0 of 10 -> 0-0.2775 and 1 of 2 -> 0.0945-0.9055 are the
        # textbook values).
        (81, 263, 0.2553, 0.3662),
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
        (1, 2, 0.0945, 0.9055),
    ],
)
def test_wilson_intervals(successes: int, n: int, low: float, high: float) -> None:
    estimate = claim_rate(successes, n)
    assert estimate is not None
    assert estimate.value == successes / n
    assert (round(estimate.low, 4), round(estimate.high, 4)) == (low, high)


def test_no_outcome_no_rate() -> None:
    assert claim_rate(0, 0) is None


@given(st.integers(0, 10_000), st.integers(1, 10_000))
def test_the_interval_holds_the_rate_within_0_and_1(successes: int, extra: int) -> None:
    n = successes + extra
    estimate = claim_rate(successes, n)
    assert estimate is not None
    assert 0 <= estimate.low <= estimate.value <= estimate.high <= 1


def test_difference_of_means() -> None:
    estimate = difference_of_means([3, 5, 7], [1, 2, 3])
    assert estimate is not None
    # means 5 and 2; variances 4 and 1: se = sqrt(4/3 + 1/3) = 1.2910
    assert estimate.value == 3
    assert round(estimate.low, 3) == round(3 - 1.959964 * 1.290994, 3)
    assert round(estimate.high, 3) == round(3 + 1.959964 * 1.290994, 3)
    assert difference_of_means([1], [1, 2]) is None
    assert mean([]) is None
    assert mean([1, 2]) == 1.5
