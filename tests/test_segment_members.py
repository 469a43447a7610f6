"""Segment sizes and members (Part C) through the use cases on a real database: counts match
the stored segments, keyset pages cover everyone exactly once (also while users are added),
filters combine, bad parameters name themselves, and only a secret key may ask."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from journeys.domain import EventInput, KeyKind, UserChanges
from journeys.errors import InvalidArgument, SecretKeyRequired
from journeys.storage.database import Database
from journeys.usecases import Journeys
from journeys.usecases.analytics import AnalyticsJob
from journeys.usecases.auth import Caller
from journeys.usecases.segments import (
    MemberPage,
    Segments,
    SegmentSizes,
    decode_cursor,
    encode_cursor,
    segment_query,
)

from scripts.stack import migrate, new_key, sql

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
USERS = 60


async def _seed(database: Database, public: str) -> None:
    api = Journeys(database, clock=lambda: NOW)
    for n in range(USERS):
        external_id = f"user-{n:03d}"
        await api.track_user(Caller(public), UserChanges(external_id=external_id))
        plays = [
            EventInput(external_id, "GAME_PLAY", "spin", 10, "", f"{external_id}-{i}")
            for i in range(n % 7)
        ]
        if plays:
            await api.track_events(Caller(public), plays)
    await AnalyticsJob(database, clock=lambda: NOW).run(NOW + timedelta(days=2))


async def _all_pages(segments: Segments, secret: str, limit: int, **filters: object) -> list[str]:
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page: MemberPage = await segments.members(
            Caller(secret),
            filters.get("stage"),  # type: ignore[arg-type]
            filters.get("tier"),  # type: ignore[arg-type]
            filters.get("min_churn_risk"),  # type: ignore[arg-type]
            limit,
            cursor,
        )
        assert len(page.members) <= limit
        seen += [member.external_id for member in page.members]
        if not page.next_cursor:
            return seen
        cursor = page.next_cursor


def test_sizes_and_members_match_the_stored_segments(database_url: str) -> None:
    migrate(database_url)
    public = new_key(database_url, "segmented")
    secret = new_key(database_url, "segmented", kind=KeyKind.SECRET)
    other = new_key(database_url, "another", kind=KeyKind.SECRET)

    async def exercise() -> tuple[SegmentSizes, SegmentSizes, list[str], list[str], SegmentSizes]:
        async with Database(database_url) as database:
            before = await Segments(database).sizes(Caller(secret))
            await _seed(database, public)
            segments = Segments(database)
            sizes = await segments.sizes(Caller(secret))
            everyone = await _all_pages(segments, secret, limit=7)
            active_casual = await _all_pages(
                segments, secret, limit=3, stage="active", tier="casual", min_churn_risk=5
            )
            return before, sizes, everyone, active_casual, await segments.sizes(Caller(other))

    before, sizes, everyone, active_casual, others = asyncio.run(exercise())

    stored = sql(
        database_url,
        "SELECT u.external_id, u.segment_stage, u.segment_tier, u.segment_churn_risk "
        "FROM users u JOIN partners p ON p.id = u.partner_id "
        "WHERE p.name = 'segmented' ORDER BY u.external_id",
    )
    assert before.computed_at is None
    assert sum(before.stages.values()) == 0
    assert sizes.computed_at is not None
    assert list(sizes.stages) == ["new", "active", "engaged", "power_user", "at_risk", "churned"]
    assert list(sizes.tiers) == ["casual", "regular", "power_user", "whale"]
    for stage, count in sizes.stages.items():
        assert count == sum(1 for row in stored if row[1] == stage)
    for tier, count in sizes.tiers.items():
        assert count == sum(1 for row in stored if row[2] == tier)
    assert sum(sizes.stages.values()) == USERS
    assert everyone == [row[0] for row in stored]
    assert 0 < len(active_casual) < USERS, "the filters must select a part"
    assert active_casual == [
        row[0] for row in stored if row[1] == "active" and row[2] == "casual" and row[3] >= 5
    ]
    assert sum(others.stages.values()) == 0, "another partner sees none of them"


def test_paging_while_users_are_added_never_repeats_or_skips(database_url: str) -> None:
    migrate(database_url)
    public = new_key(database_url, "growing")
    secret = new_key(database_url, "growing", kind=KeyKind.SECRET)
    seen: list[str] = []

    async def exercise() -> None:
        async with Database(database_url) as database:
            await _seed(database, public)
            segments = Segments(database)
            api = Journeys(database, clock=lambda: NOW)
            cursor: str | None = None
            added = 0
            while True:
                page = await segments.members(Caller(secret), None, None, None, 9, cursor)
                seen.extend(member.external_id for member in page.members)
                # New users on both sides of the cursor, classified by a new run.
                for external_id in (f"aaa-{added}", f"user-{added:03d}-new", f"zzz-{added}"):
                    await api.track_user(Caller(public), UserChanges(external_id=external_id))
                added += 1
                await AnalyticsJob(database, clock=lambda: NOW).run(NOW)
                if not page.next_cursor:
                    return
                cursor = page.next_cursor

    asyncio.run(exercise())

    originals = [f"user-{n:03d}" for n in range(USERS)]
    assert len(seen) == len(set(seen)), "no user twice"
    assert [external_id for external_id in seen if external_id in originals] == originals


def test_a_public_key_is_refused_and_users_never_classified_are_not_listed(
    database_url: str,
) -> None:
    migrate(database_url)
    public = new_key(database_url, "unclassified")
    secret = new_key(database_url, "unclassified", kind=KeyKind.SECRET)

    async def exercise() -> MemberPage:
        async with Database(database_url) as database:
            await Journeys(database, clock=lambda: NOW).track_user(
                Caller(public), UserChanges(external_id="fresh")
            )
            segments = Segments(database)
            with pytest.raises(SecretKeyRequired):
                await segments.sizes(Caller(public))
            with pytest.raises(SecretKeyRequired):
                await segments.members(Caller(public), None, None, None, None, None)
            return await segments.members(Caller(secret), None, None, None, None, None)

    assert asyncio.run(exercise()) == MemberPage((), "")


@pytest.mark.parametrize(
    ("arguments", "field", "message"),
    [
        (("gone", None, None, None, None), "lifecycleStage", "lifecycleStage must be one of"),
        ((None, "vip", None, None, None), "engagementTier", "engagementTier must be one of"),
        ((None, None, -1, None, None), "minChurnRisk", "minChurnRisk must be between 0 and 100"),
        ((None, None, 101, None, None), "minChurnRisk", "minChurnRisk must be between 0 and 100"),
        ((None, None, None, 0, None), "limit", "limit must be between 1 and 1000"),
        ((None, None, None, 1001, None), "limit", "limit must be between 1 and 1000"),
        ((None, None, None, None, "%%%"), "cursor", "cursor is not one this API returned"),
        ((None, None, None, None, "dXNlcg"), "cursor", "cursor is not one this API returned"),
    ],
)
def test_bad_parameters_name_themselves(
    arguments: tuple[object, ...], field: str, message: str
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        segment_query(*arguments)  # type: ignore[arg-type]

    assert refused.value.violation is not None
    assert refused.value.violation.field == field
    assert refused.value.message.startswith(f"Invalid request body: {message}")


@pytest.mark.parametrize("external_id", ["u", "user-001", "a.b:c@d+e", "x" * 128])
def test_a_cursor_carries_its_external_id_back(external_id: str) -> None:
    cursor = encode_cursor(external_id)

    assert decode_cursor(cursor) == external_id
    assert external_id not in cursor or len(external_id) < 2


def test_defaults_and_edges_of_the_query() -> None:
    query = segment_query(None, None, None, None, None)
    edges = segment_query("at_risk", "whale", 100, 1000, encode_cursor("u1"))

    assert (query.stage, query.tier, query.min_churn_risk, query.after, query.limit) == (
        None,
        None,
        None,
        None,
        100,
    )
    assert (edges.stage, edges.tier, edges.min_churn_risk, edges.after, edges.limit) == (
        "at_risk",
        "whale",
        100,
        "u1",
        1000,
    )
