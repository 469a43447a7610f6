"""Recency weights for offer outcomes: an outcome weighs 1 when it happens and half as much
every `HALF_LIFE` (7 days) after, so a tenant's evidence follows a change in what its users claim.

The weights are kept pre-scaled so they can be added up as outcomes happen, in any order and
by concurrent writers: an outcome at instant t is stored as `scaled(t)` = 2 ** ((t - EPOCH) /
HALF_LIFE). A sum of those, divided by `scaled(as_of)`, is exactly the sum of each outcome's
weight at `as_of`: 2 ** (-(as_of - t) / HALF_LIFE) each. A float holds `scaled(t)` for about
1,000 half-lives after `EPOCH` (19 years at 7 days: a migration must move `EPOCH`, dividing
the stored sums by the same factor, before 2045).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

HALF_LIFE = timedelta(days=7)
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def scaled(at: datetime) -> float:
    """The stored weight of one outcome at `at`."""
    return float(2.0 ** ((at - EPOCH) / HALF_LIFE))


def decayed(total: float, as_of: datetime) -> float:
    """A sum of stored weights as the sum of the outcomes' weights at `as_of`."""
    return total / scaled(as_of)
