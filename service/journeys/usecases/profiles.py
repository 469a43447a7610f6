"""A profile as clients see it: stored fields plus metrics and segments as of now."""

from __future__ import annotations

from datetime import datetime

from journeys import rules
from journeys.domain import (
    ActivityTotals,
    ProfileMetrics,
    RecommendationView,
    StageTransitionView,
    UserRecord,
    UserView,
)

#: Counters are int32 on the wire; a sum beyond that saturates instead of wrapping.
INT32_MAX = 2**31 - 1


def activity(
    first_seen_at: datetime, last_seen_at: datetime, totals: ActivityTotals
) -> rules.Activity:
    return rules.Activity(
        first_seen_at=first_seen_at,
        last_seen_at=last_seen_at,
        total_events=totals.total_events,
        total_plays=totals.total_plays,
        plays_7d=totals.plays_7d,
        plays_30d=totals.plays_30d,
        points_earned_7d=totals.points_earned_7d,
        points_earned_30d=totals.points_earned_30d,
        campaigns_joined=totals.campaigns_joined,
        active_days=totals.active_days,
    )


def view(
    record: UserRecord,
    totals: ActivityTotals,
    as_of: datetime,
    *,
    advise: bool = False,
    journey: tuple[StageTransitionView, ...] = (),
) -> UserView:
    summary = activity(record.first_seen_at, record.last_seen_at, totals)
    segments = rules.classify(summary, as_of)
    metrics = ProfileMetrics(
        lifecycle_stage=segments.stage.value,
        engagement_tier=segments.tier.value,
        engagement_score=segments.engagement_score,
        churn_risk_score=segments.churn_risk_score,
        total_plays=_int32(totals.total_plays),
        plays_7d=_int32(totals.plays_7d),
        plays_30d=_int32(totals.plays_30d),
        points_earned_7d=_int32(totals.points_earned_7d),
        points_earned_30d=_int32(totals.points_earned_30d),
        campaigns_joined=_int32(totals.campaigns_joined),
        win_rate=rules.win_rate(totals.won_plays, totals.total_plays),
        total_events=_int32(totals.total_events),
    )
    advice: tuple[RecommendationView, ...] = ()
    if advise:
        advice = tuple(
            RecommendationView(item.priority, item.name, item.reason)
            for item in rules.recommend(summary, segments, as_of)
        )
    return UserView(record, metrics, advice, journey)


def _int32(value: int) -> int:
    return min(value, INT32_MAX)
