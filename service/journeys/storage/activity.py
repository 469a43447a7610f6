"""Activity counters as of an instant: all-time ones from the profile, and windows (the last
7 and 30 days) added up from the daily rows plus the events of the one partial day at each
window's start.

One builder (`_Windows`) makes the window reads for any set of users; one user's read and a
chunk's read are its two uses, with one naming of their parameters (`bounds`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    ColumnClause,
    ColumnElement,
    Date,
    Select,
    String,
    Table,
    and_,
    bindparam,
    case,
    func,
    literal_column,
    or_,
    select,
    true,
)

from journeys.domain import Category, UserCounters, UserRecord
from journeys.rules import Activity
from journeys.rules.due import window_exit
from journeys.storage.schema import events, user_campaigns, user_daily_activity, users
from journeys.storage.scope import ScopedStore, TenantScope
from journeys.storage.types import UTCDateTime, as_utc

WINDOWS_DAYS = (7, 30)
#: The window counters, in the order the window reads return them.
_KINDS = ("plays", "points_earned")
_WINDOW_FIELDS = tuple(f"{kind}_{span}d" for kind in _KINDS for span in WINDOWS_DAYS)

# Constants written into the statement rather than bound: every bound value is processed at
# each execution.
_ZERO: ColumnClause[int] = literal_column("0")
_ONE: ColumnClause[int] = literal_column("1")

UserMatch = Callable[[Any], ColumnElement[bool]]
#: The predicate keeping a table to one tenant (`TenantScope.of`, or a join to a row's).
Scope = Callable[[Table], ColumnElement[bool]]

#: The window whose sums the segments read (the 7-day one feeds only live recommendations).
EXIT_WINDOW_DAYS = 30
#: An event that moves a window sum: a play, or points earned.
_COUNTED = or_(events.c.category == Category.GAME_PLAY.value, events.c.points > 0)


def bounds(as_of: datetime) -> dict[str, Any]:
    """The windows' parameters: each window's whole days after its first, partial one, and
    that partial day's span of time."""
    values: dict[str, Any] = {}
    for span in WINDOWS_DAYS:
        start = as_of - timedelta(days=span)
        values[f"after_day_{span}d"] = start.date()
        values[f"from_{span}d"] = start
        values[f"until_{span}d"] = _end_of_day(start)
    return values


def _end_of_day(moment: datetime) -> datetime:
    return datetime.combine(moment.date() + timedelta(days=1), time(), tzinfo=UTC)


def _in_partial_day(span: int) -> ColumnElement[bool]:
    return and_(
        events.c.occurred_at >= bindparam(f"from_{span}d", type_=UTCDateTime()),
        events.c.occurred_at < bindparam(f"until_{span}d", type_=UTCDateTime()),
    )


class _Windows:
    """The window reads of the users `match` selects, one row per user that has any: whole
    days (with the user's count of active days), partial days, and campaigns joined."""

    def __init__(
        self, match: UserMatch, scope: Scope = TenantScope.of, *, exits: bool = False
    ) -> None:
        """With `exits`, the whole-day and partial-day reads also give what
        `rules.due.window_exit` needs: the first whole day of the 30-day window with a play
        or points earned, and the earliest such event of its partial day."""
        self._match = match
        self._scope = scope
        self._exits = exits
        days = user_daily_activity
        counted_day = case(
            (
                and_(
                    days.c.day > bindparam(f"after_day_{EXIT_WINDOW_DAYS}d", type_=Date()),
                    or_(days.c.plays > 0, days.c.points_earned > 0),
                ),
                days.c.day,
            )
        )
        self.full_days = (
            select(
                days.c.user_id,
                func.count().label("active_days"),
                *([func.min(counted_day).label("first_counted_day")] if exits else []),
                *(
                    func.sum(
                        case(
                            (days.c.day > bindparam(f"after_day_{span}d", type_=Date()), column),
                            else_=_ZERO,
                        )
                    ).label(f"{kind}_{span}d")
                    for kind, column in (
                        ("plays", days.c.plays),
                        ("points_earned", days.c.points_earned),
                    )
                    for span in WINDOWS_DAYS
                ),
            )
            .where(scope(days), match(days.c.user_id))
            .group_by(days.c.user_id)
        )
        self.partial_days = self.partial_days_of(WINDOWS_DAYS)
        self.campaigns = (
            select(user_campaigns.c.user_id, func.count().label("campaigns_joined"))
            .where(scope(user_campaigns), match(user_campaigns.c.user_id))
            .group_by(user_campaigns.c.user_id)
        )

    def partial_days_of(self, spans: Sequence[int]) -> Select[Any]:
        """The partial days of the windows of `spans`. One window's alone is a range of the
        events' (user, time) index; several are an OR of ranges, which SQLite reads as every
        event of the user."""
        return (
            select(
                events.c.user_id,
                *(
                    func.sum(
                        case((and_(_in_partial_day(span), condition), value), else_=_ZERO)
                    ).label(f"{kind}_{span}d")
                    for kind, condition, value in (
                        ("plays", events.c.category == Category.GAME_PLAY.value, _ONE),
                        ("points_earned", events.c.points > 0, events.c.points),
                    )
                    for span in spans
                ),
                *(
                    [
                        func.min(
                            case(
                                (
                                    and_(_in_partial_day(EXIT_WINDOW_DAYS), _COUNTED),
                                    events.c.occurred_at,
                                )
                            )
                        ).label("earliest_counted_at")
                    ]
                    if self._exits and EXIT_WINDOW_DAYS in spans
                    else []
                ),
            )
            .where(
                self._scope(events),
                self._match(events.c.user_id),
                or_(*(_in_partial_day(span) for span in spans)),
            )
            .group_by(events.c.user_id)
        )


def one_user(user: Any, scope: Scope, *, lateral: bool = False) -> tuple[list[Any], list[Any]]:
    """One user's counters: the columns (all-time ones from `users`) and the window reads
    they come from, each of one row at most and joined on nothing. `user` is the user's id
    (a parameter, or `users.c.id` for reads correlated to the user, `lateral`, which
    PostgreSQL can run inside a statement that finds the user first)."""
    windows = _Windows(lambda column: column == user, scope)
    full = windows.full_days
    # A partial day per window, so each is a range of the index (see `partial_days_of`).
    partial = {span: windows.partial_days_of([span]) for span in WINDOWS_DAYS}
    reads = [full, windows.campaigns, *partial.values()]
    derived = [read.lateral() if lateral else read.subquery() for read in reads]
    full_read, campaigns, *partial_reads = derived
    by_span = dict(zip(WINDOWS_DAYS, partial_reads, strict=True))
    columns = [
        users.c.total_events,
        users.c.total_plays,
        users.c.won_plays,
        func.coalesce(full_read.c.active_days, _ZERO).label("active_days"),
        func.coalesce(campaigns.c.campaigns_joined, _ZERO).label("campaigns_joined"),
        *(
            (
                func.coalesce(full_read.c[f"{kind}_{span}d"], _ZERO)
                + func.coalesce(by_span[span].c[f"{kind}_{span}d"], _ZERO)
            ).label(f"{kind}_{span}d")
            for kind in _KINDS
            for span in WINDOWS_DAYS
        ),
    ]
    return columns, derived


def _one_user_statement() -> Select[Any]:
    """The windows joined to the profile, so one user's counters are one round trip."""
    user = bindparam("user_id", type_=String())
    columns, reads = one_user(user, TenantScope.of)
    # Each read has one row at most, that of `user`: joined on nothing, so no engine builds
    # an index of it per execution (SQLite did, measured).
    joined: Any = users
    for read in reads:
        joined = joined.outerjoin(read, true())
    return select(*columns).select_from(joined).where(TenantScope.of(users), users.c.id == user)


# Built once: building a statement took longer than executing it (measured), and only the
# values change between calls.
ONE_USER = _one_user_statement()
_ONE_USER_FIELDS = tuple(column.name for column in ONE_USER.selected_columns)


def one_user_activity(user: UserRecord, counts: Sequence[Any]) -> Activity:
    """The activity of `user` from the values of `ONE_USER`'s columns (or of `one_user`'s,
    in their order)."""
    return Activity(
        first_seen_at=user.first_seen_at,
        last_seen_at=user.last_seen_at,
        **{name: int(value) for name, value in zip(_ONE_USER_FIELDS, counts, strict=True)},
    )


_CHUNK = _Windows(lambda column: column.in_(bindparam("ids", expanding=True)), exits=True)


class ActivityReads(ScopedStore):
    async def activity(self, user: UserRecord, as_of: datetime) -> Activity:
        """One user's activity as of an instant, in one round trip whatever their history."""
        row = (
            await self._connection.execute(
                ONE_USER, self._scope.binds(user_id=user.id, **bounds(as_of))
            )
        ).one()
        return one_user_activity(user, tuple(row))

    async def activity_many(
        self, counters: Sequence[UserCounters], as_of: datetime
    ) -> dict[str, Activity]:
        """`activity` for a chunk of users, set-wise: three grouped queries, whose all-time
        counters and seen-times come with the chunk."""
        activities, _ = await self.activity_and_window_exits(counters, as_of)
        return activities

    async def activity_and_window_exits(
        self, counters: Sequence[UserCounters], as_of: datetime
    ) -> tuple[dict[str, Activity], dict[str, datetime]]:
        """`activity_many`, and by user id when the first event counted in the 30-day window
        leaves it (`rules.due.window_exit`; users without one are left out), from the same
        three queries."""
        values = self._scope.binds(ids=[user.id for user in counters], **bounds(as_of))
        windows: dict[str, list[int]] = {}
        active_days: dict[str, int] = {}
        first_days: dict[str, datetime] = {}
        earliest: dict[str, datetime] = {}
        for user_id, days, first_day, *sums in await self._connection.execute(
            _CHUNK.full_days, values
        ):
            active_days[user_id] = int(days)
            windows[user_id] = [int(value or 0) for value in sums]
            if first_day is not None:
                first_days[user_id] = _start_of(first_day)
        for user_id, *sums, counted_at in await self._connection.execute(
            _CHUNK.partial_days, values
        ):
            found = windows.setdefault(user_id, [0] * len(_WINDOW_FIELDS))
            for n, value in enumerate(sums):
                found[n] += int(value or 0)
            if (moment := as_utc(counted_at)) is not None:
                earliest[user_id] = moment
        exits = {
            user_id: moment
            for user_id in first_days.keys() | earliest.keys()
            if (moment := window_exit(earliest.get(user_id), first_days.get(user_id)))
        }
        campaigns = {
            user_id: int(joined)
            for user_id, joined in await self._connection.execute(_CHUNK.campaigns, values)
        }
        none = [0] * len(_WINDOW_FIELDS)
        return {
            user.id: Activity(
                first_seen_at=user.first_seen_at,
                last_seen_at=user.last_seen_at,
                total_events=user.total_events,
                total_plays=user.total_plays,
                won_plays=user.won_plays,
                **dict(zip(_WINDOW_FIELDS, windows.get(user.id, none), strict=True)),
                campaigns_joined=campaigns.get(user.id, 0),
                active_days=active_days.get(user.id, 0),
            )
            for user in counters
        }, exits


def _start_of(day: date | str) -> datetime:
    """A day (SQLite's min() returns it as text) as its first instant, UTC."""
    found = date.fromisoformat(day) if isinstance(day, str) else day
    return datetime.combine(found, time(), tzinfo=UTC)
