"""Bulk seeding of an empty tenant (`journeys dev seed-data --bulk`): generated profiles and
events loaded by the driver's bulk path, then the profile counters, `user_daily_activity` and
`user_campaigns` built from those events by a few set-based statements, following the same
rules as `Ingestion.record_events` (see `NewEvent.is_won_play`, `campaign_id`).

Seeding is the database's only writer, so it runs on the engine's own transactions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from journeys.domain import NewEvent, Tenant
from journeys.storage.bulk import BulkInsert
from journeys.storage.schema import EVENT_COLUMNS, events, users
from journeys.storage.scope import COLUMNS, TenantScope

#: SQLite's page cache while loading: the indexes outgrow its 2 MB default.
CACHE_KIB = 256 * 1024
_USER_COLUMNS = (
    "id",
    "external_id",
    *COLUMNS,
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
_COUNT_USERS = select(func.count()).select_from(users).where(TenantScope.of(users))

Row = tuple[object, ...]


class BulkSeeding:
    """Rows of one tenant as stored values, and the statements that load them."""

    def __init__(self, engine: AsyncEngine, tenant: Tenant, now: datetime) -> None:
        self._engine = engine
        self._scope = TenantScope(tenant)
        self._users = BulkInsert(users, _USER_COLUMNS, engine.dialect)
        self._events = BulkInsert(events, EVENT_COLUMNS, engine.dialect)
        self._stored_time = self._events.processor("occurred_at")
        self._to_json = self._events.processor("metadata")
        # Generated metadata takes a few dozen distinct values: each is serialised once.
        self._json_of: dict[tuple[tuple[str, object], ...], object] = {}
        self._stored_now = self._stored_time(now)
        # Placeholders for the profile times: `build_aggregates` sets the real ones.
        self._user_constants = (
            *self._scope.values(),
            *[""] * 6,
            *[self._users.processor("tags")({})] * 2,
            *[self._stored_now] * 4,
        )
        self._analysed = False

    async def count_users(self) -> int:
        async with self._engine.begin() as connection:
            return int(await connection.scalar(_COUNT_USERS, self._scope.binds()) or 0)

    def user_row(self, user_id: str, external_id: str) -> Row:
        return (user_id, external_id, *self._user_constants)

    def event_row(self, event_id: str, user_id: str, event: NewEvent) -> Row:
        return (
            event_id,
            *self._scope.values(),
            user_id,
            event.category.value,
            event.event_type,
            event.points,
            self._stored_time(event.occurred_at),
            None,
            self._stored_json(event.metadata),
            self._stored_now,
        )

    def _stored_json(self, metadata: dict[str, object]) -> object:
        key = tuple(metadata.items())
        found = self._json_of.get(key)
        if found is None:
            found = self._json_of[key] = self._to_json(metadata)
        return found

    async def write(self, user_rows: list[Row], event_rows: list[Row]) -> None:
        """One batch in one transaction; a user's events come in its batch."""
        dialect = self._engine.dialect.name
        async with self._engine.begin() as connection:
            if dialect == "sqlite":
                await connection.exec_driver_sql(f"PRAGMA cache_size = -{CACHE_KIB}")
            # Profiles first: events reference them.
            await self._users.execute(connection, user_rows)
            if dialect == "postgresql" and not self._analysed:
                # Planned on an empty `users`, the reference checks of every event and per-day
                # row would pick the (partner, environment, external id) index and walk the
                # whole tenant for each row.
                await connection.exec_driver_sql("ANALYZE users")
                self._analysed = True
            await self._events.execute(connection, event_rows)

    async def build_aggregates(self) -> None:
        dialect = self._engine.dialect.name
        async with self._engine.begin() as connection:
            for statement in _aggregate_statements(dialect):
                await connection.execute(text(statement), self._scope.binds())
            if dialect == "postgresql":
                # What autovacuum does soon after a bulk load anyway, so the service's first
                # queries are planned on the loaded tables. SQLite keeps no statistics unless
                # asked (the service never runs ANALYZE there).
                await connection.exec_driver_sql("ANALYZE")


def _aggregate_statements(dialect: str) -> list[str]:
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
    tenant = ", ".join(COLUMNS)
    tenant_events = f"FROM events WHERE {TenantScope.sql('events')}"
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
            WHERE {TenantScope.sql("users")} AND users.id = agg.user_id""",
        f"""INSERT INTO user_daily_activity
                ({tenant}, user_id, day, events, plays, points_earned)
            SELECT {tenant}, user_id, {day}, count(*), sum({play}),
                   sum(CASE WHEN points > 0 THEN points ELSE 0 END)
            {tenant_events}
            GROUP BY {tenant}, user_id, {day}
            -- In key order: the primary key index is appended to, not written all over.
            ORDER BY {tenant}, user_id, {day}""",
        f"""INSERT INTO user_campaigns ({tenant}, user_id, campaign_id)
            SELECT DISTINCT {tenant}, user_id, {campaign}
            {tenant_events} AND category = 'CAMPAIGN' AND {is_text_campaign}""",
    ]
