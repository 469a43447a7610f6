"""`journeys dev seed-data --bulk` builds exactly the profiles the API path builds."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from journeys.devtools import devdata
from journeys.domain import Tenant
from journeys.storage.database import Database
from journeys.storage.schema import events, user_campaigns, user_daily_activity, users
from sqlalchemy import select

from scripts.stack import migrate

NOW = datetime(2026, 6, 1, 12, 0, 7, tzinfo=UTC)
AS_OF = datetime(2026, 6, 2, 9, 30, tzinfo=UTC)


async def _snapshot(database: Database, tenant: Tenant) -> dict[str, Any]:
    """Everything a profile is computed from, keyed by external id (ids differ by path)."""
    async with database.transaction(write=False) as tx:
        store = tx.tenant(tenant)
        connection = store._connection
        scoped = (users.c.partner_id == tenant.partner_id) & (
            users.c.environment == tenant.environment.value
        )
        profiles = {
            row.external_id: row
            for row in await connection.execute(
                select(
                    users.c.id,
                    users.c.external_id,
                    users.c.first_seen_at,
                    users.c.last_seen_at,
                    users.c.total_events,
                    users.c.total_plays,
                    users.c.won_plays,
                ).where(scoped)
            )
        }
        external = {row.id: row.external_id for row in profiles.values()}
        days = sorted(
            (external[row.user_id], row.day, row.events, row.plays, row.points_earned)
            for row in await connection.execute(
                select(user_daily_activity).where(user_daily_activity.c.user_id.in_(external))
            )
        )
        campaigns = sorted(
            (external[row.user_id], row.campaign_id)
            for row in await connection.execute(
                select(user_campaigns).where(user_campaigns.c.user_id.in_(external))
            )
        )
        stored_events = sorted(
            (
                external[row.user_id],
                row.category,
                row.event_type,
                row.points,
                row.occurred_at,
                row.message_id,
                sorted(row.metadata.items()),
            )
            for row in await connection.execute(
                select(events).where(events.c.user_id.in_(external))
            )
        )
        totals = {
            external_id: await store.activity(row, AS_OF) for external_id, row in profiles.items()
        }
    return {
        "profiles": {
            external_id: (
                row.first_seen_at,
                row.last_seen_at,
                row.total_events,
                row.total_plays,
                row.won_plays,
            )
            for external_id, row in profiles.items()
        },
        "days": days,
        "campaigns": campaigns,
        "events": stored_events,
        "totals": totals,
    }


def test_the_bulk_path_builds_the_same_profiles_as_the_api_path(database_url: str) -> None:
    migrate(database_url)

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        database = Database(database_url)
        try:
            snapshots = []
            for partner, bulk in (("through-api", False), ("bulk", True)):
                tenant = await devdata.seed(
                    database,
                    users=80,
                    events=1500,
                    partner=partner,
                    random_seed=7,
                    bulk=bulk,
                    now=NOW,
                )
                snapshots.append(await _snapshot(database, tenant))
            return snapshots[0], snapshots[1]
        finally:
            await database.dispose()

    through_api, bulk = asyncio.run(scenario())

    assert len(through_api["profiles"]) == 80
    assert len(through_api["events"]) == 1500
    assert through_api["campaigns"], "the population joins campaigns"
    assert any(row[4] for row in through_api["profiles"].values()), "and wins plays"
    for part in ("profiles", "days", "campaigns", "events", "totals"):
        assert bulk[part] == through_api[part], part


def test_the_bulk_path_refuses_a_tenant_that_has_users(database_url: str) -> None:
    migrate(database_url)

    async def scenario() -> None:
        database = Database(database_url)
        try:
            await devdata.seed(database, users=3, events=9, partner="twice", bulk=True)
            with pytest.raises(devdata.TenantNotEmpty):
                await devdata.seed(database, users=3, events=9, partner="twice", bulk=True)
        finally:
            await database.dispose()

    asyncio.run(scenario())
