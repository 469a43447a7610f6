"""Ingestion: a batch of events stored set-wise, with its profiles, daily rows and campaigns
kept up to date in the same transaction."""

from __future__ import annotations

import hashlib
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, bindparam, case, delete, or_, select, text, update

from journeys.domain import (
    ANALYTICS_DUE_NOW,
    EventRecord,
    NewEvent,
    StoredEvent,
    SuppressedExternalIds,
)
from journeys.storage.bulk import BulkInsert
from journeys.storage.connection import StoreConnection
from journeys.storage.dialect import per_dialect
from journeys.storage.profiles import USER_KEY, new_profile, user_of
from journeys.storage.rows import event_record
from journeys.storage.schema import (
    EVENT_COLUMNS,
    events,
    message_ids,
    user_campaigns,
    user_daily_activity,
    users,
)
from journeys.storage.scope import ScopedStore, TenantScope
from journeys.storage.suppressions import suppressed_among


class Ingestion(ScopedStore):
    # Each statement is built once, beside its method: building one took longer than
    # executing it (measured), and only the values change between calls.

    async def record_events(self, drafts: Sequence[NewEvent], now: datetime) -> list[StoredEvent]:
        """Stores a batch set-wise: a few statements whatever its size. An event whose
        `messageId` is already stored (by this batch, an earlier one, or a concurrent one) is
        not stored again; its original comes back with `is_new=False`. The `message_ids` key
        decides, so there is no read-then-write race. A batch that would create a profile
        for a suppressed id raises `SuppressedExternalIds` having written nothing, so the
        caller may record the batch again without those ids."""
        user_ids, created = await self._ensure_users(drafts, now)
        rows = [
            {
                "id": str(uuid.uuid4()),
                **self._scope.columns(),
                "user_id": user_ids[draft.external_id],
                "category": draft.category.value,
                "event_type": draft.event_type,
                "points": draft.points,
                "occurred_at": draft.occurred_at,
                "message_id": draft.message_id,
                "metadata": draft.metadata,
                "created_at": now,
            }
            for draft in drafts
        ]
        await _lock_message_ids(self._connection, self._scope, drafts)
        claimed = await self._claim_message_ids(rows)
        new = [
            (draft, row)
            for draft, row in zip(drafts, rows, strict=True)
            if draft.message_id is None or row["id"] in claimed
        ]
        await self._insert_events([row for _, row in new])
        inserted = {row["id"] for _, row in new}
        await self._add_to_aggregates(new, now)
        await self._mark_due({str(row["user_id"]) for _, row in new})
        await self._drop_users_without_events(created - {row["user_id"] for _, row in new})
        originals = await self._events_by_message_id(
            [
                draft.message_id
                for draft, row in zip(drafts, rows, strict=True)
                if row["id"] not in inserted and draft.message_id is not None
            ]
        )
        stored: list[StoredEvent] = []
        for draft, row in zip(drafts, rows, strict=True):
            if row["id"] in inserted:
                stored.append(StoredEvent(self._event_record(draft, row), is_new=True))
            else:
                assert draft.message_id is not None, "only a messageId can collide"
                stored.append(StoredEvent(originals[draft.message_id], is_new=False))
        return stored

    # A parameter list, not a multi-row VALUES: SQLAlchemy batches it ("insertmanyvalues").
    _INSERT_EVENTS = events.insert()

    async def _insert_events(self, rows: list[dict[str, Any]]) -> None:
        """A batch's events in one driver call. On SQLite, SQLAlchemy's per-row parameter
        handling cost more than the inserts themselves, so rows go to sqlite3's executemany
        as stored values (in-process, 500-event batches: +9 %). On PostgreSQL COPY measured
        slower than asyncpg's executemany of the INSERT."""
        if not rows:
            return
        dialect = self._connection.dialect
        if dialect.name == "postgresql":
            await self._connection.execute(self._INSERT_EVENTS, rows)
            return
        insert = BulkInsert(events, EVENT_COLUMNS, dialect)
        stored_time = insert.processor("occurred_at")
        stored_json = insert.processor("metadata")
        created_at = stored_time(rows[0]["created_at"])
        tenant = self._scope.values()
        await insert.execute(
            self._connection,
            [
                (
                    row["id"],
                    *tenant,
                    row["user_id"],
                    row["category"],
                    row["event_type"],
                    row["points"],
                    stored_time(row["occurred_at"]),
                    row["message_id"],
                    stored_json(row["metadata"]),
                    created_at,
                )
                for row in rows
            ],
        )

    _CLAIM_MESSAGE_IDS = per_dialect(
        lambda insert: (
            insert(message_ids)
            .on_conflict_do_nothing(index_elements=list(message_ids.primary_key))
            .returning(message_ids.c.event_id)
        )
    )

    async def _claim_message_ids(self, rows: Sequence[dict[str, Any]]) -> set[str]:
        """Records the batch's messageIds not stored before, each for its first event in the
        batch; returns the ids of the events that claimed one. The primary key decides, so
        there is no read-then-write race."""
        keyed = [row for row in rows if row["message_id"] is not None]
        if not keyed:
            return set()
        result = await self._connection.execute(
            self._CLAIM_MESSAGE_IDS[self._connection.dialect.name],
            [
                {
                    **self._scope.columns(),
                    "message_id": row["message_id"],
                    "event_id": row["id"],
                    "user_id": row["user_id"],
                    "occurred_at": row["occurred_at"],
                }
                for row in keyed
            ],
        )
        return set(result.scalars())

    _ADD_NEW_USERS = per_dialect(
        lambda insert: (
            insert(users).on_conflict_do_nothing(index_elements=USER_KEY).returning(users.c.id)
        )
    )

    async def _ensure_users(
        self, drafts: Sequence[NewEvent], now: datetime
    ) -> tuple[dict[str, str], set[str]]:
        """Ids of the batch's users, creating missing profiles; also the ids created here.

        A new profile is created with its seen times inverted (first = the latest, last = the
        earliest of its drafts): which drafts are duplicates is only known once the messageIds
        are claimed, and `_add_to_aggregates` then moves both times to exactly those of the
        events stored, so a duplicate never moves them. A created profile left without a stored
        event is dropped, so nothing outside this transaction sees the placeholder."""
        seen: dict[str, tuple[datetime, datetime]] = {}
        for draft in drafts:
            first, last = seen.get(draft.external_id, (draft.occurred_at, draft.occurred_at))
            seen[draft.external_id] = (max(first, draft.occurred_at), min(last, draft.occurred_at))
        ids = await self._user_ids(list(seen))
        created: set[str] = set()
        # Most users of a batch exist already: only the others are offered for insertion,
        # and the conflict target still decides between concurrent first writes. A profile
        # another writer created meanwhile may be erased before it is looked up again: then
        # it is missing still, and created here.
        while missing := sorted(external_id for external_id in seen if external_id not in ids):
            created |= set(
                (
                    await self._connection.execute(
                        self._ADD_NEW_USERS[self._connection.dialect.name],
                        [new_profile(self._scope, eid, *seen[eid], now) for eid in missing],
                    )
                ).scalars()
            )
            ids |= await self._user_ids(missing)
        if not created:
            return ids, created
        refused = await suppressed_among(
            self._connection, self._scope, [eid for eid, uid in ids.items() if uid in created]
        )
        if refused:
            await self._drop_users_without_events(created)
            raise SuppressedExternalIds(frozenset(refused))
        return ids, created

    # PostgreSQL: FOR KEY SHARE, the lock the events' references to the profile would take
    # later anyway, taken as the profile is found. It blocks only an erasure (FOR UPDATE, then
    # DELETE), not other writers or the analytics job (their UPDATEs leave the key alone).
    # So an erasure of one of these users either waits for this transaction, and erases what
    # it stored; or went first, and the profile is not found here (a locking read skips a row
    # deleted meanwhile), so the batch creates it again or is refused as suppressed.
    # SQLite renders no lock: its writers never run at once.
    _USER_IDS = (
        select(users.c.external_id, users.c.id)
        .where(
            TenantScope.of(users),
            users.c.external_id.in_(bindparam("external_ids", expanding=True)),
        )
        .with_for_update(read=True, key_share=True)
    )

    async def _user_ids(self, external_ids: list[str]) -> dict[str, str]:
        rows = await self._connection.execute(
            self._USER_IDS, self._scope.binds(external_ids=external_ids)
        )
        return {row.external_id: row.id for row in rows}

    _AT = users.c.first_seen_at.type
    _ADD_TO_PROFILES = (
        update(users)
        .where(TenantScope.of(users), users.c.id == bindparam("user_id"))
        .values(
            total_events=users.c.total_events + bindparam("events"),
            total_plays=users.c.total_plays + bindparam("plays"),
            won_plays=users.c.won_plays + bindparam("won"),
            first_seen_at=case(
                (
                    bindparam("first", type_=_AT) < users.c.first_seen_at,
                    bindparam("first", type_=_AT),
                ),
                else_=users.c.first_seen_at,
            ),
            last_seen_at=case(
                (bindparam("last", type_=_AT) > users.c.last_seen_at, bindparam("last", type_=_AT)),
                else_=users.c.last_seen_at,
            ),
            updated_at=bindparam("now", type_=_AT),
        )
    )

    @staticmethod
    def _upsert_days(insert: Any) -> Any:
        upsert = insert(user_daily_activity)
        days = user_daily_activity.c
        return upsert.on_conflict_do_update(
            index_elements=list(user_daily_activity.primary_key),
            set_={
                "events": days.events + upsert.excluded.events,
                "plays": days.plays + upsert.excluded.plays,
                "points_earned": days.points_earned + upsert.excluded.points_earned,
            },
        )

    _ADD_TO_DAYS = per_dialect(_upsert_days)
    _ADD_CAMPAIGNS = per_dialect(lambda insert: insert(user_campaigns).on_conflict_do_nothing())

    async def _add_to_aggregates(
        self, new: Sequence[tuple[NewEvent, dict[str, Any]]], now: datetime
    ) -> None:
        if not new:
            return
        per_user: dict[str, _UserDelta] = defaultdict(_UserDelta)
        per_day: dict[tuple[str, date], _DayDelta] = defaultdict(_DayDelta)
        campaigns: set[tuple[str, str]] = set()
        for draft, row in new:
            user_id = row["user_id"]
            per_user[user_id].add(draft)
            per_day[(user_id, draft.occurred_at.date())].add(draft)
            if draft.campaign_id is not None:
                campaigns.add((user_id, draft.campaign_id))
        await self._connection.execute(
            self._ADD_TO_PROFILES,
            [
                {
                    **self._scope.binds(),
                    "user_id": user_id,
                    "now": now,
                    "events": d.events,
                    "plays": d.plays,
                    "won": d.won,
                    "first": d.first,
                    "last": d.last,
                }
                for user_id, d in sorted(per_user.items())
            ],
        )
        dialect = self._connection.dialect.name
        await self._connection.execute(
            self._ADD_TO_DAYS[dialect],
            [
                {
                    **self._scope.columns(),
                    "user_id": user_id,
                    "day": day,
                    "events": d.events,
                    "plays": d.plays,
                    "points_earned": d.points_earned,
                }
                for (user_id, day), d in sorted(per_day.items())
            ],
        )
        if campaigns:
            await self._connection.execute(
                self._ADD_CAMPAIGNS[dialect],
                [
                    {**self._scope.columns(), "user_id": u, "campaign_id": c}
                    for u, c in sorted(campaigns)
                ],
            )

    # Incremental analytics: a user with new events is due for the next run. Its own
    # statement, and a no-op write for a user already marked since the last run (most of a
    # busy user's batches). The profiles are locked already by the counters' update.
    _MARK_DUE = (
        update(users)
        .where(
            TenantScope.of(users),
            users.c.id.in_(bindparam("user_ids", expanding=True)),
            or_(
                users.c.analytics_due_at.is_(None),
                users.c.analytics_due_at > bindparam("due_now", type_=_AT),
            ),
        )
        .values(analytics_due_at=bindparam("due_now", type_=_AT))
    )

    async def _mark_due(self, user_ids: set[str]) -> None:
        if user_ids:
            await self._connection.execute(
                self._MARK_DUE,
                self._scope.binds(user_ids=sorted(user_ids), due_now=ANALYTICS_DUE_NOW),
            )

    _DROP_USERS = delete(users).where(
        TenantScope.of(users), users.c.id.in_(bindparam("user_ids", expanding=True))
    )

    async def _drop_users_without_events(self, user_ids: set[str]) -> None:
        """A batch whose only events for a new user were duplicates leaves no empty profile."""
        if user_ids:
            await self._connection.execute(
                self._DROP_USERS, self._scope.binds(user_ids=sorted(user_ids))
            )

    _ORIGINALS = (
        select(events, users.c.external_id)
        .join(
            message_ids,
            and_(
                TenantScope.same_tenant(message_ids, events),
                message_ids.c.user_id == events.c.user_id,
                message_ids.c.occurred_at == events.c.occurred_at,
                message_ids.c.event_id == events.c.id,
            ),
        )
        .join(users, user_of(events))
        .where(
            TenantScope.of(message_ids),
            TenantScope.of(events),
            message_ids.c.message_id.in_(bindparam("message_ids", expanding=True)),
        )
    )

    async def _events_by_message_id(self, message_ids_sent: list[str]) -> dict[str, EventRecord]:
        if not message_ids_sent:
            return {}
        rows = await self._connection.execute(
            self._ORIGINALS, self._scope.binds(message_ids=sorted(set(message_ids_sent)))
        )
        return {row.message_id: event_record(row) for row in rows}

    def _event_record(self, draft: NewEvent, row: dict[str, Any]) -> EventRecord:
        return EventRecord(
            id=row["id"],
            partner_id=self._scope.tenant.partner_id,
            external_id=draft.external_id,
            environment=self._scope.tenant.environment,
            category=draft.category.value,
            event_type=draft.event_type,
            points=draft.points,
            occurred_at=draft.occurred_at,
            message_id=draft.message_id or "",
            metadata=draft.metadata,
        )


@dataclass
class _UserDelta:
    events: int = 0
    plays: int = 0
    won: int = 0
    first: datetime | None = None
    last: datetime | None = None

    def add(self, event: NewEvent) -> None:
        self.events += 1
        self.plays += event.is_play
        self.won += event.is_won_play
        self.first = event.occurred_at if self.first is None else min(self.first, event.occurred_at)
        self.last = event.occurred_at if self.last is None else max(self.last, event.occurred_at)


@dataclass
class _DayDelta:
    events: int = 0
    plays: int = 0
    points_earned: int = 0

    def add(self, event: NewEvent) -> None:
        self.events += 1
        self.plays += event.is_play
        self.points_earned += max(event.points, 0)


async def _lock_message_ids(
    connection: StoreConnection, scope: TenantScope, drafts: Sequence[NewEvent]
) -> None:
    """PostgreSQL: takes a transaction lock per messageId of the batch, in one global order.

    Concurrent writers lock the rows they share in one order (users by external id, then
    messageIds, then profiles by id, then days), so they queue rather than deadlock. Unique
    index waits follow the rows' order in the batch, so two batches sharing messageIds in
    different orders would deadlock; these locks make the second wait for the first instead.
    SQLite needs none of this: its writers never run at once."""
    if connection.dialect.name != "postgresql":
        return
    keys = sorted(
        {
            int.from_bytes(
                hashlib.blake2b(
                    scope.key(draft.message_id).encode(),
                    digest_size=8,
                ).digest(),
                "big",
                signed=True,
            )
            for draft in drafts
            if draft.message_id is not None
        }
    )
    if len(keys) > 1:  # one lock is one wait: no order to enforce
        await connection.execute(_LOCK_KEYS, {"keys": keys})


_LOCK_KEYS = text(
    "SELECT pg_advisory_xact_lock(key) FROM unnest(CAST(:keys AS bigint[])) AS key ORDER BY key"
)
