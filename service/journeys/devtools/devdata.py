"""Generated populations for benchmarks and demos: `journeys dev seed-data`.

Users are drawn from archetypes (new, casual, regular, power, whale, at-risk, churned, gone)
so every segment and offer rule has work to do. Events go through the same ingestion path
as the API's, so the database looks exactly as if partners had sent them.

`bulk=True` (`--bulk`) is the fast path for benchmark populations: the same generated events
are loaded in bulk, then the profile counters, `user_daily_activity` and `user_campaigns` are
built from them by a few set-based statements (storage/seeding.py). It produces the same
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

from journeys.domain import Category, Environment, NewEvent, Tenant, utc_now
from journeys.storage.database import Database
from journeys.storage.seeding import BulkSeeding, Row

BATCH = 2000
#: Rows per executemany (and per transaction) of the bulk path.
BULK_BATCH = 20_000


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
    seeding = BulkSeeding(database.engine, tenant, now)
    existing = await seeding.count_users()
    if existing:
        raise TenantNotEmpty(
            f"the bulk path seeds only an empty tenant; this one has {existing} users"
        )
    total = sum(count for _, count in planned)
    user_row, event_row = seeding.user_row, seeding.event_row
    ids = _SequentialIds()
    user_rows: list[Row] = []
    event_rows: list[Row] = []
    written = 0
    # PostgreSQL loads a batch in its own process while the next one is generated here (the
    # loop yields every few users so the COPY's replies get read). aiosqlite's thread needs the
    # GIL for every row it binds, so on SQLite generating and inserting take turns.
    overlap = database.dialect == "postgresql"
    writing: asyncio.Task[None] | None = None

    async def write(user_batch: list[Row], event_batch: list[Row]) -> None:
        nonlocal written
        await seeding.write(user_batch, event_batch)
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
        user_rows.append(user_row(user_id, external_id))
        for event in _events(external_id, archetype, count, now, rng):
            event_rows.append(event_row(ids.next(), user_id, event))
        if len(event_rows) >= BULK_BATCH:
            await flush()
        elif overlap and n % 64 == 0:
            await asyncio.sleep(0)
    await flush()
    if writing is not None:
        await writing
    await seeding.build_aggregates()


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
