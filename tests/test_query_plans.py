"""The reads on a request's path use the indexes made for them, even on a SQLite file that
has never been analysed (SQLite's planner then guesses from index shapes alone)."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from journeys.domain import Environment, NewOffer, SegmentQuery, Tenant, UserChanges, utc_now
from journeys.storage import lookups
from journeys.storage.database import Database
from journeys.storage.driver import Codec

from scripts.stack import migrate


def _migrated(tmp_path: Path) -> tuple[Path, Database]:
    """A new, never analysed SQLite file at the schema's head."""
    path = tmp_path / "plans.db"
    migrate(f"sqlite+aiosqlite:///{path}")
    return path, Database(f"sqlite+aiosqlite:///{path}")


def _plan(path: Path, statement: str, parameters: Any) -> str:
    with sqlite3.connect(path) as db:
        return " | ".join(
            row[3] for row in db.execute("EXPLAIN QUERY PLAN " + statement, parameters)
        )


@pytest.mark.sqlite_only
async def test_a_users_offers_are_read_through_their_own_index(tmp_path: Path) -> None:
    path, database = _migrated(tmp_path)
    now = utc_now()
    statements: list[tuple[str, Any]] = []
    try:
        async with database.transaction(write=True) as tx:
            tenant = Tenant(await tx.keys.ensure_partner("plans", now), Environment.TEST)
            store = tx.tenant(tenant)
            for n in range(50):
                await store.upsert_user(UserChanges(external_id=f"u{n}"), now)
            user = await store.get_user("u1")
            assert user is not None
            await store.add_offers(
                [
                    NewOffer(
                        user.id, "welcome_bonus", "", "t", "d", 1, now + timedelta(days=1), {}
                    ),
                ],
                now,
            )

        database.on_statement(
            lambda statement, parameters: statements.append((statement, parameters))
        )
        async with database.transaction(write=False) as tx:
            offers = await tx.tenant(tenant).active_offers(user.id, now)
            await tx.tenant(tenant).expire_offers(now)
    finally:
        await database.dispose()

    assert [offer.offer_type for offer in offers] == ["welcome_bonus"]
    plans = {
        statement.split()[0]: _plan(path, statement, parameters)
        for statement, parameters in statements
        if "offers" in statement and not statement.startswith("BEGIN")
    }
    assert "ix_offers_partner_id_environment_user_id_status_expires_at" in plans["SELECT"]
    assert "ix_offers_partner_id_environment_status_expires_at" in plans["UPDATE"]


@pytest.mark.sqlite_only
def test_getoffers_reads_key_user_and_offers_each_through_an_index(tmp_path: Path) -> None:
    """The request path's one statement (storage/lookups.py), as the raw driver runs it."""
    path, _ = _migrated(tmp_path)
    sql, arguments = lookups.OFFERS.arguments(
        "sqlite",
        {"digest": "0" * 64, "external_id": "u1", "now": Codec("sqlite").time_in(utc_now())},
    )
    plan = _plan(path, sql, arguments)
    assert "SEARCH api_keys USING INDEX" in plan
    assert "SEARCH users USING INDEX sqlite_autoindex_users" in plan
    assert "SEARCH offers USING INDEX ix_offers_partner_id_environment_user_id_status" in plan
    assert "SCAN" not in plan


@pytest.mark.sqlite_only
@pytest.mark.parametrize(
    ("stage", "tier", "index"),
    [
        ("at_risk", None, "ix_users_partner_id_environment_segment_stage_external_id"),
        (None, "whale", "ix_users_partner_id_environment_segment_tier_external_id"),
        (None, None, "sqlite_autoindex_users"),  # the (tenant, externalId) unique key
    ],
)
async def test_a_page_of_segment_members_is_one_index_range_in_key_order(
    tmp_path: Path, stage: str | None, tier: str | None, index: str
) -> None:
    path, database = _migrated(tmp_path)
    now = utc_now()
    statements: list[tuple[str, Any]] = []
    try:
        async with database.transaction(write=True) as tx:
            tenant = Tenant(await tx.keys.ensure_partner("plans", now), Environment.TEST)
        database.on_statement(
            lambda statement, parameters: statements.append((statement, parameters))
        )
        async with database.transaction(write=False) as tx:
            await tx.tenant(tenant).segment_members(SegmentQuery(stage, tier, None, "u1", 100))
    finally:
        await database.dispose()

    ((statement, parameters),) = [(s, p) for s, p in statements if s.startswith("SELECT")]
    plan = _plan(path, statement, parameters)
    assert index in plan
    assert "TEMP B-TREE" not in plan, "pages come in index order, never sorted"
