"""Upgrading a database that holds data keeps every row and every behaviour built on it."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from typing import Any

from alembic import command
from journeys.domain import Category, Environment, NewEvent, Tenant, utc_now
from journeys.storage.database import Database
from journeys.storage.migrate import alembic_config
from sqlalchemy import text

from scripts.stack import engine_of, migrate

PARTNER = "6f1d3c2a-0000-4000-8000-000000000001"
USER = "6f1d3c2a-0000-4000-8000-0000000000a1"
OFFER = "6f1d3c2a-0000-4000-8000-0000000000f1"


async def test_0005_keeps_the_data_of_a_populated_0004_database(database_url: str) -> None:
    # Alembic's environment runs its own event loop.
    await asyncio.to_thread(command.upgrade, alembic_config(database_url), "0004")
    now = utc_now().replace(microsecond=0)
    yesterday = now - timedelta(days=1)
    async with Database(database_url) as database, database.engine.begin() as conn:
        for statement, values in _rows_of_0004(database_url, now, yesterday):
            await conn.execute(text(statement), values)

    migrate(database_url)  # to head, 0005 included

    tenant = Tenant(PARTNER, Environment.TEST)
    async with Database(database_url) as database:
        async with database.transaction(write=False) as tx:
            store = tx.tenant(tenant)
            user = await store.get_user("alice")
            assert user is not None
            assert (user.id, user.total_events) == (USER, 2)
            totals = await store.activity(user, now)
            timeline = await store.timeline(USER, page=1, limit=10)
            offers = await store.active_offers(USER, now)
            journey = await store.journey(USER)
        assert (totals.plays_7d, totals.campaigns_joined, totals.active_days) == (1, 1, 2)
        assert [event.message_id for event in timeline] == ["m-2", "m-1"]
        assert [offer.id for offer in offers] == [OFFER]
        assert [(step.from_stage, step.to_stage) for step in journey] == [("new", "active")]

        # The messageIds stored before the upgrade still deduplicate, returning the original.
        async with database.transaction(write=True) as tx:
            (stored,) = await tx.tenant(tenant).record_events(
                [
                    NewEvent(
                        external_id="alice",
                        category=Category.CUSTOM,
                        event_type="again",
                        points=0,
                        occurred_at=now,
                        message_id="m-1",
                        metadata={},
                    )
                ],
                now,
            )
        assert not stored.is_new
        assert (stored.event.event_type, stored.event.occurred_at) == ("game_played", yesterday)

        async with database.engine.connect() as conn:
            assert await conn.scalar(text("SELECT count(*) FROM events")) == 2
            assert await conn.scalar(text("SELECT count(*) FROM message_ids")) == 2


def _rows_of_0004(
    database_url: str, now: datetime, yesterday: datetime
) -> list[tuple[str, dict[str, Any]]]:
    at = {"now": _stored(database_url, now), "yesterday": _stored(database_url, yesterday)}
    empty = json.dumps({})
    return [
        (
            "INSERT INTO partners (id, name, created_at) VALUES (:id, 'old', :now)",
            {"id": PARTNER, **at},
        ),
        (
            "INSERT INTO users (id, partner_id, environment, external_id, display_name, email, "
            "phone, country, device, source, tags, metadata, first_seen_at, last_seen_at, "
            "created_at, updated_at, total_events, total_plays, won_plays) VALUES "
            "(:id, :partner, 'TEST', 'alice', '', '', '', '', '', '', :empty, :empty, "
            ":yesterday, :now, :yesterday, :now, 2, 1, 0)",
            {"id": USER, "partner": PARTNER, "empty": empty, **at},
        ),
        *(
            (
                "INSERT INTO events (id, partner_id, environment, user_id, category, "
                "event_type, points, occurred_at, message_id, metadata, created_at) VALUES "
                f"(:id, :partner, 'TEST', :user, :category, :type, 0, :{when}, :message, "
                f":metadata, :{when})",
                {
                    "id": f"6f1d3c2a-0000-4000-8000-0000000000e{n}",
                    "partner": PARTNER,
                    "user": USER,
                    "category": category,
                    "type": kind,
                    "message": f"m-{n}",
                    "metadata": metadata,
                    **at,
                },
            )
            for n, when, category, kind, metadata in (
                (1, "yesterday", Category.GAME_PLAY.value, "game_played", empty),
                (2, "now", Category.CAMPAIGN.value, "joined", json.dumps({"campaignId": "c"})),
            )
        ),
        *(
            (
                "INSERT INTO user_daily_activity (user_id, day, events, plays, points_earned) "
                "VALUES (:user, :day, 1, :plays, 0)",
                {"user": USER, "day": day.date(), "plays": plays},
            )
            for day, plays in ((yesterday, 1), (now, 0))
        ),
        (
            "INSERT INTO user_campaigns (user_id, campaign_id) VALUES (:user, 'c')",
            {"user": USER},
        ),
        (
            "INSERT INTO offers (id, partner_id, environment, user_id, offer_type, game_type, "
            "title, description, points_value, status, expires_at, claimed_at, metadata, "
            "created_at) VALUES (:id, :partner, 'TEST', :user, 'welcome_bonus', '', 't', 'd', "
            "10, 'active', :expires, NULL, :empty, :now)",
            {
                "id": OFFER,
                "partner": PARTNER,
                "user": USER,
                "expires": _stored(database_url, now + timedelta(days=3)),
                "empty": empty,
                **at,
            },
        ),
        (
            "INSERT INTO stage_transitions (partner_id, environment, user_id, from_stage, "
            "to_stage, at) VALUES (:partner, 'TEST', :user, 'new', 'active', :now)",
            {"partner": PARTNER, "user": USER, **at},
        ),
    ]


def _stored(database_url: str, moment: datetime) -> datetime | str:
    """A timestamp as the service stores it: naive UTC text on SQLite, timestamptz otherwise."""
    if engine_of(database_url) == "sqlite":
        return moment.replace(tzinfo=None).isoformat(sep=" ")
    return moment
