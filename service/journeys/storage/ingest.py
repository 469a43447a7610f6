"""Ingestion: a batch of events stored set-wise, with its profiles, daily rows and campaigns
kept up to date in the same transaction.

Every statement runs on the raw driver (storage/driver.py): SQLAlchemy's per-row parameter
handling cost as much as the database itself here (measured: 10.5k events/s through it, 22.6k
with the same statements on sqlite3's executemany). Rows are dicts of driver values, made once
per event; the statements are built with Core and compiled once per dialect."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Table, and_, bindparam, case, delete, select, text, update

from journeys.domain import (
    ANALYTICS_DUE_NOW,
    EventRecord,
    NewEvent,
    StoredEvent,
    SuppressedExternalIds,
)
from journeys.storage.driver import (
    Codec,
    Driver,
    Statement,
    driver_of,
    one_of,
    per_dialect_statement,
)
from journeys.storage.profiles import PROFILE_FIELDS, USER_KEY, new_profile, user_of
from journeys.storage.schema import (
    EVENT_COLUMNS,
    events,
    message_ids,
    user_campaigns,
    user_daily_activity,
    users,
)
from journeys.storage.scope import COLUMNS as TENANT_COLUMNS
from journeys.storage.scope import ScopedStore, TenantScope
from journeys.storage.suppressions import suppressed_among


def _inserting(columns: Sequence[str]) -> dict[str, Any]:
    """An INSERT's values, each bound by its column's name (the rows' keys)."""
    return {column: bindparam(column) for column in columns}


def _all_columns(table: Table) -> list[str]:
    return [column.name for column in table.columns]


#: The columns of `new_profile`'s row.
_PROFILE_COLUMNS = (
    "id",
    *TENANT_COLUMNS,
    "external_id",
    *PROFILE_FIELDS,
    "tags",
    "metadata",
    "first_seen_at",
    "last_seen_at",
    "created_at",
    "updated_at",
)


_AT = users.c.first_seen_at.type


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
        db = await driver_of(self._connection)
        codec = db.codec
        tenant = self._scope.columns()
        user_ids, created = await self._ensure_users(db, drafts, now)
        created_at = codec.time_in(now)
        rows = [
            {
                "id": str(uuid.uuid4()),
                **tenant,
                "user_id": user_ids[draft.external_id],
                "category": draft.category.value,
                "event_type": draft.event_type,
                "points": draft.points,
                "occurred_at": codec.time_in(draft.occurred_at),
                "message_id": draft.message_id,
                "metadata": codec.json_in(draft.metadata),
                "created_at": created_at,
            }
            for draft in drafts
        ]
        await self._lock_message_ids(db, drafts)
        claimed = await self._claim_message_ids(db, rows)
        new = [
            (draft, row)
            for draft, row in zip(drafts, rows, strict=True)
            if draft.message_id is None or row["id"] in claimed
        ]
        if new:
            await db.executemany(self._INSERT_EVENTS, [row for _, row in new])
            await self._add_to_aggregates(db, new, now)
        if created:
            await self._drop_users(db, created - {row["user_id"] for _, row in new})
        if len(new) == len(drafts):
            return [
                StoredEvent(self._event_record(draft, row["id"]), is_new=True) for draft, row in new
            ]
        inserted = {row["id"] for _, row in new}
        originals = await self._events_by_message_id(
            db,
            [
                draft.message_id
                for draft, row in zip(drafts, rows, strict=True)
                if row["id"] not in inserted and draft.message_id is not None
            ],
        )
        stored: list[StoredEvent] = []
        for draft, row in zip(drafts, rows, strict=True):
            if row["id"] in inserted:
                stored.append(StoredEvent(self._event_record(draft, row["id"]), is_new=True))
            else:
                assert draft.message_id is not None, "only a messageId can collide"
                stored.append(StoredEvent(originals[draft.message_id], is_new=False))
        return stored

    # The statements of one batch, in the order they run (and concurrent writers lock rows):
    # users by external id, messageIds, events, profiles by id, days, campaigns.

    _USER_IDS = Statement(
        # PostgreSQL: FOR KEY SHARE, the lock the events' references to the profile would
        # take later anyway, taken as the profile is found. It blocks only an erasure (FOR
        # UPDATE, then DELETE), not other writers or the analytics job (their UPDATEs leave
        # the key alone). So an erasure of one of these users either waits for this
        # transaction, and erases what it stored; or went first, and the profile is not found
        # here (a locking read skips a row deleted meanwhile), so the batch creates it again
        # or is refused as suppressed. SQLite renders no lock: its writers never run at once.
        select(users.c.external_id, users.c.id)
        .where(TenantScope.of(users), one_of(users.c.external_id, "external_ids"))
        .with_for_update(read=True, key_share=True)
    )

    async def _user_ids(self, db: Driver, external_ids: list[str]) -> dict[str, str]:
        rows = await db.fetch(
            self._USER_IDS, self._scope.binds(external_ids=db.codec.list_in(external_ids))
        )
        return dict(rows)

    _ADD_NEW_USERS = per_dialect_statement(
        lambda insert: (
            insert(users)
            .values(_inserting(_PROFILE_COLUMNS))
            .on_conflict_do_nothing(index_elements=USER_KEY)
            .returning(users.c.id)
        )
    )

    async def _ensure_users(
        self, db: Driver, drafts: Sequence[NewEvent], now: datetime
    ) -> tuple[dict[str, str], set[str]]:
        """Ids of the batch's users, creating missing profiles; also the ids created here.

        A new profile is created with its seen times inverted (first = the latest, last = the
        earliest of its drafts): which drafts are duplicates is only known once the messageIds
        are claimed, and `_add_to_aggregates` then moves both times to exactly those of the
        events stored, so a duplicate never moves them. A created profile left without a stored
        event is dropped, so nothing outside this transaction sees the placeholder."""
        seen: dict[str, tuple[datetime, datetime]] = {}
        for draft in drafts:
            at = draft.occurred_at
            found = seen.get(draft.external_id)
            seen[draft.external_id] = (
                (at, at) if found is None else (max(found[0], at), min(found[1], at))
            )
        ids = await self._user_ids(db, sorted(seen))
        created: set[str] = set()
        # Most users of a batch exist already: only the others are offered for insertion,
        # and the conflict target still decides between concurrent first writes. A profile
        # another writer created meanwhile may be erased before it is looked up again: then
        # it is missing still, and created here.
        while missing := sorted(external_id for external_id in seen if external_id not in ids):
            profiles = [
                _profile_row(db.codec, new_profile(self._scope, eid, *seen[eid], now))
                for eid in missing
            ]
            added = await db.fetchmany(self._ADD_NEW_USERS, profiles)
            created |= {user_id for (user_id,) in added}
            ids |= await self._user_ids(db, missing)
        if not created:
            return ids, created
        refused = await suppressed_among(
            db, self._scope, [eid for eid, uid in ids.items() if uid in created]
        )
        if refused:
            await self._drop_users(db, created)
            raise SuppressedExternalIds(frozenset(refused))
        return ids, created

    # PostgreSQL: a transaction lock per messageId of the batch, in one global order, the
    # keys hashed by the database (set-wise). Concurrent writers lock the rows they share in
    # one order (users by external id, then messageIds, then profiles by id, then days), so
    # they queue rather than deadlock. Unique index waits follow the rows' order in the batch,
    # so two batches sharing messageIds in different orders would deadlock; these locks make
    # the second wait for the first instead. SQLite needs none of this: its writers never run
    # at once.
    _LOCK_KEYS = Statement(
        text(
            "SELECT pg_advisory_xact_lock(key) FROM ("
            "SELECT DISTINCT hashtextextended("
            "CAST(:tenant_partner_id AS TEXT) || '/' || CAST(:tenant_environment AS TEXT) "
            "|| '/' || message_id, 0) AS key "
            "FROM unnest(CAST(:message_ids AS VARCHAR[])) AS message_id) AS keys ORDER BY key"
        )
    )

    async def _lock_message_ids(self, db: Driver, drafts: Sequence[NewEvent]) -> None:
        if db.codec.sqlite:
            return
        keyed = {draft.message_id for draft in drafts if draft.message_id is not None}
        if len(keyed) > 1:  # one lock is one wait: no order to enforce
            await db.fetch(self._LOCK_KEYS, self._scope.binds(message_ids=list(keyed)))

    _CLAIM_MESSAGE_IDS = per_dialect_statement(
        lambda insert: (
            insert(message_ids)
            .values(
                **_inserting(("partner_id", "environment", "message_id", "occurred_at")),
                event_id=bindparam("id"),
                user_id=bindparam("user_id"),
            )
            .on_conflict_do_nothing(index_elements=list(message_ids.primary_key))
            .returning(message_ids.c.event_id)
        )
    )

    async def _claim_message_ids(self, db: Driver, rows: Sequence[dict[str, Any]]) -> set[str]:
        """Records the batch's messageIds not stored before, each for its first event in the
        batch (the executions run in the batch's order); returns the ids of the events that
        claimed one. The primary key decides, so there is no read-then-write race."""
        keyed = [row for row in rows if row["message_id"] is not None]
        if not keyed:
            return set()
        claimed = await db.fetchmany(self._CLAIM_MESSAGE_IDS, keyed)
        return {event_id for (event_id,) in claimed}

    # A parameter list: sqlite3's executemany, asyncpg's pipelined executemany (COPY measured
    # slower than the latter on PostgreSQL).
    _INSERT_EVENTS = Statement(events.insert().values(_inserting(EVENT_COLUMNS)))

    _ADD_TO_PROFILES = Statement(
        update(users)
        .where(TenantScope.of(users), users.c.id == bindparam("user_id"))
        .values(
            total_events=users.c.total_events + bindparam("events"),
            total_plays=users.c.total_plays + bindparam("plays"),
            won_plays=users.c.won_plays + bindparam("won"),
            # Both seen times only ever move outwards.
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
            # New events make the user due for the next analytics run (rules/due.py), in
            # the write that adds them: no statement of its own.
            analytics_due_at=bindparam("due_now", type_=_AT),
        )
    )

    @staticmethod
    def _upsert_days(insert: Any) -> Any:
        upsert = insert(user_daily_activity).values(_inserting(_all_columns(user_daily_activity)))
        days = user_daily_activity.c
        return upsert.on_conflict_do_update(
            index_elements=list(user_daily_activity.primary_key),
            set_={
                "events": days.events + upsert.excluded.events,
                "plays": days.plays + upsert.excluded.plays,
                "points_earned": days.points_earned + upsert.excluded.points_earned,
            },
        )

    _ADD_TO_DAYS = per_dialect_statement(_upsert_days)
    _ADD_CAMPAIGNS = per_dialect_statement(
        lambda insert: (
            insert(user_campaigns)
            .values(_inserting(_all_columns(user_campaigns)))
            .on_conflict_do_nothing()
        )
    )

    async def _add_to_aggregates(
        self, db: Driver, new: Sequence[tuple[NewEvent, dict[str, Any]]], now: datetime
    ) -> None:
        """The stored events added to their profiles' counters and seen times, their users'
        days and campaigns: one row per profile, per (user, UTC day), per campaign joined."""
        # [events, plays, won, first, last] per user; [events, plays, points] per day.
        per_user: dict[str, list[Any]] = {}
        per_day: dict[tuple[str, date], list[int]] = {}
        campaigns: set[tuple[str, str]] = set()
        for draft, row in new:
            user_id = row["user_id"]
            at = draft.occurred_at
            play = draft.is_play
            user = per_user.get(user_id)
            if user is None:
                per_user[user_id] = [1, int(play), int(draft.is_won_play), at, at]
            else:
                user[0] += 1
                user[1] += play
                user[2] += draft.is_won_play
                user[3] = min(user[3], at)
                user[4] = max(user[4], at)
            key = (user_id, at.astimezone(UTC).date())
            day = per_day.get(key)
            if day is None:
                per_day[key] = [1, int(play), max(draft.points, 0)]
            else:
                day[0] += 1
                day[1] += play
                day[2] += max(draft.points, 0)
            if (campaign_id := draft.campaign_id) is not None:
                campaigns.add((user_id, campaign_id))
        codec = db.codec
        scope = self._scope
        updated_at, due_now = codec.time_in(now), codec.time_in(ANALYTICS_DUE_NOW)
        await db.executemany(
            self._ADD_TO_PROFILES,
            [
                scope.binds(
                    user_id=user_id,
                    now=updated_at,
                    due_now=due_now,
                    events=events_,
                    plays=plays,
                    won=won,
                    first=codec.time_in(first),
                    last=codec.time_in(last),
                )
                for user_id, (events_, plays, won, first, last) in sorted(per_user.items())
            ],
        )
        tenant = scope.columns()
        await db.executemany(
            self._ADD_TO_DAYS,
            [
                {
                    **tenant,
                    "user_id": user_id,
                    "day": codec.date_in(day),
                    "events": events_,
                    "plays": plays,
                    "points_earned": points,
                }
                for (user_id, day), (events_, plays, points) in sorted(per_day.items())
            ],
        )
        if campaigns:
            await db.executemany(
                self._ADD_CAMPAIGNS,
                [{**tenant, "user_id": u, "campaign_id": c} for u, c in sorted(campaigns)],
            )

    _DROP_USERS = Statement(
        delete(users).where(TenantScope.of(users), one_of(users.c.id, "user_ids"))
    )

    async def _drop_users(self, db: Driver, user_ids: set[str]) -> None:
        """Profiles created by this batch and left without an event (its only events for a
        new user were duplicates, or the batch is refused) go again."""
        if user_ids:
            await db.execute(
                self._DROP_USERS, self._scope.binds(user_ids=db.codec.list_in(sorted(user_ids)))
            )

    _ORIGINALS = Statement(
        select(
            message_ids.c.message_id,
            events.c.id,
            users.c.external_id,
            events.c.category,
            events.c.event_type,
            events.c.points,
            events.c.occurred_at,
            events.c.metadata,
        )
        .select_from(message_ids)
        .join(
            events,
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
            one_of(message_ids.c.message_id, "message_ids"),
        )
    )

    async def _events_by_message_id(
        self, db: Driver, message_ids_sent: list[str]
    ) -> dict[str, EventRecord]:
        if not message_ids_sent:
            return {}
        codec = db.codec
        rows = await db.fetch(
            self._ORIGINALS,
            self._scope.binds(message_ids=codec.list_in(sorted(set(message_ids_sent)))),
        )
        tenant = self._scope.tenant
        return {
            message_id: EventRecord(
                id=event_id,
                partner_id=tenant.partner_id,
                external_id=external_id,
                environment=tenant.environment,
                category=category,
                event_type=event_type,
                points=points,
                occurred_at=codec.time_out(occurred_at),
                message_id=message_id,
                metadata=dict(codec.json_out(metadata)),
            )
            for (
                message_id,
                event_id,
                external_id,
                category,
                event_type,
                points,
                occurred_at,
                metadata,
            ) in rows
        }

    def _event_record(self, draft: NewEvent, event_id: str) -> EventRecord:
        return EventRecord(
            id=event_id,
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


def _profile_row(codec: Codec, profile: dict[str, Any]) -> dict[str, Any]:
    """`new_profile`'s row in driver values."""
    return {
        name: (
            codec.time_in(value)
            if isinstance(value, datetime)
            else codec.json_in(value)
            if isinstance(value, dict)
            else value
        )
        for name, value in profile.items()
    }
