"""The analytics job over generated populations, its lock, and its schedule."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from journeys.domain import Category, Environment, NewEvent, Tenant, UserChanges
from journeys.storage.database import Database
from journeys.usecases.analytics import LEASE_NAME, AnalyticsJob

from scripts.stack import BIN, migrate, new_key, running_stack, sql, stack_env

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

event_strategy = st.tuples(
    st.sampled_from(list(Category)),
    st.integers(0, 24 * 100),  # hours before NOW
    st.integers(-50, 500),
    st.booleans(),
)
population_strategy = st.lists(
    st.lists(event_strategy, min_size=0, max_size=70), min_size=1, max_size=12
)
runs_strategy = st.lists(st.integers(0, 24 * 40), min_size=1, max_size=4)  # hours after NOW


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    migrate(f"sqlite+aiosqlite:///{path}")
    return path


async def _populate(
    database: Database, population: list[list[tuple[Category, int, int, bool]]]
) -> Tenant:
    async with database.transaction(write=True) as tx:
        tenant = Tenant(await tx.keys.ensure_partner("generated", NOW), Environment.TEST)
        store = tx.tenant(tenant)
        for n, history in enumerate(population):
            drafts = [
                NewEvent(
                    external_id=f"user-{n}",
                    category=category,
                    event_type="generated",
                    points=points,
                    occurred_at=NOW - timedelta(hours=hours),
                    message_id=None,
                    metadata={"won": won, "campaignId": f"c{hours % 4}"},
                )
                for category, hours, points, won in history
            ]
            if drafts:
                await store.record_events(drafts, NOW)
            else:
                await store.upsert_user(UserChanges(external_id=f"user-{n}"), NOW)
    return tenant


@pytest.mark.sqlite_only  # copies a migrated SQLite file per example and reads it directly
@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(population=population_strategy, runs=runs_strategy)
def test_no_user_ever_holds_more_than_three_offers_or_two_of_a_type(
    template: Path,
    tmp_path: Path,
    population: list[list[tuple[Category, int, int, bool]]],
    runs: list[int],
) -> None:
    path = tmp_path / f"population-{time.monotonic_ns()}.db"
    shutil.copy(template, path)

    async def scenario() -> None:
        database = Database(f"sqlite+aiosqlite:///{path}")
        try:
            await _populate(database, population)
            job = AnalyticsJob(database, chunk_size=5)
            for n, hours in enumerate(sorted(runs)):
                as_of = NOW + timedelta(hours=hours)
                summary = await job.run(as_of)
                assert summary is not None
                # The first run classifies everyone; later ones only the users due.
                assert summary.users_scanned <= len(population)
                assert n > 0 or summary.users_scanned == len(population)
                again = await job.run(as_of)
                assert again is not None
                assert again.offers_created == 0, "a second run at the same instant makes nothing"
                _check_invariants(path, as_of)
        finally:
            await database.dispose()

    asyncio.run(scenario())
    path.unlink()


def _check_invariants(path: Path, as_of: datetime) -> None:
    with sqlite3.connect(path) as db:
        per_user = db.execute(
            "SELECT user_id, count(*), count(DISTINCT offer_type) FROM offers "
            "WHERE status = 'active' GROUP BY user_id"
        ).fetchall()
        stale = db.execute(
            "SELECT count(*) FROM offers o JOIN users u ON u.id = o.user_id "
            "WHERE o.created_at = ? AND u.last_seen_at < ?",
            (_sqlite_time(as_of), _sqlite_time(as_of - timedelta(days=61))),
        ).fetchone()[0]
    for _user, active, types in per_user:
        assert active <= 3
        assert types == active
    assert stale == 0, "nobody silent more than 60 days gets a new offer"


def _sqlite_time(moment: datetime) -> str:
    return moment.replace(tzinfo=None).isoformat(sep=" ") + ".000000"


async def test_a_run_that_finds_the_lease_taken_waits_or_skips(database_url: str) -> None:
    migrate(database_url)
    database = Database(database_url)
    try:
        await _populate(database, [[(Category.GAME_PLAY, 1, 5, True)]])
        async with database.transaction(write=True) as tx:
            assert await tx.jobs.take_lease(
                LEASE_NAME, "someone-else", NOW, datetime.now(UTC) + timedelta(seconds=2)
            )

        skipped = await AnalyticsJob(database).run(NOW, wait=False)
        started = time.monotonic()
        waited = await AnalyticsJob(database).run(NOW, wait=True)

        assert skipped is None
        assert waited is not None
        assert waited.users_scanned == 1
        assert time.monotonic() - started >= 1, "it waited for the other holder's lease to end"
    finally:
        await database.dispose()


def test_two_cli_runs_at_once_never_generate_together(database_url: str) -> None:
    url = database_url
    migrate(url)

    async def seed() -> None:
        database = Database(url)
        try:
            async with database.transaction(write=True) as tx:
                partner = await tx.keys.ensure_partner("two", NOW)
                store = tx.tenant(Tenant(partner, Environment.TEST))
                await store.set_holdout_share(0.0, NOW)  # every user gets offers
                for n in range(3000):
                    await store.upsert_user(UserChanges(external_id=f"u{n}"), datetime.now(UTC))
        finally:
            await database.dispose()

    asyncio.run(seed())
    env = {**stack_env(url, 0, 0, 0)}
    runs = [
        subprocess.Popen(
            # Full: the second run recomputes everyone too (incremental, nobody would be due).
            [str(BIN / "journeys"), "analytics", "run", "--full"],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=120)[0] for run in runs]

    assert [run.returncode for run in runs] == [0, 0]
    intervals = sql(
        url,
        "SELECT started_at, finished_at, offers_created FROM analytics_runs ORDER BY started_at",
    )
    [(active,)] = sql(url, "SELECT count(*) FROM offers WHERE status = 'active'")
    assert len(intervals) == 2
    (_, first_end, first_created), (second_start, _, second_created) = intervals
    assert second_start >= first_end, "the second run started after the first finished"
    assert (first_created, second_created) == (6000, 0)
    assert active == 6000, "two welcome offers for each of 3000 new users, once"
    assert all("3000 users scanned" in output for output in outputs)


def test_serve_runs_the_job_on_its_schedule(database_url: str) -> None:
    url = database_url
    migrate(url)
    key = new_key(url, "scheduled")
    with (
        running_stack(url, env_overrides={"JOURNEYS_ANALYTICS_INTERVAL": "1"}) as stack,
        httpx.Client(base_url=stack.base_url, timeout=10) as http,
    ):
        http.post(
            "/v1/user-journeys/users", headers={"X-API-Key": key}, json={"externalId": "sched"}
        ).raise_for_status()
        held: list[Any] = []
        deadline = time.monotonic() + 30
        while not held and time.monotonic() < deadline:
            time.sleep(0.2)
            held = http.get(
                "/v1/user-journeys/users/sched/offers", headers={"X-API-Key": key}
            ).json()["data"]["offers"]

    assert {offer["offerType"] for offer in held} == {"welcome_free_play", "welcome_bonus"}
    assert "offers created" in stack.log_text()
