"""Lifecycle segmentation of one user from an activity summary.

Every function here is pure: it reads an `Activity` and an explicit `as_of` instant and nothing
else, so a segment can be recomputed for any past moment, replayed, and table-tested without a
clock or a database.

Days since
    Elapsed time floored to whole 24-hour days, never negative. A timestamp after `as_of` counts
    as 0 days, and so does a missing one (a stored profile always has both timestamps).

Lifecycle stage (first matching row wins)

| # | Stage        | Condition                                                 |
|---|--------------|-----------------------------------------------------------|
| 1 | `churned`    | days since last seen > 30                                 |
| 2 | `at_risk`    | days since last seen >= 14                                |
| 3 | `power_user` | plays in 30 days >= 30 and engagement score >= 70         |
| 4 | `engaged`    | plays in 30 days >= 10 and campaigns joined >= 1          |
| 5 | `new`        | days since first seen <= 7 and total events <= 3          |
| 6 | `active`     | every other user                                          |

Row 3 compares the published score (already rounded to one decimal), so a partner can check a
stage against the number they are shown.

Engagement tier by plays in the last 30 days

| Tier         | Plays in 30 days |
|--------------|------------------|
| `casual`     | 0-4              |
| `regular`    | 5-14             |
| `power_user` | 15-50            |
| `whale`      | 51 or more       |

Engagement score (0-100, one decimal)

    score = 0.3 * R + 0.3 * F + 0.2 * M + 0.2 * B
    R (recency)   = 100 * max(0, 1 - days_since_last_seen / 30)
    F (frequency) = 100 * min(1, plays_30d / 30)
    M (monetary)  = 100 * min(1, points_earned_30d / 1000)
    B (breadth)   = 100 * min(1, campaigns_joined / 3)

The sum is computed with exact fractions, rounded half up to one decimal and clamped to 0-100.
A user with no events scores 0; negative counts count as 0.

Churn risk (integer 0-100)

    span_days  = days between first_seen_at and last_seen_at (floored, never negative)
    usual_gap  = 7                                              if active_days <= 1
                 clamp(span_days / (active_days - 1), 1, 30)    otherwise
    r          = days_since_last_seen / usual_gap
    churn_risk = round_half_up(100 * r / (r + 3)), clamped to 0-100
    churn_risk = 0 when total_events == 0

Silence is measured in the user's own rhythm: a daily player silent for a week is far more
worrying than a weekly player silent for a week. The risk is 0 while the user is seen today, 25
after one usual gap of silence, 50 after three, 75 after nine, and approaches 100 beyond that.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from fractions import Fraction

ONE_DAY = timedelta(days=1)

CHURNED_AFTER_DAYS = 30
AT_RISK_FROM_DAYS = 14
POWER_USER_MIN_PLAYS_30D = 30
POWER_USER_MIN_SCORE = 70.0
ENGAGED_MIN_PLAYS_30D = 10
ENGAGED_MIN_CAMPAIGNS = 1
NEW_MAX_DAYS_SINCE_FIRST_SEEN = 7
NEW_MAX_TOTAL_EVENTS = 3

REGULAR_MIN_PLAYS_30D = 5
POWER_USER_TIER_MIN_PLAYS_30D = 15
WHALE_MIN_PLAYS_30D = 51

RECENCY_WINDOW_DAYS = 30
FREQUENCY_FULL_PLAYS = 30
MONETARY_FULL_POINTS = 1000
BREADTH_FULL_CAMPAIGNS = 3

# With one active day there is no gap to learn from; a weekly rhythm is the cautious middle
# ground between daily players and occasional visitors.
DEFAULT_USUAL_GAP_DAYS = 7
MIN_USUAL_GAP_DAYS = 1
MAX_USUAL_GAP_DAYS = 30
# The ratio of silence to usual gap at which the risk reaches 50.
HALF_RISK_GAPS = 3

SCORE_MIN = 0
SCORE_MAX = 100


class LifecycleStage(StrEnum):
    NEW = "new"
    ACTIVE = "active"
    ENGAGED = "engaged"
    POWER_USER = "power_user"
    AT_RISK = "at_risk"
    CHURNED = "churned"


class EngagementTier(StrEnum):
    CASUAL = "casual"
    REGULAR = "regular"
    POWER_USER = "power_user"
    WHALE = "whale"


@dataclass(frozen=True)
class Activity:
    """What one user did, summarised as of one instant: the one summary that storage reads,
    the rules take and a profile shows (a new metric is a field here, its query, its proto
    field and its converter line)."""

    first_seen_at: datetime | None
    last_seen_at: datetime | None
    total_events: int
    total_plays: int
    plays_7d: int
    plays_30d: int
    points_earned_7d: int
    points_earned_30d: int
    campaigns_joined: int
    active_days: int
    won_plays: int = 0


@dataclass(frozen=True)
class Segments:
    stage: LifecycleStage
    tier: EngagementTier
    engagement_score: float
    churn_risk_score: int


def classify(activity: Activity, as_of: datetime) -> Segments:
    # Days since last seen feed three of the four results: computed once (the analytics job
    # classifies every profile).
    silent_days = days_since(activity.last_seen_at, as_of)
    score = _engagement_score(activity, silent_days)
    return Segments(
        stage=_lifecycle_stage(activity, score, silent_days, as_of),
        tier=engagement_tier(activity.plays_30d),
        engagement_score=score,
        churn_risk_score=_churn_risk_score(activity, silent_days),
    )


def days_since(then: datetime | None, as_of: datetime) -> int:
    if then is None:
        return 0
    return max(0, (as_of - then) // ONE_DAY)


def lifecycle_stage(activity: Activity, engagement_score: float, as_of: datetime) -> LifecycleStage:
    silent_days = days_since(activity.last_seen_at, as_of)
    return _lifecycle_stage(activity, engagement_score, silent_days, as_of)


def _lifecycle_stage(
    activity: Activity, engagement_score: float, silent_days: int, as_of: datetime
) -> LifecycleStage:
    plays_30d = _non_negative(activity.plays_30d)
    if silent_days > CHURNED_AFTER_DAYS:
        return LifecycleStage.CHURNED
    if silent_days >= AT_RISK_FROM_DAYS:
        return LifecycleStage.AT_RISK
    if plays_30d >= POWER_USER_MIN_PLAYS_30D and engagement_score >= POWER_USER_MIN_SCORE:
        return LifecycleStage.POWER_USER
    if (
        plays_30d >= ENGAGED_MIN_PLAYS_30D
        and _non_negative(activity.campaigns_joined) >= ENGAGED_MIN_CAMPAIGNS
    ):
        return LifecycleStage.ENGAGED
    if (
        days_since(activity.first_seen_at, as_of) <= NEW_MAX_DAYS_SINCE_FIRST_SEEN
        and _non_negative(activity.total_events) <= NEW_MAX_TOTAL_EVENTS
    ):
        return LifecycleStage.NEW
    return LifecycleStage.ACTIVE


def engagement_tier(plays_30d: int) -> EngagementTier:
    plays = _non_negative(plays_30d)
    if plays >= WHALE_MIN_PLAYS_30D:
        return EngagementTier.WHALE
    if plays >= POWER_USER_TIER_MIN_PLAYS_30D:
        return EngagementTier.POWER_USER
    if plays >= REGULAR_MIN_PLAYS_30D:
        return EngagementTier.REGULAR
    return EngagementTier.CASUAL


def engagement_score(activity: Activity, as_of: datetime) -> float:
    return _engagement_score(activity, days_since(activity.last_seen_at, as_of))


def _engagement_score(activity: Activity, silent_days: int) -> float:
    # Without a single event the timestamps say nothing about engagement.
    if activity.total_events <= 0:
        return 0.0
    # Exact integer arithmetic in units of 1/3000 of a point (the common denominator of the
    # four weighted sub-scores): as exact as fractions, and fast enough for the analytics
    # job's hundreds of thousands of users.
    units = (
        3000 * max(0, RECENCY_WINDOW_DAYS - silent_days)
        + 3000 * min(_non_negative(activity.plays_30d), FREQUENCY_FULL_PLAYS)
        + 60 * min(_non_negative(activity.points_earned_30d), MONETARY_FULL_POINTS)
        + 20000 * min(_non_negative(activity.campaigns_joined), BREADTH_FULL_CAMPAIGNS)
    )
    tenths = (units + 150) // 300  # round half up to one decimal
    return min(SCORE_MAX * 10, max(SCORE_MIN * 10, tenths)) / 10


def win_rate(won_plays: int, plays: int) -> float:
    """Won plays / plays as a fraction 0-1, rounded half up to 4 decimals (0 without plays).

    Exact integer arithmetic: `round()` on the float would round half to even, and a float
    such as 0.12345 is not exactly the decimal it prints as."""
    if plays <= 0:
        return 0.0
    won = min(max(won_plays, 0), plays)
    return ((20000 * won + plays) // (2 * plays)) / 10000


def churn_risk_score(activity: Activity, as_of: datetime) -> int:
    return _churn_risk_score(activity, days_since(activity.last_seen_at, as_of))


def _churn_risk_score(activity: Activity, silent_days: int) -> int:
    if activity.total_events <= 0:
        return 0
    gap_numerator, gap_denominator = _usual_gap(activity)
    # 100·r/(r+3) with r = silent/gap, as one exact integer fraction rounded half up.
    numerator = 100 * silent_days * gap_denominator
    denominator = silent_days * gap_denominator + HALF_RISK_GAPS * gap_numerator
    if numerator == 0:
        return 0
    risk = (2 * numerator + denominator) // (2 * denominator)
    return min(SCORE_MAX, max(SCORE_MIN, risk))


def churn_risk_rises_on_day(activity: Activity, silent_days: int) -> int | None:
    """The first whole number of silent days after `silent_days` at which the churn risk is
    higher than at `silent_days`; None when it never rises again (no events, or already 100).

    The risk is (201·x + c) // (2·x + 2·c) with x = silent·gap_denominator and
    c = 3·gap_numerator (the formula above, cleared of fractions), non-decreasing in x. It
    reaches R + 1 exactly when x·(199 - 2R) >= c·(2R + 1): one division instead of a search
    over days (a 30-day rhythm at risk 99 takes thousands of days to reach 100)."""
    if activity.total_events <= 0:
        return None
    risk = _churn_risk_score(activity, silent_days)
    if risk >= SCORE_MAX:
        return None
    gap_numerator, gap_denominator = _usual_gap(activity)
    needed = HALF_RISK_GAPS * gap_numerator * (2 * risk + 1)
    per_day = (199 - 2 * risk) * gap_denominator
    return max(silent_days + 1, -(-needed // per_day))


def usual_gap_days(activity: Activity) -> Fraction:
    """Typical days between two active days; the yardstick the churn risk measures silence by."""
    return Fraction(*_usual_gap(activity))


def _usual_gap(activity: Activity) -> tuple[int, int]:
    """`usual_gap_days` as an unreduced (numerator, denominator) pair of integers: the same
    value, without building and comparing Fractions for every profile."""
    if activity.active_days <= 1:
        return DEFAULT_USUAL_GAP_DAYS, 1
    span_days = _days_between(activity.first_seen_at, activity.last_seen_at)
    gaps = activity.active_days - 1
    if span_days < MIN_USUAL_GAP_DAYS * gaps:
        return MIN_USUAL_GAP_DAYS, 1
    if span_days > MAX_USUAL_GAP_DAYS * gaps:
        return MAX_USUAL_GAP_DAYS, 1
    return span_days, gaps


def _days_between(start: datetime | None, end: datetime | None) -> int:
    if start is None or end is None:
        return 0
    return days_since(start, end)


def _non_negative(count: int) -> int:
    return max(0, count)
