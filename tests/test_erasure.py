"""Erasure and suppression (Part C, privacy) through the use cases on a real database: every
row about the user is gone from every table and partition, everything else is untouched, the
record keeps only a digest, and a suppressed id cannot come back in its own tenant."""

from __future__ import annotations

import asyncio
import hashlib

import pytest
import sqlalchemy.exc
from journeys.domain import Environment, EventInput, KeyKind, UserChanges
from journeys.errors import (
    ExternalIdErased,
    InvalidArgument,
    SecretKeyRequired,
    SuppressionNotFound,
    UserNotFound,
)
from journeys.storage.database import Database
from journeys.usecases import Journeys
from journeys.usecases.auth import Caller
from journeys.usecases.privacy import Erasure, Privacy

from scripts.stack import engine_of, migrate, new_key, sql
from tests.privacy_data import (
    NOW,
    make_offers_and_journey,
    rfc3339,
    rows_mentioning,
    seed_user,
    subscribe,
    table_names,
)

ERASED = "erase-me.7f3a"
KEPT = "keep-me.51c2"
USER_TABLES = {
    "users",
    "offers",
    "message_ids",
    "user_daily_activity",
    "user_campaigns",
    "stage_transitions",
    "webhook_messages",
}


def _tenant(database_url: str, partner: str, environment: str = "TEST") -> tuple[str, str]:
    ((partner_id,),) = sql(database_url, f"SELECT id FROM partners WHERE name = '{partner}'")
    return str(partner_id), environment


def _user_id(database_url: str, tenant: tuple[str, str], external_id: str) -> str:
    ((user_id,),) = sql(
        database_url,
        "SELECT id FROM users "
        f"WHERE partner_id = '{tenant[0]}' AND environment = '{tenant[1]}' "
        f"AND external_id = '{external_id}'",
    )
    return str(user_id)


def _events_tables(counts: dict[str, int]) -> int:
    return sum(count for name, count in counts.items() if name.startswith("events"))


def test_erasure_removes_every_row_about_the_user_and_nothing_else(database_url: str) -> None:
    migrate(database_url)
    public = new_key(database_url, "erasing")
    secret = new_key(database_url, "erasing", kind=KeyKind.SECRET)
    live = new_key(database_url, "erasing", Environment.LIVE)
    elsewhere = new_key(database_url, "another")

    async def seed() -> None:
        async with Database(database_url) as database:
            for key, external_id in ((public, ERASED), (public, KEPT), (live, ERASED)):
                await seed_user(database, key, external_id)
            await seed_user(database, elsewhere, ERASED)
            await subscribe(database, "erasing")
            await make_offers_and_journey(database, public, ERASED)

    asyncio.run(seed())
    tenant = _tenant(database_url, "erasing")
    erased_id = _user_id(database_url, tenant, ERASED)
    untouched = {
        "kept": _user_id(database_url, tenant, KEPT),
        "live": _user_id(database_url, _tenant(database_url, "erasing", "LIVE"), ERASED),
        "elsewhere": _user_id(database_url, _tenant(database_url, "another"), ERASED),
    }
    before = rows_mentioning(database_url, erased_id)
    others_before = {name: rows_mentioning(database_url, uid) for name, uid in untouched.items()}
    assert set(before) >= USER_TABLES, f"the seed must reach every table: {before}"
    assert _events_tables(before) > 0
    if engine_of(database_url) == "postgresql":
        assert sum(1 for name in before if name.startswith("events_")) >= 2, (
            "events in several partitions"
        )

    async def erase() -> Erasure:
        async with Database(database_url) as database:
            privacy = Privacy(database, clock=lambda: NOW)
            with pytest.raises(SecretKeyRequired):
                await privacy.delete_user(Caller(public), ERASED, suppress=False)
            erasure = await privacy.delete_user(Caller(secret), ERASED, suppress=False)
            with pytest.raises(UserNotFound):
                await privacy.delete_user(Caller(secret), ERASED, suppress=False)
            with pytest.raises(UserNotFound):
                await Journeys(database).get_user(Caller(public), ERASED)
            return erasure

    erasure = asyncio.run(erase())

    assert erasure == Erasure(ERASED, NOW, False, sum(before.values()))
    assert rows_mentioning(database_url, erased_id) == {}
    assert rows_mentioning(database_url, ERASED, within=tenant) == {}, "no trace of the id"
    for name, user_id in untouched.items():
        assert rows_mentioning(database_url, user_id) == others_before[name], name
    digest = hashlib.sha256(ERASED.encode()).hexdigest()
    recorded = sql(
        database_url,
        "SELECT partner_id, environment, external_id_digest, rows_removed, suppressed, "
        "erased_at FROM erasures",
    )
    assert [row[:5] for row in recorded] == [
        (tenant[0], "TEST", digest, erasure.rows_removed, False)
    ]
    assert sql(database_url, "SELECT count(*) FROM suppressions") == [(0,)]


def test_every_table_is_scanned_including_partitions(database_url: str) -> None:
    migrate(database_url)

    names = set(table_names(database_url))

    assert {"erasures", "suppressions", *USER_TABLES} <= names
    if engine_of(database_url) == "postgresql":
        assert {"events_history", "events_default"} <= names


def test_an_unknown_or_invalid_user_is_refused(database_url: str) -> None:
    migrate(database_url)
    secret = new_key(database_url, "nobody-here", kind=KeyKind.SECRET)

    async def exercise() -> None:
        async with Database(database_url) as database:
            privacy = Privacy(database)
            with pytest.raises(UserNotFound) as unknown:
                await privacy.delete_user(Caller(secret), "never-seen", suppress=True)
            assert unknown.value.message == "User not found"
            with pytest.raises(InvalidArgument) as invalid:
                await privacy.delete_user(Caller(secret), "..", suppress=True)
            assert invalid.value.violation is not None
            assert invalid.value.violation.field == "externalId"

    asyncio.run(exercise())

    assert sql(database_url, "SELECT count(*) FROM erasures") == [(0,)]
    assert sql(database_url, "SELECT count(*) FROM suppressions") == [(0,)]


def test_a_suppressed_id_cannot_come_back_in_its_tenant_until_lifted(database_url: str) -> None:
    migrate(database_url)
    public = new_key(database_url, "suppressing")
    secret = new_key(database_url, "suppressing", kind=KeyKind.SECRET)
    live = new_key(database_url, "suppressing", Environment.LIVE)
    elsewhere = new_key(database_url, "unrelated")
    erased_message = "Invalid request body: externalId has been erased"

    def play(external_id: str, message_id: str = "") -> EventInput:
        return EventInput(external_id, "GAME_PLAY", "spin", 5, rfc3339(NOW), message_id)

    async def exercise() -> None:
        async with Database(database_url) as database:
            api = Journeys(database, clock=lambda: NOW)
            privacy = Privacy(database, clock=lambda: NOW)
            await seed_user(database, public, ERASED)
            erasure = await privacy.delete_user(Caller(secret), ERASED, suppress=True)
            assert erasure.suppressed

            with pytest.raises(ExternalIdErased) as refused:
                await api.track_user(Caller(public), UserChanges(external_id=ERASED))
            assert refused.value.message == erased_message
            assert refused.value.violation is not None
            assert refused.value.violation.field == "externalId"
            with pytest.raises(ExternalIdErased) as refused_event:
                await api.track_event(Caller(public), play(ERASED))
            assert refused_event.value.message == erased_message
            batch = await api.track_events(
                Caller(public),
                [play("someone-new", "m1"), play(ERASED, "m2"), play(KEPT), play(ERASED)],
            )
            assert [(item.status, item.error) for item in batch.results] == [
                ("accepted", ""),
                ("rejected", "externalId has been erased"),
                ("accepted", ""),
                ("rejected", "externalId has been erased"),
            ]
            with pytest.raises(UserNotFound):
                await api.get_user(Caller(public), ERASED)
            assert (await api.get_user(Caller(public), "someone-new")).activity.total_events == 1

            # Other tenants never suppressed it.
            for key in (live, elsewhere):
                await api.track_user(Caller(key), UserChanges(external_id=ERASED))
                await api.track_event(Caller(key), play(ERASED))

            with pytest.raises(SecretKeyRequired):
                await privacy.lift_suppression(Caller(public), ERASED)
            await privacy.lift_suppression(Caller(secret), ERASED)
            with pytest.raises(SuppressionNotFound) as again:
                await privacy.lift_suppression(Caller(secret), ERASED)
            assert again.value.message == "Suppression not found"
            await api.track_event(Caller(public), play(ERASED, "m2"))
            assert (await api.get_user(Caller(public), ERASED)).activity.total_events == 1

    asyncio.run(exercise())

    # The suppression was kept as a digest only, and is gone now.
    assert sql(database_url, "SELECT count(*) FROM suppressions") == [(0,)]


def test_suppressing_twice_keeps_one_entry(database_url: str) -> None:
    migrate(database_url)
    public = new_key(database_url, "twice")
    secret = new_key(database_url, "twice", kind=KeyKind.SECRET)

    async def exercise() -> None:
        async with Database(database_url) as database:
            privacy = Privacy(database, clock=lambda: NOW)
            await seed_user(database, public, ERASED)
            await privacy.delete_user(Caller(secret), ERASED, suppress=True)
            await privacy.lift_suppression(Caller(secret), ERASED)
            await seed_user(database, public, ERASED)
            await privacy.delete_user(Caller(secret), ERASED, suppress=True)

    asyncio.run(exercise())

    digest = hashlib.sha256(ERASED.encode()).hexdigest()
    assert sql(database_url, "SELECT external_id_digest FROM suppressions") == [(digest,)]
    assert sql(database_url, "SELECT count(*) FROM erasures") == [(2,)]


_REFUSE_ERASURE_RECORDS = {
    "sqlite": [
        "CREATE TRIGGER refuse_erasures BEFORE INSERT ON erasures "
        "BEGIN SELECT RAISE(ABORT, 'refused'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'refused'; END "
        "$$ LANGUAGE plpgsql",
        "CREATE TRIGGER refuse_erasures BEFORE INSERT ON erasures "
        "FOR EACH ROW EXECUTE FUNCTION refuse()",
    ],
}


def test_an_erasure_that_fails_at_its_last_step_leaves_everything(database_url: str) -> None:
    migrate(database_url)
    public = new_key(database_url, "failing")
    secret = new_key(database_url, "failing", kind=KeyKind.SECRET)

    async def seed() -> None:
        async with Database(database_url) as database:
            await seed_user(database, public, ERASED)
            await make_offers_and_journey(database, public, ERASED)

    asyncio.run(seed())
    user_id = _user_id(database_url, _tenant(database_url, "failing"), ERASED)
    before = rows_mentioning(database_url, user_id)
    # The audit record is written after every delete: failing it must undo them all.
    sql(database_url, *_REFUSE_ERASURE_RECORDS[engine_of(database_url)])

    async def erase() -> None:
        async with Database(database_url) as database:
            with pytest.raises(sqlalchemy.exc.DBAPIError):
                await Privacy(database).delete_user(Caller(secret), ERASED, suppress=True)

    asyncio.run(erase())

    assert rows_mentioning(database_url, user_id) == before
    assert sql(database_url, "SELECT count(*) FROM suppressions") == [(0,)]
