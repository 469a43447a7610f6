"""The instant and the baseline user the rules' table tests vary one field at a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from journeys.rules import Activity

AS_OF = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def ago(days: int, hours: int = 0, microseconds: int = 0) -> datetime:
    return AS_OF - timedelta(days=days, hours=hours, microseconds=microseconds)


# A settled, moderately active user who played this week: stage `active`, tier `casual`, and no
# recommendation fires. Each case overrides only the fields its boundary is about.
BASE = Activity(
    first_seen_at=ago(60),
    last_seen_at=AS_OF,
    total_events=20,
    total_plays=10,
    plays_7d=1,
    plays_30d=3,
    points_earned_7d=0,
    points_earned_30d=0,
    campaigns_joined=0,
    active_days=10,
)
