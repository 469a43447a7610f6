"""The holdout assignment (rules/holdout.py): stable, by tenant and externalId, of the share."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from journeys.rules.holdout import DEFAULT_HOLDOUT_SHARE, held_out, holdout_point

PARTNER = "6f1d3c2a-0000-4000-8000-000000000001"


def test_the_documented_default_is_five_percent() -> None:
    assert DEFAULT_HOLDOUT_SHARE == 0.05


def test_about_the_share_of_many_users_is_held_out() -> None:
    users = [f"user-{n}" for n in range(20_000)]
    out = sum(held_out(PARTNER, "LIVE", user, 0.05) for user in users)
    assert 0.045 <= out / len(users) <= 0.055


def test_the_point_is_fixed_for_a_tenant_and_id_and_differs_between_them() -> None:
    assert holdout_point(PARTNER, "LIVE", "u1") == holdout_point(PARTNER, "LIVE", "u1")
    points = {
        holdout_point(PARTNER, "LIVE", "u1"),
        holdout_point(PARTNER, "TEST", "u1"),
        holdout_point("6f1d3c2a-0000-4000-8000-000000000002", "LIVE", "u1"),
        holdout_point(PARTNER, "LIVE", "u2"),
    }
    assert len(points) == 4


@given(st.text(min_size=1, max_size=128), st.floats(0, 1), st.floats(0, 1))
def test_a_larger_share_holds_out_a_superset(external_id: str, low: float, high: float) -> None:
    low, high = min(low, high), max(low, high)
    assert 0 <= holdout_point(PARTNER, "TEST", external_id) < 1
    if held_out(PARTNER, "TEST", external_id, low):
        assert held_out(PARTNER, "TEST", external_id, high)
    assert not held_out(PARTNER, "TEST", external_id, 0.0)
    assert held_out(PARTNER, "TEST", external_id, 1.0)
