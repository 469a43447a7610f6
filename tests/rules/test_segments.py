from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st
from journeys.rules import (
    Activity,
    EngagementTier,
    LifecycleStage,
    Segments,
    churn_risk_score,
    classify,
    days_since,
    engagement_score,
    engagement_tier,
    lifecycle_stage,
    win_rate,
)
from journeys.rules.segments import usual_gap_days

from tests.rules.activities import AS_OF, BASE, ago

# Seen today with 30 plays: recency and frequency give 60 points, the rest comes from
# points (1 per 50) and campaigns (20/3 each).
TOP_PLAYER = replace(BASE, plays_30d=30)


def daily_player(silent_days: int, hours: int = 0) -> Activity:
    """Active on 25 of the 31 days from first to last visit, then silent."""
    last_seen = ago(silent_days, hours)
    return replace(
        BASE,
        first_seen_at=last_seen - timedelta(days=30),
        last_seen_at=last_seen,
        active_days=25,
    )


def one_day_player(silent_days: int) -> Activity:
    last_seen = ago(silent_days)
    return replace(BASE, first_seen_at=last_seen, last_seen_at=last_seen, active_days=1)


# --- days since ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("then", "expected"),
    [
        pytest.param(AS_OF, 0, id="same instant"),
        pytest.param(ago(0, 23), 0, id="23 hours"),
        pytest.param(ago(1), 1, id="exactly 24 hours"),
        pytest.param(ago(7, 23), 7, id="7 days 23 hours"),
        pytest.param(ago(8), 8, id="8 days"),
        pytest.param(ago(13, 23), 13, id="13 days 23 hours"),
        pytest.param(ago(14, microseconds=-1), 13, id="one microsecond short of 14 days"),
        pytest.param(ago(14), 14, id="14 days"),
        pytest.param(ago(30, 23), 30, id="30 days 23 hours"),
        pytest.param(ago(31), 31, id="31 days"),
        pytest.param(AS_OF + timedelta(seconds=1), 0, id="one second in the future"),
        pytest.param(AS_OF + timedelta(days=400), 0, id="far future"),
        pytest.param(None, 0, id="missing"),
        pytest.param(
            datetime(2025, 2, 20, 14, 0, tzinfo=timezone(timedelta(hours=2))),
            9,
            id="other offset compares instants",
        ),
    ],
)
def test_days_since_floors_whole_days_and_never_goes_negative(
    then: datetime | None, expected: int
) -> None:
    assert days_since(then, AS_OF) == expected


# --- lifecycle stage ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("activity", "expected"),
    [
        pytest.param(BASE, LifecycleStage.ACTIVE, id="baseline"),
        # churned: days since last seen > 30
        pytest.param(replace(BASE, last_seen_at=ago(30)), LifecycleStage.AT_RISK, id="30 days"),
        pytest.param(
            replace(BASE, last_seen_at=ago(30, 23)), LifecycleStage.AT_RISK, id="30 days 23 h"
        ),
        pytest.param(replace(BASE, last_seen_at=ago(31)), LifecycleStage.CHURNED, id="31 days"),
        # at_risk: days since last seen >= 14
        pytest.param(
            replace(BASE, last_seen_at=ago(13, 23)), LifecycleStage.ACTIVE, id="13 days 23 h"
        ),
        pytest.param(replace(BASE, last_seen_at=ago(14)), LifecycleStage.AT_RISK, id="14 days"),
        # new: days since first seen <= 7 and total events <= 3
        pytest.param(
            replace(BASE, first_seen_at=ago(7, 23), total_events=3),
            LifecycleStage.NEW,
            id="first seen 7 days 23 h, 3 events",
        ),
        pytest.param(
            replace(BASE, first_seen_at=ago(8), total_events=3),
            LifecycleStage.ACTIVE,
            id="first seen 8 days",
        ),
        pytest.param(
            replace(BASE, first_seen_at=ago(2), total_events=4),
            LifecycleStage.ACTIVE,
            id="4 events",
        ),
        pytest.param(
            replace(BASE, first_seen_at=ago(0), total_events=0),
            LifecycleStage.NEW,
            id="brand new profile without events",
        ),
        # engaged: plays in 30 days >= 10 and campaigns joined >= 1
        pytest.param(
            replace(BASE, plays_30d=9, campaigns_joined=1), LifecycleStage.ACTIVE, id="9 plays"
        ),
        pytest.param(
            replace(BASE, plays_30d=10, campaigns_joined=1),
            LifecycleStage.ENGAGED,
            id="10 plays, 1 campaign",
        ),
        pytest.param(
            replace(BASE, plays_30d=10, campaigns_joined=0),
            LifecycleStage.ACTIVE,
            id="10 plays, 0 campaigns",
        ),
        # power_user: plays in 30 days >= 30 and engagement score >= 70
        pytest.param(
            replace(TOP_PLAYER, points_earned_30d=495),
            LifecycleStage.ACTIVE,
            id="score 69.9 without campaign",
        ),
        pytest.param(
            replace(TOP_PLAYER, points_earned_30d=500),
            LifecycleStage.POWER_USER,
            id="score 70.0",
        ),
        pytest.param(
            replace(TOP_PLAYER, points_earned_30d=164, campaigns_joined=1),
            LifecycleStage.ENGAGED,
            id="score 69.947 rounds to 69.9",
        ),
        pytest.param(
            replace(TOP_PLAYER, points_earned_30d=165, campaigns_joined=1),
            LifecycleStage.POWER_USER,
            id="score 69.967 rounds to 70.0",
        ),
        pytest.param(
            replace(TOP_PLAYER, plays_30d=29, points_earned_30d=1000, campaigns_joined=3),
            LifecycleStage.ENGAGED,
            id="29 plays with a high score",
        ),
        # first matching row wins
        pytest.param(
            replace(TOP_PLAYER, last_seen_at=ago(14), points_earned_30d=1000, campaigns_joined=3),
            LifecycleStage.AT_RISK,
            id="at_risk before power_user",
        ),
        pytest.param(
            replace(BASE, first_seen_at=ago(2), last_seen_at=ago(31), total_events=1),
            LifecycleStage.CHURNED,
            id="churned before new",
        ),
        pytest.param(
            replace(BASE, first_seen_at=ago(1), total_events=3, plays_30d=10, campaigns_joined=1),
            LifecycleStage.ENGAGED,
            id="engaged before new",
        ),
    ],
)
def test_lifecycle_stage_boundaries(activity: Activity, expected: LifecycleStage) -> None:
    assert classify(activity, AS_OF).stage is expected


@pytest.mark.parametrize(
    ("plays_30d", "score", "expected"),
    [
        pytest.param(30, 69.9, LifecycleStage.ACTIVE, id="score 69.9"),
        pytest.param(30, 70.0, LifecycleStage.POWER_USER, id="score 70.0"),
        pytest.param(29, 100.0, LifecycleStage.ACTIVE, id="29 plays"),
        pytest.param(30, 100.0, LifecycleStage.POWER_USER, id="30 plays"),
    ],
)
def test_power_user_needs_thirty_plays_and_a_score_of_seventy(
    plays_30d: int, score: float, expected: LifecycleStage
) -> None:
    activity = replace(BASE, plays_30d=plays_30d)
    assert lifecycle_stage(activity, score, AS_OF) is expected


# --- engagement tier ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("plays_30d", "expected"),
    [
        (-3, EngagementTier.CASUAL),
        (0, EngagementTier.CASUAL),
        (4, EngagementTier.CASUAL),
        (5, EngagementTier.REGULAR),
        (14, EngagementTier.REGULAR),
        (15, EngagementTier.POWER_USER),
        (50, EngagementTier.POWER_USER),
        (51, EngagementTier.WHALE),
        (10_000, EngagementTier.WHALE),
    ],
)
def test_engagement_tier_boundaries(plays_30d: int, expected: EngagementTier) -> None:
    assert engagement_tier(plays_30d) is expected


def test_enum_values_are_the_published_strings() -> None:
    assert [stage.value for stage in LifecycleStage] == [
        "new",
        "active",
        "engaged",
        "power_user",
        "at_risk",
        "churned",
    ]
    assert [tier.value for tier in EngagementTier] == ["casual", "regular", "power_user", "whale"]


# --- engagement score --------------------------------------------------------------------------

SEEN_TODAY = replace(BASE, plays_30d=0)


@pytest.mark.parametrize(
    ("activity", "expected"),
    [
        pytest.param(
            replace(SEEN_TODAY, plays_30d=30, points_earned_30d=1000, campaigns_joined=3),
            100.0,
            id="full marks",
        ),
        pytest.param(
            replace(SEEN_TODAY, plays_30d=300, points_earned_30d=9000, campaigns_joined=12),
            100.0,
            id="sub-scores saturate",
        ),
        pytest.param(
            Activity(AS_OF, AS_OF, 0, 0, 0, 0, 0, 0, 0, 0), 0.0, id="fresh profile, no events"
        ),
        pytest.param(
            replace(SEEN_TODAY, total_events=0, plays_30d=30, points_earned_30d=1000),
            0.0,
            id="no events wins over other counters",
        ),
        pytest.param(SEEN_TODAY, 30.0, id="seen today only"),
        pytest.param(replace(SEEN_TODAY, last_seen_at=ago(15)), 15.0, id="seen 15 days ago"),
        pytest.param(replace(SEEN_TODAY, last_seen_at=ago(29)), 1.0, id="seen 29 days ago"),
        pytest.param(replace(SEEN_TODAY, last_seen_at=ago(30)), 0.0, id="seen 30 days ago"),
        pytest.param(replace(SEEN_TODAY, last_seen_at=ago(45)), 0.0, id="seen 45 days ago"),
        pytest.param(
            replace(SEEN_TODAY, last_seen_at=AS_OF + timedelta(days=3)),
            30.0,
            id="seen in the future counts as today",
        ),
        pytest.param(replace(SEEN_TODAY, last_seen_at=None), 30.0, id="last seen missing"),
        pytest.param(replace(SEEN_TODAY, plays_30d=15), 45.0, id="15 plays"),
        pytest.param(replace(SEEN_TODAY, points_earned_30d=25), 30.5, id="25 points"),
        pytest.param(replace(SEEN_TODAY, points_earned_30d=1), 30.0, id="1 point rounds down"),
        pytest.param(replace(SEEN_TODAY, campaigns_joined=1), 36.7, id="36.666 rounds up"),
        pytest.param(replace(SEEN_TODAY, campaigns_joined=2), 43.3, id="43.333 rounds down"),
        pytest.param(
            replace(
                SEEN_TODAY,
                last_seen_at=ago(3),
                plays_30d=12,
                points_earned_30d=730,
                campaigns_joined=1,
            ),
            60.3,
            id="worked example 27 + 12 + 14.6 + 6.667",
        ),
        pytest.param(
            replace(SEEN_TODAY, plays_30d=-5, points_earned_30d=-100, campaigns_joined=-1),
            30.0,
            id="negative counters count as zero",
        ),
    ],
)
def test_engagement_score_worked_examples(activity: Activity, expected: float) -> None:
    assert engagement_score(activity, AS_OF) == expected


# --- churn risk --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("activity", "expected"),
    [
        # A daily player's usual gap is 30 days / 24 gaps = 1.25 days.
        pytest.param(daily_player(0), 0, id="daily player seen today"),
        pytest.param(daily_player(1), 21, id="daily player silent 1 day"),
        pytest.param(daily_player(13, 23), 78, id="daily player silent 13 days 23 h"),
        pytest.param(daily_player(14), 79, id="daily player silent 14 days"),
        pytest.param(daily_player(20), 84, id="daily player silent 20 days"),
        # One active day: the default usual gap of 7 days.
        pytest.param(one_day_player(0), 0, id="one-day player seen today"),
        pytest.param(one_day_player(3), 13, id="12.5 rounds half up"),
        pytest.param(one_day_player(7), 25, id="silent one usual gap"),
        pytest.param(one_day_player(21), 50, id="silent three usual gaps"),
        pytest.param(one_day_player(31), 60, id="one-day player churned"),
        # Usual gap clamped to 1..30 days.
        pytest.param(
            replace(BASE, first_seen_at=ago(395), last_seen_at=ago(30), active_days=2),
            25,
            id="yearly gap clamps to 30",
        ),
        pytest.param(
            replace(BASE, first_seen_at=ago(3), last_seen_at=ago(3), active_days=5),
            50,
            id="zero span clamps to 1",
        ),
        pytest.param(
            replace(BASE, first_seen_at=ago(1), last_seen_at=ago(9), active_days=3),
            75,
            id="first seen after last seen",
        ),
        pytest.param(
            replace(BASE, first_seen_at=ago(20_000), last_seen_at=ago(10_000), active_days=20_000),
            100,
            id="very long silence reaches 100",
        ),
        # No events, no risk.
        pytest.param(
            replace(daily_player(60), total_events=0), 0, id="no events despite long silence"
        ),
        pytest.param(replace(BASE, last_seen_at=None), 0, id="last seen missing"),
    ],
)
def test_churn_risk_examples(activity: Activity, expected: int) -> None:
    assert churn_risk_score(activity, AS_OF) == expected


@pytest.mark.parametrize(
    ("activity", "expected"),
    [
        pytest.param(daily_player(5), Fraction(5, 4), id="30 days over 24 gaps"),
        pytest.param(one_day_player(5), Fraction(7), id="one active day"),
        pytest.param(replace(BASE, active_days=0), Fraction(7), id="no active day"),
        pytest.param(
            replace(BASE, first_seen_at=ago(10), last_seen_at=AS_OF, active_days=5),
            Fraction(5, 2),
            id="10 days over 4 gaps",
        ),
        pytest.param(replace(BASE, first_seen_at=None, active_days=5), Fraction(1), id="no span"),
    ],
)
def test_usual_gap_days(activity: Activity, expected: Fraction) -> None:
    assert usual_gap_days(activity) == expected


@pytest.mark.parametrize("silent_days", [14, 15, 20, 30, 60, 365])
def test_regular_player_silent_two_weeks_or_more_is_high_risk(silent_days: int) -> None:
    assert churn_risk_score(daily_player(silent_days), AS_OF) >= 60


# --- properties --------------------------------------------------------------------------------

any_instant = st.datetimes(timezones=st.just(UTC))
recent_instant = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
count = st.integers(min_value=0, max_value=10**9)


def activities(
    instants: st.SearchStrategy[datetime], counts: st.SearchStrategy[int] = count
) -> st.SearchStrategy[Activity]:
    return st.builds(
        Activity,
        first_seen_at=st.none() | instants,
        last_seen_at=st.none() | instants,
        total_events=counts,
        total_plays=counts,
        plays_7d=counts,
        plays_30d=counts,
        points_earned_7d=counts,
        points_earned_30d=counts,
        campaigns_joined=counts,
        active_days=counts,
    )


def has_at_most_one_decimal(value: float) -> bool:
    return float(f"{value:.1f}") == value


@given(activity=activities(any_instant), as_of=any_instant)
def test_every_input_gets_exactly_one_valid_segment(activity: Activity, as_of: datetime) -> None:
    segments = classify(activity, as_of)

    assert isinstance(segments, Segments)
    assert segments.stage in LifecycleStage
    assert segments.tier in EngagementTier
    assert 0.0 <= segments.engagement_score <= 100.0
    assert has_at_most_one_decimal(segments.engagement_score)
    assert 0 <= segments.churn_risk_score <= 100


@given(
    activity=activities(any_instant, st.integers(min_value=-(10**9), max_value=10**9)),
    as_of=any_instant,
)
def test_negative_counters_never_break_the_scores(activity: Activity, as_of: datetime) -> None:
    segments = classify(activity, as_of)

    assert 0.0 <= segments.engagement_score <= 100.0
    assert 0 <= segments.churn_risk_score <= 100


@given(activity=activities(any_instant), as_of=any_instant)
def test_stage_agrees_with_the_silence_rows(activity: Activity, as_of: datetime) -> None:
    silent = days_since(activity.last_seen_at, as_of)
    stage = classify(activity, as_of).stage

    assert (stage is LifecycleStage.CHURNED) == (silent > 30)
    assert (stage is LifecycleStage.AT_RISK) == (14 <= silent <= 30)


@given(activity=activities(recent_instant), as_of=recent_instant)
def test_score_matches_a_float_reference_within_rounding(
    activity: Activity, as_of: datetime
) -> None:
    def capped(value: int, full: int) -> float:
        return 100 * min(1.0, max(0, value) / full)

    recency = 100 * max(0.0, 1 - days_since(activity.last_seen_at, as_of) / 30)
    reference = (
        0.3 * recency
        + 0.3 * capped(activity.plays_30d, 30)
        + 0.2 * capped(activity.points_earned_30d, 1000)
        + 0.2 * capped(activity.campaigns_joined, 3)
    )
    if activity.total_events == 0:
        reference = 0.0

    assert abs(engagement_score(activity, as_of) - reference) <= 0.05 + 1e-9


@given(
    activity=activities(recent_instant),
    as_of=recent_instant,
    later_by=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=5000)),
)
def test_churn_risk_never_falls_as_silence_grows(
    activity: Activity, as_of: datetime, later_by: timedelta
) -> None:
    earlier = churn_risk_score(activity, as_of)
    later = churn_risk_score(activity, as_of + later_by)

    assert 0 <= earlier <= later <= 100


@given(
    activity=activities(any_instant),
    ahead_by=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=36_500)),
)
def test_user_seen_today_or_later_is_low_risk(activity: Activity, ahead_by: timedelta) -> None:
    seen = replace(activity, last_seen_at=AS_OF + ahead_by)

    assert churn_risk_score(seen, AS_OF) <= 20


@given(activity=activities(any_instant), as_of=any_instant)
def test_user_without_events_has_no_score_and_no_risk(activity: Activity, as_of: datetime) -> None:
    silent = replace(activity, total_events=0)

    assert engagement_score(silent, as_of) == 0.0
    assert churn_risk_score(silent, as_of) == 0


@given(
    active_days=st.integers(min_value=16, max_value=31),
    silent_days=st.integers(min_value=14, max_value=10_000),
)
def test_player_active_most_days_of_a_month_then_silent_is_high_risk(
    active_days: int, silent_days: int
) -> None:
    last_seen = ago(silent_days)
    activity = replace(
        BASE,
        first_seen_at=last_seen - timedelta(days=30),
        last_seen_at=last_seen,
        active_days=active_days,
    )

    assert churn_risk_score(activity, AS_OF) >= 60


@given(plays=st.integers(min_value=-(10**9), max_value=10**9), more=st.integers(0, 10**9))
def test_tier_never_drops_with_more_plays(plays: int, more: int) -> None:
    order = list(EngagementTier)
    assert order.index(engagement_tier(plays)) <= order.index(engagement_tier(plays + more))


@pytest.mark.parametrize(
    ("won", "plays", "expected"),
    [
        (0, 0, 0.0),
        (0, 7, 0.0),
        (7, 7, 1.0),
        (1, 3, 0.3333),
        (2, 3, 0.6667),
        # Exactly halfway at the 5th decimal: half up, where round() gives half even.
        (1, 16, 0.0625),
        (1, 32, 0.0313),
        (3, 32, 0.0938),
        (1, 80000, 0.0),
        (1, 20000, 0.0001),
    ],
)
def test_win_rate_rounds_half_up_to_four_decimals(won: int, plays: int, expected: float) -> None:
    assert win_rate(won, plays) == expected


@given(st.integers(min_value=1, max_value=10**9), st.data())
def test_win_rate_is_the_nearest_four_decimal_fraction(plays: int, data: st.DataObject) -> None:
    won = data.draw(st.integers(min_value=0, max_value=plays))
    rate = win_rate(won, plays)
    assert 0 <= rate <= 1
    exact = Fraction(won, plays)
    assert abs(Fraction(round(rate * 10000), 10000) - exact) <= Fraction(1, 20000)
