"""A user with a bit of everything (profile, events over many months, messageIds, campaigns,
offers of every status, stage transitions), for the erasure and export tests."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime, timedelta

from journeys.domain import Environment, EventInput, UserChanges, utc_now
from journeys.storage.database import Database
from journeys.storage.partitions import is_partition
from journeys.usecases import Journeys
from journeys.usecases.analytics import AnalyticsJob
from journeys.usecases.auth import Caller, Operator
from journeys.usecases.webhooks import NewWebhook, Webhooks
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

#: Today, not a fixed day: on PostgreSQL the events then spread over this month's partition,
#: earlier ones and the history partition (migration 0005 lays them out around today).
NOW = utc_now().replace(minute=0, second=0)
#: When the second analytics run finds the users churned and makes win-back offers.
LATER = NOW + timedelta(days=40)


def rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


async def seed_user(database: Database, key: str, external_id: str) -> None:
    api = Journeys(database, clock=lambda: NOW)
    await api.track_user(
        Caller(key),
        UserChanges(
            external_id=external_id,
            display_name="Jane Doe",
            email=f"{external_id}@example.com",
            tags={"plan": "gold"},
            metadata={"note": external_id, "score": 42},
        ),
    )
    # Days apart, so on PostgreSQL they fall into several partitions (history included).
    plays = [
        EventInput(
            external_id,
            "GAME_PLAY",
            "spin",
            10,
            rfc3339(NOW - timedelta(days=days)),
            f"{external_id}-play-{days}",
            {"won": True},
        )
        for days in (0, 1, 2, 35, 70, 400)
    ]
    others = [
        EventInput(external_id, "CAMPAIGN", "join", 0, rfc3339(NOW), "", {"campaignId": "spring"}),
        EventInput(external_id, "POINTS", "bonus", 100, rfc3339(NOW - timedelta(days=1))),
    ]
    await api.track_events(Caller(key), [*plays, *others])


async def make_offers_and_journey(database: Database, key: str, external_id: str) -> None:
    """Two analytics runs (a stage transition, offers), one offer claimed."""
    await AnalyticsJob(database, clock=lambda: NOW).run(NOW)
    await AnalyticsJob(database, clock=lambda: LATER).run(LATER)
    later = Journeys(database, clock=lambda: LATER)
    offers = await later.get_offers(Caller(key), external_id)
    assert offers, "the run must have made offers"
    await later.claim_offer(Caller(key), external_id, offers[0].id)


async def subscribe(database: Database, partner: str) -> None:
    """A webhook of the partner's test environment taking every event, so changes leave
    messages in the outbox (no dispatcher runs here: nothing is sent)."""
    await Webhooks(database, allow_private=True).create_webhook(
        Operator(partner, Environment.TEST),
        NewWebhook("http://127.0.0.1:9/outbox", ["user.stage_changed", "offer.created"], ""),
    )


def table_names(database_url: str) -> list[str]:
    async def names() -> list[str]:
        engine = create_async_engine(database_url)
        try:
            async with engine.connect() as connection:
                found: list[str] = await connection.run_sync(
                    lambda sync: inspect(sync).get_table_names()
                )
                return found
        finally:
            await engine.dispose()

    return asyncio.run(names())


def rows_mentioning(
    database_url: str, needle: str, *, within: tuple[str, str] | None = None
) -> Counter[str]:
    """Rows of every table (every partition of events on PostgreSQL, instead of its parent)
    with `needle` in any column, per table. With `within` (partner id, environment), rows of
    other tenants are left out."""

    async def scan() -> Counter[str]:
        engine = create_async_engine(database_url)
        found: Counter[str] = Counter()
        try:
            async with engine.connect() as connection:
                names = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
                partitioned = any(is_partition(name) for name in names)
                for name in names:
                    if partitioned and name == "events":
                        continue  # its rows are those of the partitions, scanned one by one
                    result = await connection.execute(text(f'SELECT * FROM "{name}"'))
                    columns = list(result.keys())
                    for row in result:
                        values = dict(zip(columns, row, strict=True))
                        tenant = (values.get("partner_id"), values.get("environment"))
                        if within is not None and tenant not in (within, (None, None)):
                            continue
                        if any(needle in str(value) for value in row):
                            found[name] += 1
        finally:
            await engine.dispose()
        return found

    return asyncio.run(scan())
