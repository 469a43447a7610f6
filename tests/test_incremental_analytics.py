"""An incremental analytics run stores exactly what a full one does: two databases fed the same
population and the same trickle of events, claims and a catalogue change, one always run in
full and one incrementally, compared after every run."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from journeys.domain import Category, Environment, NewEvent, Tenant, UserChanges
from journeys.storage.database import Database
from journeys.usecases import catalogue, keys
from journeys.usecases.analytics import AnalyticsJob
from journeys.usecases.auth import Caller
from journeys.usecases.journeys import Journeys
from sqlalchemy import text

from scripts.stack import migrate
from tests.conftest import _new_database

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
USERS = 2000
SEED = 7
PARTNER = "5e1d3c2a-0000-4000-8000-00000000000a"


def _events(rng: random.Random, external_id: str, at: datetime, count: int) -> list[NewEvent]:
    return [
        NewEvent(
            external_id=external_id,
            category=rng.choice(
                [
                    Category.GAME_PLAY,
                    Category.GAME_PLAY,
                    Category.CAMPAIGN,
                    Category.POINTS,
                    Category.CUSTOM,
                ]
            ),
            event_type="generated",
            points=rng.choice([0, 5, 50, 400, -20]),
            occurred_at=at - timedelta(minutes=rng.randrange(0, 600)),
            message_id=None,
            metadata={"won": rng.random() < 0.4, "campaignId": f"c{rng.randrange(5)}"},
        )
        for _ in range(count)
    ]


async def _populate(database: Database, rng: random.Random) -> Tenant:
    async with database.transaction(write=True) as tx:
        # One partner id in both databases: the holdout and the seeded draws depend on it.
        await tx._connection.execute(
            text("INSERT INTO partners (id, name, created_at) VALUES (:id, :name, :at)"),
            {"id": PARTNER, "name": "incremental", "at": START.replace(tzinfo=None)},
        )
        partner = await tx.keys.ensure_partner("incremental", START)
        assert partner == PARTNER
        tenant = Tenant(partner, Environment.TEST)
        store = tx.tenant(tenant)
        await store.set_holdout_share(0.05, START)
        for n in range(USERS):
            external_id = f"user-{n:05d}"
            kind = n % 5
            if kind == 0:  # profile only, no events
                await store.upsert_user(UserChanges(external_id=external_id), START)
                continue
            # From daily players to users silent for weeks.
            silent = {1: 0, 2: 3, 3: 16, 4: 40}[kind] + rng.randrange(0, 3)
            drafts: list[NewEvent] = []
            for day in range(rng.randrange(1, 25)):
                at = START - timedelta(days=silent + day * rng.choice([1, 2, 7]))
                drafts += _events(rng, external_id, at, rng.randrange(1, 4))
            await store.record_events(drafts, START)
    return tenant


async def _trickle(
    database: Database, tenant: Tenant, key: str, rng: random.Random, at: datetime
) -> None:
    """Events for a few users through the real ingestion path, and claims of some offers."""
    async with database.transaction(write=True) as tx:
        store = tx.tenant(tenant)
        for n in sorted(rng.sample(range(USERS), 40)):
            await store.record_events(_events(rng, f"user-{n:05d}", at, rng.randrange(1, 4)), at)
        for n in sorted(rng.sample(range(USERS), 5)):
            await store.upsert_user(UserChanges(external_id=f"user-{n:05d}"), at)
    async with database.transaction(write=True) as tx:
        rows = (
            await tx._connection.execute(
                text(
                    "SELECT o.id, u.external_id FROM offers o JOIN users u ON u.id = o.user_id "
                    "WHERE o.status = 'active' ORDER BY u.external_id, o.offer_type"
                )
            )
        ).all()
    chosen = [row for row in rows if rng.random() < 0.15]
    claims = Journeys(database, clock=lambda: at)
    for offer_id, external_id in chosen:
        await claims.claim_offer(Caller(key), external_id, offer_id)


async def _state(database: Database) -> dict[str, Any]:
    async with database.transaction(write=False) as tx:
        connection = tx._connection

        async def rows(sql: str) -> list[tuple[Any, ...]]:
            return [tuple(row) for row in (await connection.execute(text(sql))).all()]

        return {
            "segments": await rows(
                "SELECT u.external_id, segment_stage, segment_tier, segment_engagement_score, "
                "segment_churn_risk, first_classified_at, "
                "CASE WHEN segments_computed_at > t.confirmed_as_of THEN segments_computed_at "
                "ELSE t.confirmed_as_of END "
                "FROM users u LEFT JOIN analytics_tenants t ON t.partner_id = u.partner_id "
                "AND t.environment = u.environment ORDER BY u.external_id"
            ),
            "transitions": await rows(
                "SELECT u.external_id, from_stage, to_stage, at FROM stage_transitions s "
                "JOIN users u ON u.id = s.user_id ORDER BY u.external_id, at, from_stage"
            ),
            "offers": await rows(
                "SELECT u.external_id, offer_type, status, expires_at, claimed_at, points_value, "
                "CAST(o.metadata AS TEXT), o.created_at, context_stage, context_tier FROM offers o "
                "JOIN users u ON u.id = o.user_id ORDER BY u.external_id, o.created_at, offer_type"
            ),
            "outcomes": await rows(
                "SELECT offer_type, stage, tier, successes, failures FROM offer_outcomes "
                "ORDER BY offer_type, stage, tier"
            ),
        }


@pytest.mark.parametrize("run_hours", [6])
def test_incremental_runs_store_exactly_what_full_runs_do(
    request: pytest.FixtureRequest, engine: str, tmp_path: Path, run_hours: int
) -> None:
    urls = [_new_database(request, engine, tmp_path / name) for name in ("full", "incremental")]
    for url in urls:
        migrate(url)

    async def scenario() -> None:
        databases = [Database(url) for url in urls]
        try:
            tenants = [await _populate(db, random.Random(SEED)) for db in databases]
            api_keys = [
                await keys.create(db, "incremental", Environment.TEST, START) for db in databases
            ]
            jobs = [AnalyticsJob(db, offer_seed=SEED) for db in databases]
            trickles = [random.Random(SEED + 1) for _ in databases]
            scanned = []
            for step in range(5 * 24 // run_hours):
                as_of = START + timedelta(hours=step * run_hours)
                if step == 9:  # a catalogue change: the tenant is recomputed whole
                    for db in databases:
                        await catalogue.override(
                            db,
                            "incremental",
                            Environment.TEST,
                            as_of,
                            {"daily_free_spin": {"points_value": 30}},
                        )
                summaries = []
                for job, full in zip(jobs, (True, False), strict=True):
                    summary = await job.run(as_of, full=full)
                    assert summary is not None
                    summaries.append(summary)
                full_state, incremental_state = [await _state(db) for db in databases]
                for part in full_state:
                    assert incremental_state[part] == full_state[part], (step, part)
                scanned.append(summaries[1].users_scanned)
                for db, tenant, key, rng in zip(
                    databases, tenants, api_keys, trickles, strict=True
                ):
                    await _trickle(db, tenant, key, rng, as_of + timedelta(hours=run_hours - 1))
            # Not a vacuous comparison: later runs recompute a fraction of the population.
            assert scanned[0] == USERS
            assert min(scanned[1:]) < USERS / 4, scanned
            assert sum(scanned[1:]) < 0.75 * USERS * (len(scanned) - 1), scanned
        finally:
            for db in databases:
                await db.dispose()

    asyncio.run(scenario())
