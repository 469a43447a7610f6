"""The due-time rule: the earliest instant at which the job's stored results can change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from journeys.rules import Activity, OfferHistory, classify
from journeys.rules.due import (
    after_planning,
    classification_changes_at,
    next_change_at,
    offers_change_at,
    window_exit,
)
from journeys.rules.segments import churn_risk_rises_on_day, churn_risk_score
from journeys.usecases.catalogue import entries

AS_OF = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
CATALOGUE = entries()


def activity(
    last_days: float, first_days: float = 40, events: int = 20, days: int = 10
) -> Activity:
    return Activity(
        first_seen_at=AS_OF - first_days * DAY,
        last_seen_at=AS_OF - last_days * DAY,
        total_events=events,
        total_plays=events,
        plays_7d=0,
        plays_30d=0,
        points_earned_7d=0,
        points_earned_30d=0,
        campaigns_joined=0,
        active_days=days,
    )


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        # Seen 2.5 days ago: the score's recency term moves at day 3.
        (activity(2.5), AS_OF + 0.5 * DAY),
        # New: 2 events, first seen 6.75 days ago: leaves `new` at 8 days (stage), but the
        # daily recency step comes first.
        (activity(0.25, first_days=6.75, events=2, days=1), AS_OF + 0.75 * DAY),
        # No events, seen 5 days ago: only the stage edge at 14 days counts.
        (activity(5, first_days=20, events=0, days=0), AS_OF + 9 * DAY),
        # No events, 20 days: churned at 31.
        (activity(20, first_days=20, events=0, days=0), AS_OF + 11 * DAY),
        # No events, silent 100 days: nothing can change.
        (activity(100, first_days=100, events=0, days=0), None),
    ],
)
def test_classification_changes_at(who: Activity, expected: datetime | None) -> None:
    assert classification_changes_at(who, None, AS_OF) == expected


def test_a_window_exit_earlier_than_the_day_edges_decides() -> None:
    leaves = AS_OF + timedelta(hours=2)
    assert classification_changes_at(activity(2.5), leaves, AS_OF) == leaves


@pytest.mark.parametrize("gap_days", [1, 3, 7, 30])
@pytest.mark.parametrize("silent", [0, 1, 5, 31, 90, 400])
def test_churn_risk_rises_on_exactly_the_next_day_it_changes(gap_days: int, silent: int) -> None:
    who = activity(0, first_days=gap_days * 9, days=10)
    last_seen = who.last_seen_at
    assert last_seen is not None
    risk = churn_risk_score(who, last_seen + silent * DAY)
    rises = churn_risk_rises_on_day(who, silent)
    later = [
        day
        for day in range(silent + 1, silent + 20000)
        if churn_risk_score(who, last_seen + day * DAY) != risk
    ][:1]
    assert rises == (later[0] if later else None)


def test_nothing_the_classification_gives_changes_before_the_due_instant() -> None:
    for last in (0.1, 2.5, 13.9, 29.5, 45.0):
        who = activity(last)
        due = classification_changes_at(who, None, AS_OF)
        assert due is not None
        just_before = due - timedelta(seconds=1)
        assert classify(who, just_before) == classify(who, AS_OF)
        assert classify(who, due) != classify(who, AS_OF)


def test_window_exit() -> None:
    at = AS_OF - 29 * DAY
    assert window_exit(at, None) == at + 30 * DAY + timedelta(microseconds=1)
    assert window_exit(None, AS_OF - 20 * DAY) == AS_OF + 10 * DAY
    assert window_exit(None, None) is None


def test_offers_change_at_expiry_cooldown_end_or_next_utc_midnight() -> None:
    expiring = OfferHistory(frozenset({"vip_play"}), active_expires_at={"vip_play": AS_OF + DAY})
    assert offers_change_at(expiring, CATALOGUE, AS_OF) == AS_OF + DAY
    cooling = OfferHistory(last_ended_at={"retention_play": AS_OF - DAY})
    assert offers_change_at(cooling, CATALOGUE, AS_OF) == AS_OF + 6 * DAY  # 7-day cooldown
    # Made now: its once-a-day block lifts at midnight, before it expires.
    planned = after_planning(OfferHistory(), [("daily_free_spin", AS_OF + DAY)], AS_OF)
    assert offers_change_at(planned, CATALOGUE, AS_OF) == datetime(2026, 12, 5, tzinfo=UTC)
    ended = OfferHistory(last_created_at={"daily_free_spin": AS_OF - timedelta(hours=1)})
    midnight = datetime(2026, 12, 5, tzinfo=UTC)
    assert offers_change_at(ended, CATALOGUE, AS_OF) == midnight
    assert offers_change_at(OfferHistory(), CATALOGUE, AS_OF) is None


def test_next_change_at_is_the_earlier_of_both() -> None:
    history = OfferHistory(
        frozenset({"vip_play"}), active_expires_at={"vip_play": AS_OF + timedelta(hours=1)}
    )
    assert next_change_at(activity(2.5), None, history, CATALOGUE, AS_OF) == AS_OF + timedelta(
        hours=1
    )
