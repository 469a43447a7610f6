"""Generated populations for benchmarks and demos: `journeys dev seed-data`.

Users are drawn from archetypes (new, casual, regular, power, whale, at-risk, churned, gone)
so every segment and offer rule has work to do. Events go through the same ingestion path
as the API's, so the database looks exactly as if partners had sent them.

`bulk=True` (`--bulk`) is the fast path for benchmark populations: the same generated events
are inserted with executemany, then the profile counters, `user_daily_activity` and
`user_campaigns` are built from them by a few set-based statements. It produces the same
profiles as the API path (tests/test_devdata.py proves it) at many times its speed.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, text

from journeys.domain import Category, Environment, NewEvent, Tenant, utc_now
from journeys.storage.bulk import BulkInsert
from journeys.storage.database import Database
from journeys.storage.schema import EVENT_COLUMNS, events, users

BATCH = 2000
#: Rows per executemany (and per transaction) of the bulk path.
BULK_BATCH = 20_000
BULK_CACHE_KIB = 256 * 1024


@dataclass(frozen=True)
class Archetype:
    name: str
    share: float
    #: Relative number of events per user.
    weight: float
    #: Days before now of the user's most recent and oldest activity.
    last_seen_days: tuple[float, float]
    span_days: float


ARCHETYPES = (
    Archetype("new", 0.10, 0.2, (0, 5), 1),
    Archetype("casual", 0.25, 0.5, (0, 10), 60),
    Archetype("regular", 0.20, 1.0, (0, 6), 90),
    Archetype("power", 0.08, 3.0, (0, 2), 120),
    Archetype("whale", 0.02, 6.0, (0, 1), 180),
    Archetype("at_risk", 0.12, 0.8, (14, 29), 90),
    Archetype("churned", 0.13, 0.6, (31, 59), 120),
    Archetype("gone", 0.10, 0.4, (61, 200), 120),
)
_CATEGORIES = (
    (Category.GAME_PLAY, 0.70),
    (Category.POINTS, 0.15),
    (Category.CAMPAIGN, 0.05),
    (Category.CUSTOM, 0.10),
)


def plan(users: int, events: int, rng: random.Random) -> list[tuple[Archetype, int]]:
    """Each user's archetype and event count, adding up to exactly `events`."""
    names = rng.choices(ARCHETYPES, weights=[a.share for a in ARCHETYPES], k=users)
    total_weight = sum(a.weight for a in names)
    counts = [max(1, int(events * a.weight / total_weight)) for a in names]
    surplus = events - sum(counts)
    step = 1 if surplus > 0 else -1
    index = 0
    while surplus != 0:
        if step > 0 or counts[index % users] > 1:
            counts[index % users] += step
            surplus -= step
        index += 1
    return list(zip(names, counts, strict=True))


def _events(
    external_id: str, archetype: Archetype, count: int, now: datetime, rng: random.Random
) -> Iterator[NewEvent]:
    last = now - timedelta(days=rng.uniform(*archetype.last_seen_days))
    first = last - timedelta(days=rng.uniform(0, archetype.span_days))
    categories = [c for c, _ in _CATEGORIES]
    # Cumulative weights once per user rather than once per event; same draws as `weights`.
    cum_weights = list(itertools.accumulate(w for _, w in _CATEGORIES))
    for n in range(count):
        moment = last if n == 0 else first + (last - first) * rng.random()
        category = rng.choices(categories, cum_weights=cum_weights)[0]
        metadata: dict[str, object] = {}
        if category is Category.GAME_PLAY:
            metadata["won"] = rng.random() < 0.35
        elif category is Category.CAMPAIGN:
            metadata["campaignId"] = f"campaign-{rng.randint(1, 20)}"
        yield NewEvent(
            external_id=external_id,
            category=category,
            event_type="play" if category is Category.GAME_PLAY else category.value.lower(),
            points=rng.randint(-20, 120) if category is not Category.CUSTOM else 0,
            occurred_at=moment.replace(microsecond=0),
            message_id=None,
            metadata=metadata,
        )


async def seed(
    database: Database,
    *,
    users: int,
    events: int,
    partner: str = "seed",
    environment: Environment = Environment.TEST,
    random_seed: int = 1,
    progress: Callable[[int, int], None] | None = None,
    bulk: bool = False,
    now: datetime | None = None,
) -> Tenant:
    rng = random.Random(random_seed)
    now = now or utc_now()
    async with database.transaction(write=True) as tx:
        tenant = Tenant(await tx.keys.ensure_partner(partner, now), environment)
    if bulk:
        await _seed_bulk(database, tenant, plan(users, events, rng), rng, now, progress)
        return tenant
    pending: list[NewEvent] = []
    written = 0

    async def flush() -> None:
        nonlocal written
        async with database.transaction(write=True) as tx:
            await tx.tenant(tenant).record_events(pending, now)
        written += len(pending)
        pending.clear()
        if progress is not None:
            progress(written, events)

    for n, (archetype, count) in enumerate(plan(users, events, rng)):
        for event in _events(f"{archetype.name}-{n}", archetype, count, now, rng):
            pending.append(event)
            if len(pending) >= BATCH:
                await flush()
    if pending:
        await flush()
    return tenant


class TenantNotEmpty(RuntimeError):
    """The bulk path builds counters from scratch, so it only seeds a tenant without users."""


async def _seed_bulk(
    database: Database,
    tenant: Tenant,
    planned: list[tuple[Archetype, int]],
    rng: random.Random,
    now: datetime,
    progress: Callable[[int, int], None] | None,
) -> None:
    scope = {"partner_id": tenant.partner_id, "environment": tenant.environment.value}
    # The engine's own transactions: seeding is the database's only writer.
    async with database.engine.begin() as connection:
        existing = await connection.scalar(
            select(func.count())
            .select_from(users)
            .where(users.c.partner_id == tenant.partner_id)
            .where(users.c.environment == tenant.environment.value)
        )
    if existing:
        raise TenantNotEmpty(
            f"the bulk path seeds only an empty tenant; this one has {existing} users"
        )
    total = sum(count for _, count in planned)
    dialect = database.engine.dialect
    user_insert = BulkInsert(users, _USER_COLUMNS, dialect)
    event_insert = BulkInsert(events, EVENT_COLUMNS, dialect)
    stored_time = event_insert.processor("occurred_at")
    to_json = event_insert.processor("metadata")
    # Generated metadata takes a few dozen distinct values: each is serialised once.
    json_of: dict[tuple[tuple[str, object], ...], object] = {}

    def stored_json(metadata: dict[str, object]) -> object:
        key = tuple(metadata.items())
        found = json_of.get(key)
        if found is None:
            found = json_of[key] = to_json(metadata)
        return found

    stored_now = stored_time(now)
    # Placeholders for the profile times: the set-based statements below set the real ones.
    user_constants = (
        *(tenant.partner_id, tenant.environment.value),
        *[""] * 6,
        *[user_insert.processor("tags")({})] * 2,
        *[stored_now] * 4,
    )
    event_scope = (tenant.partner_id, tenant.environment.value)
    ids = _SequentialIds()
    user_rows: list[tuple[object, ...]] = []
    event_rows: list[tuple[object, ...]] = []
    written = 0
    # PostgreSQL loads a batch in its own process while the next one is generated here (the
    # loop yields every few users so the COPY's replies get read). aiosqlite's thread needs the
    # GIL for every row it binds, so on SQLite generating and inserting take turns.
    overlap = dialect.name == "postgresql"
    writing: asyncio.Task[None] | None = None

    async def write(
        user_batch: list[tuple[object, ...]], event_batch: list[tuple[object, ...]]
    ) -> None:
        nonlocal written
        async with database.engine.begin() as connection:
            if dialect.name == "sqlite":  # the indexes outgrow SQLite's 2 MB default cache
                await connection.exec_driver_sql(f"PRAGMA cache_size = -{BULK_CACHE_KIB}")
            # Profiles first: events reference them (a user's events share its batch).
            await user_insert.execute(connection, user_batch)
            if dialect.name == "postgresql" and not written:
                # Planned on an empty `users`, the reference checks of every event and per-day
                # row would pick the (partner, environment, external id) index and walk the
                # whole tenant for each row.
                await connection.exec_driver_sql("ANALYZE users")
            await event_insert.execute(connection, event_batch)
        written += len(event_batch)
        if progress is not None:
            progress(written, total)

    async def flush() -> None:
        nonlocal writing, user_rows, event_rows
        if writing is not None:
            await writing  # one batch at a time, in order
        writing = asyncio.create_task(write(user_rows, event_rows))
        user_rows, event_rows = [], []
        if not overlap:
            await writing
            writing = None

    for n, (archetype, count) in enumerate(planned):
        external_id = f"{archetype.name}-{n}"
        user_id = ids.next()
        user_rows.append((user_id, external_id, *user_constants))
        for event in _events(external_id, archetype, count, now, rng):
            event_rows.append(
                (
                    ids.next(),
                    *event_scope,
                    user_id,
                    event.category.value,
                    event.event_type,
                    event.points,
                    stored_time(event.occurred_at),
                    None,
                    stored_json(event.metadata),
                    stored_now,
                )
            )
        if len(event_rows) >= BULK_BATCH:
            await flush()
        elif overlap and n % 64 == 0:
            await asyncio.sleep(0)
    await flush()
    if writing is not None:
        await writing
    async with database.engine.begin() as connection:
        for statement in _aggregate_statements(database.dialect):
            await connection.execute(text(statement), scope)
        if database.dialect == "postgresql":
            # What autovacuum does soon after a bulk load anyway, so the service's first
            # queries are planned on the loaded tables. SQLite keeps no statistics unless
            # asked (the service never runs ANALYZE there).
            await connection.exec_driver_sql("ANALYZE")


def _aggregate_statements(dialect: str) -> list[str]:
    """Profile counters, per-day rows and joined campaigns of the tenant's events, set-wise;
    the same rules as `TenantStore.record_events` (see `NewEvent.is_won_play`, `campaign_id`).
    """
    if dialect == "postgresql":
        day = "(occurred_at AT TIME ZONE 'UTC')::date"
        won = "jsonb_typeof(metadata -> 'won') = 'boolean' AND (metadata ->> 'won') = 'true'"
        campaign = "metadata ->> 'campaignId'"
        is_text_campaign = f"jsonb_typeof(metadata -> 'campaignId') = 'string' AND {campaign} <> ''"
    else:
        day = "date(occurred_at)"
        won = "json_type(metadata, '$.won') = 'true'"
        campaign = "json_extract(metadata, '$.campaignId')"
        is_text_campaign = f"json_type(metadata, '$.campaignId') = 'text' AND {campaign} <> ''"
    tenant_events = "FROM events WHERE partner_id = :partner_id AND environment = :environment"
    play = "CASE WHEN category = 'GAME_PLAY' THEN 1 ELSE 0 END"
    return [
        f"""UPDATE users SET
                total_events = agg.total_events,
                total_plays = agg.total_plays,
                won_plays = agg.won_plays,
                first_seen_at = agg.first_seen_at,
                last_seen_at = agg.last_seen_at
            FROM (
                SELECT user_id, count(*) AS total_events, sum({play}) AS total_plays,
                       sum(CASE WHEN category = 'GAME_PLAY' AND {won} THEN 1 ELSE 0 END)
                           AS won_plays,
                       min(occurred_at) AS first_seen_at, max(occurred_at) AS last_seen_at
                {tenant_events}
                GROUP BY user_id
            ) AS agg
            WHERE users.partner_id = :partner_id AND users.environment = :environment
              AND users.id = agg.user_id""",
        f"""INSERT INTO user_daily_activity
                (partner_id, environment, user_id, day, events, plays, points_earned)
            SELECT partner_id, environment, user_id, {day}, count(*), sum({play}),
                   sum(CASE WHEN points > 0 THEN points ELSE 0 END)
            {tenant_events}
            GROUP BY partner_id, environment, user_id, {day}
            -- In key order: the primary key index is appended to, not written all over.
            ORDER BY partner_id, environment, user_id, {day}""",
        f"""INSERT INTO user_campaigns (partner_id, environment, user_id, campaign_id)
            SELECT DISTINCT partner_id, environment, user_id, {campaign}
            {tenant_events} AND category = 'CAMPAIGN' AND {is_text_campaign}""",
    ]


_USER_COLUMNS = (
    "id",
    "external_id",
    "partner_id",
    "environment",
    "display_name",
    "email",
    "phone",
    "country",
    "device",
    "source",
    "tags",
    "metadata",
    "first_seen_at",
    "last_seen_at",
    "created_at",
    "updated_at",
)


class _SequentialIds:
    """UUIDs (version 7 layout: milliseconds first) that increase one by one from a random
    start: every index on an id column is appended to rather than written all over, which makes
    bulk loading several times faster. Benchmark data only; the service's own ids are random."""

    def __init__(self) -> None:
        milliseconds = time.time_ns() // 1_000_000
        self._high = (milliseconds & (2**48 - 1)) << 80 | 7 << 76 | random.getrandbits(12) << 64
        self._low = random.getrandbits(61)  # room for 2**61 ids below the 62-bit limit

    def next(self) -> str:
        self._low += 1
        # str(uuid.UUID(int=...)) spelt out: the same text at a fifth of the cost.
        digits = f"{self._high | 0b10 << 62 | self._low:032x}"
        return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"
