"""The request path's reads: the presented key joined into the read of what the call asks
for, run on the raw driver outside any SQLAlchemy transaction (storage/driver.py).

One statement reads the key, the user and the user's rows (offers) in one round trip and one
snapshot: each engine runs a lone statement atomically, so no BEGIN or COMMIT is needed. A
read of several statements (the profile: user, activity, journey) runs them in one read
transaction on the raw connection; on PostgreSQL as REPEATABLE READ, like every other read.

The key is read on every call, so a revocation binds on the next request of every process.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import (
    ColumnClause,
    ColumnElement,
    String,
    Table,
    and_,
    bindparam,
    literal_column,
    select,
    true,
)
from sqlalchemy.engine import make_url

from journeys.domain import (
    Environment,
    JsonObject,
    OfferRecord,
    PresentedKey,
    StageTransitionView,
    Tenant,
    UserRecord,
)
from journeys.rules import Activity
from journeys.storage import activity, key_store, segments
from journeys.storage.driver import AsyncpgDriver, Codec, Driver, Row, SqliteDriver, Statement
from journeys.storage.schema import api_keys, catalogue_overrides, offers, users
from journeys.storage.scope import TenantScope
from journeys.storage.write_lock import SQLITE_BUSY_TIMEOUT_MS


@dataclass(frozen=True, slots=True)
class OffersRead:
    key: PresentedKey | None
    #: False when the key's tenant has no such user.
    user_found: bool
    offers: list[OfferRecord]
    catalogue_override: JsonObject


@dataclass(frozen=True, slots=True)
class ProfileRead:
    key: PresentedKey | None
    user: UserRecord | None
    activity: Activity | None
    journey: tuple[StageTransitionView, ...]


_KEY_COLUMNS = (
    api_keys.c.partner_id,
    api_keys.c.environment,
    api_keys.c.kind,
    api_keys.c.revoked_at,
)
_BY_DIGEST = api_keys.c.key_digest == bindparam("digest", type_=String())
_USER_OF_KEY = and_(
    TenantScope.same_tenant(users, api_keys),
    users.c.external_id == bindparam("external_id", type_=String()),
)
_OFFER_COLUMNS = (
    offers.c.id,
    offers.c.offer_type,
    offers.c.game_type,
    offers.c.title,
    offers.c.description,
    offers.c.points_value,
    offers.c.expires_at,
    offers.c.metadata,
)
# The partial index of active offers is used only when the statement names the status as a
# literal; bound, SQLite re-prepares the statement on every call (measured: 46 µs vs 10 µs).
_ACTIVE: ColumnClause[str] = literal_column("'active'")

#: GetOffers' read: the key, the user of its tenant, their active offers, the catalogue.
OFFERS = Statement(
    select(*_KEY_COLUMNS, users.c.id, *_OFFER_COLUMNS, catalogue_overrides.c.overrides)
    .select_from(
        api_keys.outerjoin(users, _USER_OF_KEY)
        .outerjoin(
            offers,
            and_(
                TenantScope.same_tenant(offers, users),
                offers.c.user_id == users.c.id,
                offers.c.status == _ACTIVE,
                offers.c.expires_at > bindparam("now"),
            ),
        )
        .outerjoin(catalogue_overrides, TenantScope.same_tenant(catalogue_overrides, api_keys))
    )
    .where(_BY_DIGEST)
    # Stable: offers of one priority stay in creation order.
    .order_by(offers.c.created_at, offers.c.id)
)

_USER_COLUMNS = (
    users.c.id,
    users.c.partner_id,
    users.c.environment,
    users.c.external_id,
    users.c.display_name,
    users.c.email,
    users.c.phone,
    users.c.country,
    users.c.device,
    users.c.source,
    users.c.first_seen_at,
    users.c.last_seen_at,
    users.c.tags,
    users.c.metadata,
    users.c.total_events,
)
_PROFILE = Statement(
    select(*_KEY_COLUMNS, *_USER_COLUMNS)
    .select_from(api_keys.outerjoin(users, _USER_OF_KEY))
    .where(_BY_DIGEST)
)
_ACTIVITY = Statement(activity.ONE_USER)
_JOURNEY = Statement(segments.JOURNEY)


def _profile_in_one() -> Statement:
    """PostgreSQL: the profile, its activity and journey in one statement, each read
    correlated to the user the key's tenant has (LATERAL, which SQLite lacks): one row per
    transition of the journey, or one with none."""

    def of_user(table: Table) -> ColumnElement[bool]:
        return TenantScope.same_tenant(table, users)

    counters, reads = activity.one_user(users.c.id, of_user, lateral=True)
    recent = segments.journey_of(users.c.id, of_user).lateral()
    joined: Any = api_keys.outerjoin(users, _USER_OF_KEY)
    for read in (*reads, recent):
        joined = joined.outerjoin(read, true())
    return Statement(
        select(
            *_KEY_COLUMNS,
            *_USER_COLUMNS,
            *counters,
            recent.c.from_stage,
            recent.c.to_stage,
            recent.c.at,
        )
        .select_from(joined)
        .where(_BY_DIGEST)
        .order_by(recent.c.at.desc(), recent.c.seq.desc())
    )


_PROFILE_IN_ONE = _profile_in_one()
#: Where the columns of `_PROFILE_IN_ONE` start: the user's, the counters, the journey's.
_USER_AT = len(_KEY_COLUMNS)
_COUNTERS_AT = _USER_AT + len(_USER_COLUMNS)
_JOURNEY_AT = _COUNTERS_AT + len(activity.ONE_USER.selected_columns)


class Lookups:
    """The process's raw reader: one `sqlite3` connection (reads on the event loop's thread,
    as every SQLite transaction here) or a pool of asyncpg connections sized to the
    process's concurrency."""

    def __init__(self, url: str, pool_size: int = 10) -> None:
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        self.codec = Codec(self.dialect)
        self._url = parsed
        self._pool_size = pool_size
        self._sqlite: SqliteDriver | None = None
        self._pool: Any = None
        self._opening: asyncio.Future[Any] | None = None

    async def offers(self, digest: str, external_id: str, now: datetime) -> OffersRead:
        """The key and, if the key's tenant has that user, their active offers."""
        async with self._driver() as driver:
            rows = await driver.fetch(
                OFFERS,
                {
                    "digest": digest,
                    "external_id": _storable(external_id),
                    "now": self.codec.time_in(now),
                },
            )
        if not rows:
            return OffersRead(None, False, [], {})
        first = rows[0]
        key = key_store.presented(first)
        if first[_USER_AT] is None:
            return OffersRead(key, False, [], {})
        time_out, json_out = self.codec.time_out, self.codec.json_out
        found = [
            OfferRecord(
                id=row[5],
                external_id=external_id,
                offer_type=row[6],
                game_type=row[7],
                title=row[8],
                description=row[9],
                points_value=row[10],
                status="active",
                expires_at=time_out(row[11]),
                claimed_at=None,
                metadata=json_out(row[12]),
            )
            for row in rows
            if row[5] is not None
        ]
        override = first[13]
        return OffersRead(key, True, found, json_out(override) if override else {})

    async def profile(self, digest: str, external_id: str, as_of: datetime) -> ProfileRead:
        """The key and, if the key's tenant has that user, the profile, its activity as of
        `as_of` and its latest stage transitions, from one snapshot."""
        if self.dialect != "sqlite":
            return await self._profile_in_one(digest, external_id, as_of)
        codec = self.codec
        async with self._driver(transaction=True) as driver:
            rows = await driver.fetch(
                _PROFILE, {"digest": digest, "external_id": _storable(external_id)}
            )
            key, user = _key_and_user(rows, codec)
            if key is None or user is None:
                return ProfileRead(key, None, None, ())
            scope = TenantScope(Tenant(key.partner_id, key.environment)).binds(user_id=user.id)
            (counts,) = await driver.fetch(
                _ACTIVITY, {**scope, **_bounds(activity.bounds(as_of), codec)}
            )
            journey = await driver.fetch(_JOURNEY, scope)
        return ProfileRead(
            key, user, activity.one_user_activity(user, counts), self._journey(journey)
        )

    async def _profile_in_one(self, digest: str, external_id: str, as_of: datetime) -> ProfileRead:
        async with self._driver() as driver:
            rows = await driver.fetch(
                _PROFILE_IN_ONE,
                {
                    "digest": digest,
                    "external_id": _storable(external_id),
                    **_bounds(activity.bounds(as_of), self.codec),
                },
            )
        key, user = _key_and_user(rows, self.codec)
        if user is None:
            return ProfileRead(key, None, None, ())
        counts = rows[0][_COUNTERS_AT:_JOURNEY_AT]
        journey = [found[_JOURNEY_AT:] for found in rows if found[_JOURNEY_AT] is not None]
        return ProfileRead(
            key, user, activity.one_user_activity(user, counts), self._journey(journey)
        )

    def _journey(self, rows: Sequence[Row]) -> tuple[StageTransitionView, ...]:
        return tuple(
            StageTransitionView(before, after, self.codec.time_out(at))
            for before, after, at, *_ in rows
        )

    @contextlib.asynccontextmanager
    async def _driver(self, *, transaction: bool = False) -> AsyncIterator[Driver]:
        if self.dialect == "sqlite":
            driver = self._sqlite or self._open_sqlite()
            if not transaction:
                yield driver
                return
            driver.connection.execute("BEGIN")
            try:
                yield driver
            finally:
                driver.connection.execute("COMMIT")
            return
        if self._pool is None:
            # One opening for every call that finds the pool missing: each call that awaited
            # its own opened a pool of its own (measured: 8 connections for a share of 3).
            opening = self._opening
            if opening is None:
                opening = self._opening = asyncio.ensure_future(self._open_pool())
            try:
                await asyncio.shield(opening)
            except BaseException:
                if opening.done() and not opening.cancelled() and opening.exception():
                    self._opening = None  # the next call tries again (a database not up yet)
                raise
        pool = self._pool
        async with pool.acquire() as connection:
            if not transaction:
                yield AsyncpgDriver(connection)
                return
            async with connection.transaction(isolation="repeatable_read", readonly=True):
                yield AsyncpgDriver(connection)

    def _open_sqlite(self) -> SqliteDriver:
        # Autocommit (isolation_level None): a lone statement is its own read transaction.
        connection = sqlite3.connect(
            self._url.database or ":memory:", isolation_level=None, check_same_thread=False
        )
        connection.execute("PRAGMA query_only=ON")
        connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        self._sqlite = SqliteDriver(connection)
        return self._sqlite

    async def _open_pool(self) -> Any:
        url = self._url
        self._pool = await asyncpg.create_pool(
            host=url.host,
            port=url.port,
            user=url.username,
            password=url.password,
            database=url.database,
            min_size=1,
            max_size=self._pool_size,
            init=_text_json,
            server_settings={"plan_cache_mode": "force_generic_plan"},
        )
        return self._pool

    async def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.connection.close()
            self._sqlite = None
        if self._opening is not None:
            await asyncio.gather(self._opening, return_exceptions=True)
            self._opening = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


async def _text_json(connection: Any) -> None:
    # JSON columns come out as text on every connection of ours (as SQLAlchemy's codecs
    # leave them), so one `Codec.json_out` serves every driver.
    for name in ("json", "jsonb"):
        await connection.set_type_codec(
            name, encoder=str, decoder=str, schema="pg_catalog", format="text"
        )


def _key_and_user(
    rows: Sequence[Row], codec: Codec
) -> tuple[PresentedKey | None, UserRecord | None]:
    """The key and the user (of the key's tenant) a profile read's first row holds."""
    if not rows:
        return None, None
    row = rows[0]
    key = key_store.presented(row)
    return key, None if row[_USER_AT] is None else _user(row[_USER_AT:], codec)


def _user(row: Row, codec: Codec) -> UserRecord:
    return UserRecord(
        id=row[0],
        partner_id=row[1],
        environment=Environment(row[2]),
        external_id=row[3],
        display_name=row[4],
        email=row[5],
        phone=row[6],
        country=row[7],
        device=row[8],
        source=row[9],
        first_seen_at=codec.time_out(row[10]),
        last_seen_at=codec.time_out(row[11]),
        tags=codec.json_out(row[12]),
        metadata=codec.json_out(row[13]),
        total_events=row[14],
    )


def _bounds(values: dict[str, Any], codec: Codec) -> dict[str, Any]:
    return {
        name: (
            codec.time_in(value)
            if isinstance(value, datetime)
            else codec.date_in(value)
            if isinstance(value, date)
            else value
        )
        for name, value in values.items()
    }


def _storable(external_id: str) -> str | None:
    # Stored ids never hold NUL (PostgreSQL text cannot): such an id matches no user, as
    # NULL matches none.
    return None if "\x00" in external_id else external_id
