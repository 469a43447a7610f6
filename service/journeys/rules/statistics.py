"""The offer report's intervals: pure arithmetic, 95 % two-sided (z = 1.959964).

- A claim rate's interval is Wilson's score interval for `successes` of `n`:
  (p + z²/2n ± z·sqrt(p(1 - p)/n + z²/4n²)) / (1 + z²/n), with p = successes / n.
  None for n = 0 (no claimed or expired offer: no rate to estimate).
- A difference of two means (treatment - holdout) has the normal-approximation (Welch)
  interval: d ± z·sqrt(s₁²/n₁ + s₂²/n₂), with the sample variances s² (n - 1 in the
  denominator). None when either group has fewer than 2 users.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Z95 = 1.959964


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float


def claim_rate(successes: int, n: int) -> Estimate | None:
    if n <= 0:
        return None
    p = successes / n
    z2 = Z95 * Z95
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return Estimate(p, max(0.0, centre - half), min(1.0, centre + half))


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def difference_of_means(treatment: Sequence[float], holdout: Sequence[float]) -> Estimate | None:
    if len(treatment) < 2 or len(holdout) < 2:
        return None
    a, b = sum(treatment) / len(treatment), sum(holdout) / len(holdout)
    spread = math.sqrt(
        _variance(treatment, a) / len(treatment) + _variance(holdout, b) / len(holdout)
    )
    return Estimate(a - b, a - b - Z95 * spread, a - b + Z95 * spread)


def _variance(values: Sequence[float], centre: float) -> float:
    return sum((value - centre) ** 2 for value in values) / (len(values) - 1)
