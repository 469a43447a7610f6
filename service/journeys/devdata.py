"""Generated populations for benchmarks and demos: `journeys dev seed-data`.

Users are drawn from archetypes (new, casual, regular, power, whale, at-risk, churned, gone)
so every segment and offer rule has work to do. Events go through the same ingestion path
as the API's, so the database looks exactly as if partners had sent them.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from journeys.domain import Category, Environment, NewEvent, Tenant, utc_now
from journeys.storage.database import Database

BATCH = 2000


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
    weights = [w for _, w in _CATEGORIES]
    for n in range(count):
        moment = last if n == 0 else first + (last - first) * rng.random()
        category = rng.choices(categories, weights)[0]
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
) -> Tenant:
    rng = random.Random(random_seed)
    now = utc_now()
    async with database.transaction(write=True) as tx:
        tenant = Tenant(await tx.keys.ensure_partner(partner, now), environment)
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
