"""PostgreSQL: the events table, range-partitioned by `occurred_at` month.

Layout: `events_history` holds everything before the first month partitioned (older
backfills), `events_pYYYYMM` one month each, `events_default` whatever no month holds yet.
Months are kept ready `MONTHS_AHEAD` ahead (by migration 0005, every analytics run and server
start), so the default partition stays empty unless nothing ran for that long; creating a
month moves its rows out of the default partition, so no event is ever lost or misplaced.

A query bounded on `occurred_at` (the activity windows' partial days) reads one or two months;
a timeline reads each month's index newest first. SQLite has one events table; nothing here
runs there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import text

from journeys.storage.connection import StoreConnection

MONTHS_AHEAD = 3
HISTORY = "events_history"
DEFAULT = "events_default"
#: pg_advisory_xact_lock key: replicas creating the same month queue instead of colliding.
_LOCK_KEY = 0x6A6F75726E657973  # "journeys"


@dataclass(frozen=True, order=True)
class Month:
    start: date

    @classmethod
    def of(cls, day: date) -> Month:
        return cls(day.replace(day=1))

    @property
    def end(self) -> date:
        year, month = divmod(self.start.month, 12)
        return date(self.start.year + year, month + 1, 1)

    @property
    def table(self) -> str:
        return f"events_p{self.start:%Y%m}"

    def next(self) -> Month:
        return Month(self.end)


def months_through(first: Month, last: Month) -> list[Month]:
    months = []
    while first <= last:
        months.append(first)
        first = first.next()
    return months


def months_missing(existing: set[str], today: date) -> list[Month]:
    """The months to create so that every month from the newest partition through
    `MONTHS_AHEAD` after today's has one: gaps too, if nothing ran for a while."""
    newest = max(
        (Month(date(int(n[8:12]), int(n[12:14]), 1)) for n in existing if _is_month_table(n)),
        default=None,
    )
    last = Month.of(today)
    for _ in range(MONTHS_AHEAD):
        last = last.next()
    first = Month.of(today) if newest is None else min(newest.next(), Month.of(today))
    return [month for month in months_through(first, last) if month.table not in existing]


def is_partition(table_name: str) -> bool:
    """Whether the table is one of events' partitions (not in the table definitions)."""
    return table_name in (HISTORY, DEFAULT) or _is_month_table(table_name)


def _is_month_table(name: str) -> bool:
    return len(name) == 14 and name.startswith("events_p") and name[8:].isdigit()


def create_history_statements(first: Month) -> list[str]:
    return [
        f"CREATE TABLE {HISTORY} PARTITION OF events "
        f"FOR VALUES FROM (MINVALUE) TO ('{first.start.isoformat()} 00:00:00+00')",
        f"CREATE TABLE {DEFAULT} PARTITION OF events DEFAULT",
    ]


def create_month_statements(month: Month) -> list[str]:
    """The month's partition, with the rows the default partition held for it.

    Attaching a filled table (rather than CREATE ... PARTITION OF) is what allows rows to be
    in the default partition already: PostgreSQL refuses a new partition whose range the
    default partition holds rows of."""
    low = f"'{month.start.isoformat()} 00:00:00+00'"
    high = f"'{month.end.isoformat()} 00:00:00+00'"
    return [
        f"CREATE TABLE {month.table} (LIKE events INCLUDING DEFAULTS)",
        f"WITH moved AS (DELETE FROM {DEFAULT} "
        f"WHERE occurred_at >= {low} AND occurred_at < {high} RETURNING *) "
        f"INSERT INTO {month.table} SELECT * FROM moved",
        f"ALTER TABLE events ATTACH PARTITION {month.table} FOR VALUES FROM ({low}) TO ({high})",
    ]


class EventPartitions:
    def __init__(self, connection: StoreConnection) -> None:
        self._connection = connection

    async def names(self) -> set[str]:
        rows = await self._connection.execute(
            text(
                "SELECT child.relname FROM pg_inherits "
                "JOIN pg_class child ON child.oid = pg_inherits.inhrelid "
                "WHERE pg_inherits.inhparent = 'events'::regclass"
            )
        )
        return {row.relname for row in rows}

    async def ensure(self, today: date) -> list[str]:
        """Creates the months `months_missing` names; returns the tables created."""
        if self._connection.dialect.name != "postgresql":
            return []
        if not months_missing(await self.names(), today):
            return []
        await self._connection.execute(
            text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY}
        )
        # Another process may have created them while this one waited for the lock.
        missing = months_missing(await self.names(), today)
        for month in missing:
            for statement in create_month_statements(month):
                await self._connection.execute(text(statement))
        return [month.table for month in missing]
