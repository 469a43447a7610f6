"""A profile as clients see it: stored fields plus activity and segments as of now."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from journeys import rules
from journeys.domain import RecommendationView, StageTransitionView, UserRecord


@dataclass(frozen=True)
class UserView:
    """A profile as a client sees it: stored fields, live activity and segments and, on
    reads, advice."""

    record: UserRecord
    activity: rules.Activity
    segments: rules.Segments
    win_rate: float
    recommendations: tuple[RecommendationView, ...] = ()
    journey: tuple[StageTransitionView, ...] = ()


def view(
    record: UserRecord,
    activity: rules.Activity,
    as_of: datetime,
    *,
    advise: bool = False,
    journey: tuple[StageTransitionView, ...] = (),
) -> UserView:
    segments = rules.classify(activity, as_of)
    advice: tuple[RecommendationView, ...] = ()
    if advise:
        advice = tuple(
            RecommendationView(item.priority, item.name, item.reason)
            for item in rules.recommend(activity, segments, as_of)
        )
    win_rate = rules.win_rate(activity.won_plays, activity.total_plays)
    return UserView(record, activity, segments, win_rate, advice, journey)
