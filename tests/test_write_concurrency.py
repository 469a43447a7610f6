"""The analytics job and event ingestion write the same profiles at once: on PostgreSQL they
run concurrently, so both must lock profiles in one order or one of them dies in a deadlock."""

from __future__ import annotations

import asyncio
import random

from journeys.domain import Category, Environment, NewEvent, Tenant, utc_now
from journeys.storage.database import Database
from journeys.usecases.analytics import AnalyticsJob

from scripts.stack import migrate

USERS = [f"user-{n:03d}" for n in range(200)]


def _plays(external_ids: list[str]) -> list[NewEvent]:
    now = utc_now()
    return [
        NewEvent(
            external_id=external_id,
            category=Category.GAME_PLAY,
            event_type="spin",
            points=1,
            occurred_at=now,
            message_id=None,
            metadata={},
        )
        for external_id in external_ids
    ]


async def test_analytics_runs_and_event_batches_at_once_all_succeed(database_url: str) -> None:
    migrate(database_url)
    database = Database(database_url)
    try:
        async with database.transaction(write=True) as tx:
            tenant = Tenant(await tx.keys.ensure_partner("busy", utc_now()), Environment.TEST)
            await tx.tenant(tenant).record_events(_plays(USERS), utc_now())

        async def ingest(seed: int) -> None:
            rng = random.Random(seed)
            for _ in range(25):
                async with database.transaction(write=True) as tx:
                    await tx.tenant(tenant).record_events(_plays(rng.sample(USERS, 30)), utc_now())

        async def analyse() -> None:
            for _ in range(4):
                await AnalyticsJob(database).run()

        await asyncio.gather(analyse(), *(ingest(seed) for seed in range(4)))

        async with database.transaction(write=False) as tx:
            store = tx.tenant(tenant)
            total = 0
            for external_id in USERS:
                user = await store.get_user(external_id)
                assert user is not None
                total += user.total_events
        assert total == len(USERS) + 4 * 25 * 30
    finally:
        await database.dispose()
