"""Ingestion at the edges of its values, on both engines: what the driver is handed must come
back exactly as it was sent (text, numbers, instants), and the batch semantics (messageId
dedup, suppression, seen times) must hold however a batch mixes its items."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from journeys.domain import (
    Category,
    Environment,
    EventInput,
    NewEvent,
    SuppressedExternalIds,
    Tenant,
)
from journeys.storage.database import Database
from journeys.storage.schema import events as events_table
from journeys.storage.schema import message_ids, user_daily_activity, users
from journeys.storage.tenant_store import TenantStore
from journeys.usecases import Journeys
from journeys.usecases.auth import Caller
from journeys.usecases.profiles import UserView
from sqlalchemy import func, select

from scripts.stack import migrate, new_key

NOW = datetime(2026, 6, 1, 12, 0, 0, 250_000, tzinfo=UTC)
INT32 = 2**31 - 1


def _event(
    external_id: str,
    message_id: str | None = None,
    *,
    points: int = 0,
    at: datetime = NOW,
    category: Category = Category.GAME_PLAY,
    metadata: dict[str, Any] | None = None,
) -> NewEvent:
    return NewEvent(
        external_id=external_id,
        category=category,
        event_type="spin",
        points=points,
        occurred_at=at,
        message_id=message_id,
        metadata=metadata or {},
    )


@pytest.fixture
def caller(database_url: str) -> Caller:
    """A key of partner `edges` (the partner `_store` works on) on a migrated database."""
    migrate(database_url)
    return Caller(new_key(database_url, "edges"))


@asynccontextmanager
async def _store(database_url: str) -> AsyncIterator[tuple[Database, Tenant]]:
    migrate(database_url)
    async with Database(database_url) as database:
        async with database.transaction(write=True) as tx:
            partner = await tx.keys.ensure_partner("edges", NOW)
        yield database, Tenant(partner, Environment.TEST)


async def _record(database: Database, tenant: Tenant, drafts: list[NewEvent]) -> list[Any]:
    async with database.transaction(write=True) as tx:
        return await tx.tenant(tenant).record_events(drafts, NOW)


async def _count(store: TenantStore, table: Any) -> int:
    return int(await store._connection.scalar(select(func.count()).select_from(table)))


ODD_METADATA: dict[str, Any] = {
    "emoji": "🎰🎉 \U0001f9ea",
    "separators": "line\u2028paragraph\u2029tab\tnewline\n",
    "bidi": "\u202eevil\u202c \u05e9\u05dc\u05d5\u05dd",
    "combining": "e\u0301 a\u030a",
    "quotes": "'\"\\ ; -- /*",
    "ключ 🗝": ["ü", {"nested": "\ufeff\ufffd"}],
    "won": True,
    "big": 2**53,
    "float": 0.1,
}


async def test_odd_unicode_metadata_reads_back_exactly(database_url: str) -> None:
    async with _store(database_url) as (database, tenant):
        (first,) = await _record(
            database, tenant, [_event("ü-ser 🎯", "m-1", metadata=ODD_METADATA)]
        )
        (again,) = await _record(database, tenant, [_event("ü-ser 🎯", "m-1")])
        async with database.transaction(write=False) as tx:
            store = tx.tenant(tenant)
            user = await store.get_user("ü-ser 🎯")
            assert user is not None
            (stored,) = await store.timeline(user.id, 1, 10)
    assert first.is_new
    assert not again.is_new
    assert stored.metadata == again.event.metadata == first.event.metadata == ODD_METADATA
    assert again.event.external_id == "ü-ser 🎯"
    assert user.total_events == 1


async def test_nul_characters_are_rejected_alone_in_a_batch(
    database_url: str, caller: Caller
) -> None:
    async with Database(database_url) as database:
        outcome = await Journeys(database, clock=lambda: NOW).track_events(
            caller,
            [
                EventInput("nul-user", "CUSTOM", "x", metadata={"note": "a\x00b"}),
                EventInput("nul-user", "CUSTOM", "x", metadata={"k\x00": 1}),
                EventInput("nul-user", "CUSTOM", "x", message_id="m\x00"),
                EventInput("nul-user", "CUSTOM", "x", metadata={"note": "fine"}),
            ],
        )
    assert [result.status for result in outcome.results] == [
        "rejected",
        "rejected",
        "rejected",
        "accepted",
    ]


async def test_points_near_the_integer_limits_are_stored_and_summed_exactly(
    database_url: str,
) -> None:
    async with _store(database_url) as (database, tenant):
        stored = await _record(
            database,
            tenant,
            [
                _event("big", "top", points=INT32),
                _event("big", "top-2", points=INT32),
                _event("big", "bottom", points=-INT32 - 1),
            ],
        )
        async with database.transaction(write=False) as tx:
            store = tx.tenant(tenant)
            user = await store.get_user("big")
            assert user is not None
            timeline = await store.timeline(user.id, 1, 10)
            activity = await store.activity(user, NOW + timedelta(hours=1))
            (day_points,) = (
                await store._connection.execute(select(user_daily_activity.c.points_earned))
            ).one()
    assert [event.event.points for event in stored] == [INT32, INT32, -INT32 - 1]
    assert sorted(event.points for event in timeline) == [-INT32 - 1, INT32, INT32]
    # Beyond 32 bits: the daily sum is a 64-bit column, negative points earn nothing.
    assert day_points == 2 * INT32
    assert activity.points_earned_7d == 2 * INT32


async def test_points_beyond_the_documented_range_are_rejected_not_stored(
    database_url: str, caller: Caller
) -> None:
    async with Database(database_url) as database:
        outcome = await Journeys(database, clock=lambda: NOW).track_events(
            caller,
            [
                {"externalId": "huge", "category": "POINTS", "eventType": "x", "points": value}
                for value in (2**31, -(2**31) - 1, 2**63, 2**64, 1_000_000)
            ],
        )
    assert [result.status for result in outcome.results] == ["rejected"] * 4 + ["accepted"]


async def test_duplicate_message_ids_within_and_across_batches(database_url: str) -> None:
    async with _store(database_url) as (database, tenant):
        first = await _record(
            database,
            tenant,
            [
                _event("a", "m-1", points=5),
                _event("b", "m-1", points=7),  # a repeat for another user: a's comes back
                _event("a", "m-2", points=1),
                _event("a", None),
                _event("a", None),  # without a messageId nothing is a duplicate
            ],
        )
        second = await _record(
            database,
            tenant,
            [
                _event("c", "m-2"),  # only repeats for c: no profile is left for it
                _event("a", "m-3", points=2),
                _event("a", "m-3", points=3),
                _event("c", "m-1"),
            ],
        )
        async with database.transaction(write=False) as tx:
            store = tx.tenant(tenant)
            a = await store.get_user("a")
            assert a is not None
            assert await store.get_user("b") is None
            assert await store.get_user("c") is None
            assert await _count(store, message_ids) == 3
            assert await _count(store, events_table) == 5
            (day_events, day_points) = (
                await store._connection.execute(
                    select(user_daily_activity.c.events, user_daily_activity.c.points_earned)
                )
            ).one()
    assert [item.is_new for item in first] == [True, False, True, True, True]
    assert [item.is_new for item in second] == [False, True, False, False]
    assert first[1].event == first[0].event  # the original, as stored
    assert first[1].event.external_id == "a"
    assert first[1].event.points == 5
    assert second[0].event == first[2].event
    assert second[2].event == second[1].event
    assert second[2].event.points == 2
    assert second[3].event == first[0].event
    assert len({item.event.id for item in first + second}) == 5
    assert a.total_events == 5
    assert (day_events, day_points) == (5, 5 + 1 + 2)


async def test_a_suppressed_id_in_a_mixed_batch_leaves_nothing_written(database_url: str) -> None:
    async with _store(database_url) as (database, tenant):
        await _record(database, tenant, [_event("known", "k-1")])
        async with database.transaction(write=True) as tx:
            await tx.tenant(tenant).suppress("gone", NOW)
        async with database.transaction(write=True) as tx:
            store = tx.tenant(tenant)
            before = [await _count(store, table) for table in (users, events_table, message_ids)]
            with pytest.raises(SuppressedExternalIds) as refused:
                await store.record_events(
                    [
                        _event("known", "k-2"),
                        _event("new-one", "n-1"),
                        _event("gone", "g-1"),
                        _event("gone", "k-1"),
                    ],
                    NOW,
                )
            # Raised before anything is left written: the transaction goes on without it.
            assert refused.value.external_ids == frozenset({"gone"})
            after = [await _count(store, table) for table in (users, events_table, message_ids)]
            assert after == before
            again = await store.record_events(
                [_event("known", "k-2"), _event("new-one", "n-1")], NOW
            )
        assert [item.is_new for item in again] == [True, True]
        async with database.transaction(write=False) as tx:
            store = tx.tenant(tenant)
            assert await store.get_user("gone") is None
            known = await store.get_user("known")
            assert known is not None
            assert known.total_events == 2


async def test_a_suppressed_id_is_rejected_alone_through_the_use_case(
    database_url: str, caller: Caller
) -> None:
    async with _store(database_url) as (database, tenant):
        journeys = Journeys(database, clock=lambda: NOW)
        await journeys.track_event(caller, EventInput("stays", "CUSTOM", "x", message_id="s-1"))
        async with database.transaction(write=True) as tx:
            await tx.tenant(tenant).suppress("erased", NOW)
        outcome = await journeys.track_events(
            caller,
            [
                EventInput("erased", "CUSTOM", "x", message_id="e-1"),
                EventInput("stays", "CUSTOM", "x", message_id="s-1"),
                EventInput("fresh", "CUSTOM", "x", message_id="f-1"),
                EventInput("erased", "CUSTOM", "x", message_id="s-1"),
            ],
        )
    assert [result.status for result in outcome.results] == [
        "rejected",
        "duplicate",
        "accepted",
        "rejected",
    ]


async def test_instants_with_microseconds_and_offsets_are_stored_as_utc(
    database_url: str,
) -> None:
    minus_five = timezone(timedelta(hours=-5))
    # 22:00 on 31 March at -05:00 is 03:00 on 1 April UTC: the UTC day (and month) counts.
    late = datetime(2026, 3, 31, 22, 0, 0, 654_321, tzinfo=minus_five)
    early = datetime(2026, 3, 1, 9, 30, 0, 1, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    async with _store(database_url) as (database, tenant):
        await _record(database, tenant, [_event("t", "late", at=late)])
        await _record(database, tenant, [_event("t", "early", at=early)])
        # Neither a repeat nor an event between the two moves the seen times.
        await _record(database, tenant, [_event("t", "late", at=late + timedelta(days=30))])
        (repeat,) = await _record(database, tenant, [_event("t", "early", at=NOW)])
        async with database.transaction(write=False) as tx:
            store = tx.tenant(tenant)
            user = await store.get_user("t")
            assert user is not None
            timeline = await store.timeline(user.id, 1, 10)
            days = sorted(
                day for (day,) in await store._connection.execute(select(user_daily_activity.c.day))
            )
    assert repeat.event.occurred_at == early
    assert repeat.event.occurred_at.utcoffset() == timedelta(0)
    assert [event.occurred_at for event in timeline] == [late, early]
    assert all(event.occurred_at.tzinfo == UTC for event in timeline)
    assert timeline[0].occurred_at.microsecond == 654_321
    assert (user.first_seen_at, user.last_seen_at) == (early, late)
    assert days == [date(2026, 3, 1), date(2026, 4, 1)]


async def test_an_instant_before_the_year_1000_is_stored_as_sqlalchemy_reads_it(
    database_url: str,
) -> None:
    # The API accepts any RFC 3339 instant; SQLite keeps times as text that must sort and
    # parse as SQLAlchemy's own (four-digit years).
    ancient = datetime(208, 9, 24, 14, 6, 1, 878_506, tzinfo=UTC)
    async with _store(database_url) as (database, tenant):
        await _record(database, tenant, [_event("old", "ancient", at=ancient)])
        await _record(database, tenant, [_event("old", "recent", at=NOW)])
        async with database.transaction(write=False) as tx:
            store = tx.tenant(tenant)
            user = await store.get_user("old")
            assert user is not None
            timeline = await store.timeline(user.id, 1, 10)
    assert [event.occurred_at for event in timeline] == [NOW, ancient]
    assert (user.first_seen_at, user.last_seen_at) == (ancient, NOW)


def test_the_first_instant_of_year_1_reads_back_on_the_request_path(database_url: str) -> None:
    # asyncpg writes 0001-01-01T00:00:00Z as PostgreSQL's -infinity and reads that back
    # naive: the request path's reads (storage/lookups.py) must give it as UTC, as
    # SQLAlchemy's do.
    first = datetime(1, 1, 1, tzinfo=UTC)
    migrate(database_url)
    caller = Caller(new_key(database_url, "year-one"))

    async def track_then_read() -> UserView:
        async with Database(database_url) as database:
            api = Journeys(database, clock=lambda: NOW)
            await api.track_event(
                caller, EventInput("first", "GAME_PLAY", "spin", 5, "0001-01-01T00:00:00Z", "")
            )
            return await api.get_user(caller, "first")

    profile = asyncio.run(track_then_read())
    assert profile.record.first_seen_at == first
    assert profile.record.last_seen_at == first
