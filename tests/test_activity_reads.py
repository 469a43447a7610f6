"""Profile reads stay cheap however long a user's history: counters for a user with many
events match a brute-force count, and the read never scans the events table."""

from __future__ import annotations

import random
import re
import sqlite3
from datetime import datetime, timedelta
from typing import Any

from journeys.domain import Category, Environment, NewEvent, Tenant, utc_now
from journeys.storage.database import Database
from journeys.storage.partitions import Month
from sqlalchemy.engine import make_url

from scripts.stack import engine_of, migrate

EVENTS = 20_000
HISTORY_DAYS = 90


def _history(now: datetime) -> list[NewEvent]:
    rng = random.Random(7)
    drafts = []
    for n in range(EVENTS):
        category = rng.choice(
            [Category.GAME_PLAY, Category.GAME_PLAY, Category.POINTS, Category.CAMPAIGN]
        )
        drafts.append(
            NewEvent(
                external_id="heavy",
                category=category,
                event_type="spin",
                points=rng.randint(-50, 200),
                occurred_at=now - timedelta(seconds=rng.randint(0, HISTORY_DAYS * 86_400)),
                message_id=None,
                metadata={"won": rng.random() < 0.3, "campaignId": f"c{n % 11}"},
            )
        )
    return drafts


async def test_counters_of_a_long_history_match_a_brute_force_count(database_url: str) -> None:
    migrate(database_url)
    database = Database(database_url)
    now = utc_now()
    drafts = _history(now)
    async with database.transaction(write=True) as tx:
        partner = await tx.keys.ensure_partner("heavy", now)
        store = tx.tenant(Tenant(partner, Environment.TEST))
        for start in range(0, EVENTS, 500):
            await store.record_events(drafts[start : start + 500], now)
    statements: list[tuple[str, Any]] = []

    database.on_statement(lambda statement, parameters: statements.append((statement, parameters)))
    async with database.transaction(write=False) as tx:
        store = tx.tenant(Tenant(partner, Environment.TEST))
        user = await store.get_user("heavy")
        assert user is not None
        totals = await store.activity(user, now)
    await database.dispose()

    def within(draft: NewEvent, days: int) -> bool:
        return draft.occurred_at >= now - timedelta(days=days)

    plays = [d for d in drafts if d.is_play]
    assert totals.total_events == EVENTS
    assert totals.total_plays == len(plays)
    assert totals.won_plays == sum(d.is_won_play for d in drafts)
    assert totals.plays_7d == sum(within(d, 7) for d in plays)
    assert totals.plays_30d == sum(within(d, 30) for d in plays)
    assert totals.points_earned_7d == sum(max(d.points, 0) for d in drafts if within(d, 7))
    assert totals.points_earned_30d == sum(max(d.points, 0) for d in drafts if within(d, 30))
    assert totals.campaigns_joined == 11
    assert totals.active_days == len({d.occurred_at.date() for d in drafts})

    read = [s for s in statements if "user_daily_activity" in s[0]]
    assert len(read) == 1, "the whole read is one round trip"
    plan = await _plan(database_url, *read[0])
    if database.dialect == "sqlite":
        assert "SCAN events" not in plan, plan
        assert (
            "SEARCH events USING INDEX ix_events_partner_id_environment_user_id_occurred_at_seq"
            in plan
        ), plan
    else:
        # One user in one tenant: either index leading with the tenant is as selective here.
        assert "Seq Scan on events" not in plan, plan
        assert "Index Scan using events_p" in plan, plan
        # Partition pruning: only the months holding the windows' partial first days are read
        # (not the history, the default partition or any other month).
        window_months = {Month.of((now - timedelta(days=span)).date()).table for span in (7, 30)}
        assert set(re.findall(r"events_(?:p\d{6}|history|default)", plan)) == window_months, plan


async def _plan(database_url: str, statement: str, parameters: Any) -> str:
    """The engine's query plan for a statement the service ran, on one line."""
    if engine_of(database_url) == "sqlite":
        path = make_url(database_url).database
        assert path is not None
        with sqlite3.connect(path) as db:
            rows = db.execute("EXPLAIN QUERY PLAN " + statement, parameters)
            return " | ".join(row[3] for row in rows)
    database = Database(database_url)
    try:
        async with database.engine.connect() as connection:
            result = await connection.exec_driver_sql("EXPLAIN " + statement, parameters)
            return " | ".join(row[0] for row in result)
    finally:
        await database.dispose()
