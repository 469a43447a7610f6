"""Growth: events partitioned by month on PostgreSQL, and a schema whose every key leads with
the tenant (so it can be distributed by tenant, docs/scaling.md)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from journeys.domain import Category, Environment, NewEvent, Tenant, utc_now
from journeys.storage.database import Database
from journeys.storage.partitions import (
    DEFAULT,
    HISTORY,
    MONTHS_AHEAD,
    Month,
    is_partition,
    months_missing,
)
from sqlalchemy import text

from scripts.stack import migrate

#: Tables that are not any tenant's: looked up before the tenant is known, or the job's own.
GLOBAL_TABLES = {"partners", "api_keys", "analytics_runs", "job_leases", "alembic_version"}


@pytest.mark.parametrize(
    ("existing", "today", "expected"),
    [
        # Nothing yet: this month and MONTHS_AHEAD more.
        (set(), date(2026, 11, 23), ["202611", "202612", "202701", "202702"]),
        # Already ready: nothing to do.
        ({"events_p202611", "events_p202612", "events_p202701", "events_p202702"},
         date(2026, 11, 30), []),
        # A new month begins: one more ahead.
        ({"events_p202611", "events_p202612", "events_p202701", "events_p202702"},
         date(2026, 12, 1), ["202703"]),
        # Nothing ran for months: the gap is filled too, not only the months ahead.
        ({"events_p202601"}, date(2026, 4, 2), ["202602", "202603", "202604", "202605",
                                                 "202606", "202607"]),
        # Other tables and the catch-alls do not count as months.
        ({HISTORY, DEFAULT, "events_p2026"}, date(2026, 1, 31),
         ["202601", "202602", "202603", "202604"]),
    ],
)  # fmt: skip
def test_months_missing(existing: set[str], today: date, expected: list[str]) -> None:
    assert [f"{m.start:%Y%m}" for m in months_missing(existing, today)] == expected


def test_month_bounds_and_names() -> None:
    assert Month.of(date(2026, 12, 31)) == Month(date(2026, 12, 1))
    assert Month(date(2026, 12, 1)).end == date(2027, 1, 1)
    assert Month(date(2027, 1, 1)).table == "events_p202701"
    assert all(is_partition(name) for name in (HISTORY, DEFAULT, "events_p202701"))
    assert not any(is_partition(name) for name in ("events", "events_p2027", "message_ids"))


def test_every_key_of_a_tenant_table_leads_with_the_tenant(database_url: str) -> None:
    migrate(database_url)

    async def keys() -> dict[str, list[tuple[str, list[str]]]]:
        found: dict[str, list[tuple[str, list[str]]]] = {}
        async with Database(database_url) as database, database.engine.connect() as conn:

            def inspect(sync: object) -> None:
                from sqlalchemy import inspect as sa_inspect

                inspector = sa_inspect(sync)
                for table in inspector.get_table_names():
                    if table in GLOBAL_TABLES or is_partition(table):
                        continue
                    entries = []
                    pk = inspector.get_pk_constraint(table)["constrained_columns"]
                    entries.append(("primary key", pk))
                    for unique in inspector.get_unique_constraints(table):
                        entries.append((unique["name"] or "unique", unique["column_names"]))
                    for index in inspector.get_indexes(table):
                        if index["unique"]:
                            entries.append((index["name"] or "", list(index["column_names"])))
                    for fk in inspector.get_foreign_keys(table):
                        if fk["referred_table"] == "users":
                            entries.append(("reference to users", fk["constrained_columns"]))
                    found[table] = entries

            await conn.run_sync(inspect)
        return found

    import asyncio

    found = asyncio.run(keys())
    assert {"users", "offers", "events", "message_ids", "user_daily_activity"} <= set(found)
    sqlite_rowid_tables = {"events", "stage_transitions"}  # `seq` is SQLite's rowid
    for table, entries in found.items():
        for what, columns in entries:
            if what == "primary key" and table in sqlite_rowid_tables and columns == ["seq"]:
                assert "sqlite" in database_url, (table, columns)
                continue
            assert columns[:2] == ["partner_id", "environment"], (table, what, columns)


@pytest.mark.postgresql_only
async def test_events_are_partitioned_by_month_and_rows_land_in_their_month(
    database_url: str,
) -> None:
    migrate(database_url)
    now = utc_now()
    this_month = Month.of(now.date())
    async with Database(database_url) as database:
        async with database.transaction(write=False) as tx:
            names = await tx.partitions.names()
        expected_months = {this_month.table}
        month = this_month
        for _ in range(MONTHS_AHEAD):
            month = month.next()
            expected_months.add(month.table)
        last_month = Month.of(this_month.start - timedelta(days=1))
        assert names == {HISTORY, DEFAULT, last_month.table, *expected_months}

        async with database.transaction(write=True) as tx:
            tenant = Tenant(await tx.keys.ensure_partner("growth", now), Environment.TEST)
            await tx.tenant(tenant).record_events(
                [
                    _draft("u1", now - timedelta(minutes=1)),
                    _draft("u1", datetime(2001, 5, 1, tzinfo=UTC)),  # an old backfill
                ],
                now,
            )
        async with database.engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT tableoid::regclass::text AS part, occurred_at FROM events")
            )
            placed = {row.occurred_at.year: row.part for row in rows}
    assert placed == {now.year: this_month.table, 2001: HISTORY}


@pytest.mark.postgresql_only
async def test_a_missing_month_is_created_with_the_rows_the_default_partition_held(
    database_url: str,
) -> None:
    """If nothing kept months ready, events of a month without a partition wait in the default
    partition; creating the month moves them into it, and none is lost or duplicated."""
    migrate(database_url)
    now = utc_now()
    ahead = Month.of(now.date())
    for _ in range(MONTHS_AHEAD):
        ahead = ahead.next()
    async with Database(database_url) as database:
        async with database.engine.begin() as conn:
            await conn.execute(text(f"DROP TABLE {ahead.table}"))
        async with database.transaction(write=True) as tx:
            tenant = Tenant(await tx.keys.ensure_partner("gap", now), Environment.TEST)
            store = tx.tenant(tenant)
            await store.record_events([_draft("u1", now - timedelta(minutes=1))], now)
            user = await store.get_user("u1")
            assert user is not None
        occurred = datetime.combine(ahead.start, datetime.min.time(), tzinfo=UTC) + timedelta(
            days=3
        )
        async with database.engine.begin() as conn:
            # Only a clock ahead could send such an event through the API (5-minute limit).
            await conn.execute(
                text(
                    "INSERT INTO events (id, partner_id, environment, user_id, category, "
                    "event_type, points, occurred_at, metadata, created_at) VALUES "
                    "(:id, :partner, 'TEST', :user, 'CUSTOM', 'future', 0, :at, '{}', :at)"
                ),
                {"id": str(uuid.uuid4()), "partner": tenant.partner_id, "user": user.id,
                 "at": occurred},
            )  # fmt: skip
            assert await conn.scalar(text(f"SELECT count(*) FROM {DEFAULT}")) == 1

        created = await database.keep_partitions_ready(now.date())

        async with database.engine.connect() as conn:
            assert await conn.scalar(text(f"SELECT count(*) FROM {DEFAULT}")) == 0
            part = await conn.scalar(
                text("SELECT tableoid::regclass::text FROM events WHERE event_type = 'future'")
            )
            assert await conn.scalar(text("SELECT count(*) FROM events")) == 2
        assert created == [ahead.table]
        assert part == ahead.table
        assert await database.keep_partitions_ready(now.date()) == []


@pytest.mark.sqlite_only
async def test_sqlite_has_no_partitions_to_keep(database_url: str) -> None:
    migrate(database_url)
    async with Database(database_url) as database:
        assert await database.keep_partitions_ready(utc_now().date()) == []


def _draft(external_id: str, at: datetime) -> NewEvent:
    return NewEvent(
        external_id=external_id,
        category=Category.CUSTOM,
        event_type="visit",
        points=0,
        occurred_at=at,
        message_id=None,
        metadata={},
    )
