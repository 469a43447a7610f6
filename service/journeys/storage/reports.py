"""The reads of the offer report: offers created in a window by type and fate, and the plays
of users in the week after their first classification."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Date, and_, bindparam, case, func, select

from journeys.storage.schema import offers, user_daily_activity, users
from journeys.storage.scope import ScopedStore, TenantScope
from journeys.storage.types import UTCDateTime

WEEK = timedelta(days=7)


@dataclass
class OfferFates:
    created: int = 0
    claimed: int = 0
    expired: int = 0
    active: int = 0


_PAST = case((offers.c.expires_at <= bindparam("until", type_=UTCDateTime()), 1), else_=0)
_FATES = (
    select(offers.c.offer_type, offers.c.status, _PAST.label("past"), func.count().label("n"))
    .where(
        TenantScope.of(offers),
        offers.c.created_at >= bindparam("since", type_=UTCDateTime()),
        offers.c.created_at <= bindparam("until", type_=UTCDateTime()),
    )
    .group_by(offers.c.offer_type, offers.c.status, _PAST)
)

_days = user_daily_activity.c
_FIRST_WEEKS = (
    select(users.c.external_id, users.c.first_classified_at, _days.day, _days.plays)
    .select_from(
        users.outerjoin(
            user_daily_activity,
            and_(
                TenantScope.same_tenant(users, user_daily_activity),
                _days.user_id == users.c.id,
                _days.day >= bindparam("first_day", type_=Date()),
                _days.day < bindparam("last_day", type_=Date()),
            ),
        )
    )
    .where(
        TenantScope.of(users),
        users.c.first_classified_at >= bindparam("since", type_=UTCDateTime()),
        users.c.first_classified_at <= bindparam("latest", type_=UTCDateTime()),
    )
)


class OfferReports(ScopedStore):
    async def offer_fates(self, since: datetime, until: datetime) -> dict[str, OfferFates]:
        """By type, the offers created in [since, until]: an active offer past `expiresAt` at
        `until` counts as expired, as the next sweep will make it."""
        fates: dict[str, OfferFates] = defaultdict(OfferFates)
        rows = await self._connection.execute(_FATES, self._scope.binds(since=since, until=until))
        for row in rows:
            fate = fates[row.offer_type]
            fate.created += row.n
            if row.status == "claimed":
                fate.claimed += row.n
            elif row.status == "expired" or row.past:
                fate.expired += row.n
            else:
                fate.active += row.n
        return dict(fates)

    async def first_week_plays(self, since: datetime, until: datetime) -> dict[str, int]:
        """By external id, the plays over the 7 UTC days from the day of the user's first
        classification, for users first classified in [since, until - 7 days]."""
        rows = await self._connection.execute(
            _FIRST_WEEKS,
            self._scope.binds(
                since=since,
                latest=until - WEEK,
                first_day=since.date(),
                last_day=until.date() + WEEK,
            ),
        )
        plays: dict[str, int] = {}
        for row in rows:
            plays.setdefault(row.external_id, 0)
            start: date = row.first_classified_at.date()
            if row.day is not None and start <= row.day < start + WEEK:
                plays[row.external_id] += row.plays
        return plays
