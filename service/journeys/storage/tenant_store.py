"""Every query on tenant-owned data, each scoped by (partner, environment): through
`TenantStore._scoped`, or, for the statements built once at import, `_by_tenant` with the
tenant bound at execution from `TenantStore._tenant_binds`."""

from __future__ import annotations

import hashlib
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Date,
    Integer,
    Select,
    String,
    Table,
    and_,
    bindparam,
    case,
    delete,
    func,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from journeys.domain import (
    ActivityTotals,
    Category,
    ComputedSegments,
    Environment,
    EventRecord,
    JsonObject,
    NewEvent,
    NewOffer,
    OfferRecord,
    StageTransitionView,
    StoredEvent,
    Tenant,
    UserChanges,
    UserCounters,
    UserRecord,
)
from journeys.rules import OfferHistory
from journeys.storage.bulk import BulkInsert, bind_processor
from journeys.storage.connection import StoreConnection
from journeys.storage.schema import (
    EVENT_COLUMNS,
    catalogue_overrides,
    events,
    message_ids,
    offers,
    stage_transitions,
    user_campaigns,
    user_daily_activity,
    users,
)
from journeys.storage.types import UTCDateTime

WINDOWS_DAYS = (7, 30)

_PROFILE_FIELDS = ("display_name", "email", "phone", "country", "device", "source")
#: A profile's natural key: the conflict target of every insert of a user.
_USER_KEY = [users.c.partner_id, users.c.environment, users.c.external_id]


def _user_of(table: Table) -> ColumnElement[bool]:
    """Joins a row to its user along the users' primary key (tenant first)."""
    return and_(
        users.c.partner_id == table.c.partner_id,
        users.c.environment == table.c.environment,
        users.c.id == table.c.user_id,
    )


def _by_tenant(table: Table) -> ColumnElement[bool]:
    """`TenantStore._scoped` for a statement built once: the tenant is bound at execution,
    from `TenantStore._tenant_binds()`."""
    return and_(
        table.c.partner_id == bindparam("tenant_partner_id"),
        table.c.environment == bindparam("tenant_environment"),
    )


def _activity_totals_statement() -> Select[Any]:
    """`TenantStore.activity_totals`' statement. Built once at import: building it took
    longer than executing it (measured), and only the values change between calls."""
    days = user_daily_activity
    user = bindparam("user_id", type_=String())
    per_day = and_(_by_tenant(days), days.c.user_id == user)

    def days_after(span: int, column: Any) -> Any:
        return (
            select(func.coalesce(func.sum(column), 0))
            .where(per_day, days.c.day > bindparam(f"day_{span}", type_=Date()))
            .scalar_subquery()
        )

    def partial_day(span: int, *conditions: Any, value: Any) -> Any:
        return (
            select(func.coalesce(func.sum(value), 0))
            .where(
                _by_tenant(events),
                events.c.user_id == user,
                events.c.occurred_at >= bindparam(f"start_{span}", type_=UTCDateTime()),
                events.c.occurred_at < bindparam(f"end_{span}", type_=UTCDateTime()),
                *conditions,
            )
            .scalar_subquery()
        )

    is_play = events.c.category == Category.GAME_PLAY.value
    windows: dict[str, Any] = {}
    for span in WINDOWS_DAYS:
        windows[f"plays_{span}d"] = days_after(span, days.c.plays) + partial_day(
            span, is_play, value=1
        )
        windows[f"points_earned_{span}d"] = days_after(span, days.c.points_earned) + partial_day(
            span, events.c.points > 0, value=events.c.points
        )
    return select(
        users.c.total_events,
        users.c.total_plays,
        users.c.won_plays,
        select(func.count()).where(per_day).scalar_subquery().label("active_days"),
        select(func.count())
        .where(_by_tenant(user_campaigns), user_campaigns.c.user_id == user)
        .scalar_subquery()
        .label("campaigns_joined"),
        *(expression.label(name) for name, expression in windows.items()),
    ).where(_by_tenant(users), users.c.id == user)


_ACTIVITY_TOTALS = _activity_totals_statement()


def _per_dialect(build: Callable[[Any], Any]) -> dict[str, Any]:
    """A statement built once per engine from that engine's `insert` (ON CONFLICT)."""
    return {"sqlite": build(sqlite.insert), "postgresql": build(postgresql.insert)}


# Ingestion's statements, built once for the same reason.
_ADD_NEW_USERS = _per_dialect(
    lambda insert: (
        insert(users).on_conflict_do_nothing(index_elements=_USER_KEY).returning(users.c.id)
    )
)
_USER_IDS = select(users.c.external_id, users.c.id).where(
    _by_tenant(users), users.c.external_id.in_(bindparam("external_ids", expanding=True))
)
_CLAIM_MESSAGE_IDS = _per_dialect(
    lambda insert: (
        insert(message_ids)
        .on_conflict_do_nothing(index_elements=list(message_ids.primary_key))
        .returning(message_ids.c.event_id)
    )
)
# A parameter list, not a multi-row VALUES: SQLAlchemy batches it ("insertmanyvalues").
_INSERT_EVENTS = events.insert()
_AT = users.c.first_seen_at.type
_ADD_TO_PROFILES = (
    update(users)
    .where(_by_tenant(users), users.c.id == bindparam("user_id"))
    .values(
        total_events=users.c.total_events + bindparam("events"),
        total_plays=users.c.total_plays + bindparam("plays"),
        won_plays=users.c.won_plays + bindparam("won"),
        first_seen_at=case(
            (bindparam("first", type_=_AT) < users.c.first_seen_at, bindparam("first", type_=_AT)),
            else_=users.c.first_seen_at,
        ),
        last_seen_at=case(
            (bindparam("last", type_=_AT) > users.c.last_seen_at, bindparam("last", type_=_AT)),
            else_=users.c.last_seen_at,
        ),
        updated_at=bindparam("now", type_=_AT),
    )
)


def _add_to_days(insert: Any) -> Any:
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


_ADD_TO_DAYS = _per_dialect(_add_to_days)
_ADD_CAMPAIGNS = _per_dialect(lambda insert: insert(user_campaigns).on_conflict_do_nothing())
_ORIGINALS = (
    select(events, users.c.external_id)
    .join(
        message_ids,
        and_(
            message_ids.c.partner_id == events.c.partner_id,
            message_ids.c.environment == events.c.environment,
            message_ids.c.user_id == events.c.user_id,
            message_ids.c.occurred_at == events.c.occurred_at,
            message_ids.c.event_id == events.c.id,
        ),
    )
    .join(users, _user_of(events))
    .where(
        _by_tenant(message_ids),
        _by_tenant(events),
        message_ids.c.message_id.in_(bindparam("message_ids", expanding=True)),
    )
)
# The other reads on a request's path, built once for the same reason.
_USER_BY_EXTERNAL_ID = select(users).where(
    _by_tenant(users), users.c.external_id == bindparam("external_id", type_=String())
)
JOURNEY_LENGTH = 10
_JOURNEY = (
    select(stage_transitions)
    .where(_by_tenant(stage_transitions), stage_transitions.c.user_id == bindparam("user_id"))
    .order_by(stage_transitions.c.at.desc(), stage_transitions.c.seq.desc())
    .limit(JOURNEY_LENGTH)
)
_TIMELINE = (
    select(events, users.c.external_id)
    .join(users, _user_of(events))
    .where(_by_tenant(events), events.c.user_id == bindparam("user_id"))
    .order_by(events.c.occurred_at.desc(), events.c.seq.desc())
    .limit(bindparam("limit", type_=Integer()))
    .offset(bindparam("offset", type_=Integer()))
)
_ACTIVE_OFFERS = (
    select(offers, users.c.external_id)
    .join(users, _user_of(offers))
    .where(
        _by_tenant(offers),
        offers.c.user_id == bindparam("user_id"),
        offers.c.status == "active",
        offers.c.expires_at > bindparam("now", type_=UTCDateTime()),
    )
    .order_by(offers.c.created_at, offers.c.id)
)


class TenantStore:
    def __init__(self, connection: StoreConnection, tenant: Tenant) -> None:
        self._connection = connection
        self._tenant = tenant

    def _scoped(self, table: Table) -> ColumnElement[bool]:
        return and_(
            table.c.partner_id == self._tenant.partner_id,
            table.c.environment == self._tenant.environment.value,
        )

    def _tenant_columns(self) -> dict[str, str]:
        return {
            "partner_id": self._tenant.partner_id,
            "environment": self._tenant.environment.value,
        }

    def _tenant_binds(self) -> dict[str, str]:
        """The values of `_by_tenant`'s parameters."""
        return {
            "tenant_partner_id": self._tenant.partner_id,
            "tenant_environment": self._tenant.environment.value,
        }

    def _new_profile(
        self, external_id: str, first_seen_at: datetime, last_seen_at: datetime, now: datetime
    ) -> dict[str, Any]:
        """The row of a profile seen for the first time: empty fields, zero counters."""
        return {
            "id": str(uuid.uuid4()),
            **self._tenant_columns(),
            "external_id": external_id,
            **dict.fromkeys(_PROFILE_FIELDS, ""),
            "tags": {},
            "metadata": {},
            "first_seen_at": first_seen_at,
            "last_seen_at": last_seen_at,
            "created_at": now,
            "updated_at": now,
        }

    async def upsert_user(self, changes: UserChanges, now: datetime) -> None:
        """Creates the profile or updates exactly the fields that were sent, in one statement,
        so two concurrent first writes of one user cannot both insert."""
        sent: dict[str, Any] = {
            name: value for name in _PROFILE_FIELDS if (value := getattr(changes, name)) is not None
        }
        if changes.tags is not None:
            sent["tags"] = changes.tags
        if changes.metadata is not None:
            sent["metadata"] = changes.metadata
        insert = (
            _insert_for(self._connection)(users)
            .values(**self._new_profile(changes.external_id, now, now, now))
            .values(**sent)
        )
        excluded = insert.excluded
        statement = insert.on_conflict_do_update(
            index_elements=_USER_KEY,
            set_={
                **{name: excluded[name] for name in sent},
                "last_seen_at": case(
                    (excluded.last_seen_at > users.c.last_seen_at, excluded.last_seen_at),
                    else_=users.c.last_seen_at,
                ),
                "updated_at": excluded.updated_at,
            },
        )
        await self._connection.execute(statement)

    async def get_user(self, external_id: str) -> UserRecord | None:
        if "\x00" in external_id:  # stored ids never hold one; PostgreSQL text cannot hold one
            return None
        values = {**self._tenant_binds(), "external_id": external_id}
        row = (await self._connection.execute(_USER_BY_EXTERNAL_ID, values)).first()
        return None if row is None else _user(row)

    async def record_events(self, drafts: Sequence[NewEvent], now: datetime) -> list[StoredEvent]:
        """Stores a batch set-wise: a few statements whatever its size. An event whose
        `messageId` is already stored (by this batch, an earlier one, or a concurrent one) is
        not stored again; its original comes back with `is_new=False`. The `message_ids` key
        decides, so there is no read-then-write race."""
        user_ids, created = await self._ensure_users(drafts, now)
        rows = [
            {
                "id": str(uuid.uuid4()),
                **self._tenant_columns(),
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
        await _lock_message_ids(self._connection, self._tenant, drafts)
        claimed = await self._claim_message_ids(rows)
        new = [
            (draft, row)
            for draft, row in zip(drafts, rows, strict=True)
            if draft.message_id is None or row["id"] in claimed
        ]
        await self._insert_events([row for _, row in new])
        inserted = {row["id"] for _, row in new}
        await self._add_to_aggregates(new, now)
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

    async def _insert_events(self, rows: list[dict[str, Any]]) -> None:
        """A batch's events in one driver call. On SQLite, SQLAlchemy's per-row parameter
        handling cost more than the inserts themselves, so rows go to sqlite3's executemany
        as stored values (in-process, 500-event batches: +9 %). On PostgreSQL COPY measured
        slower than asyncpg's executemany of the INSERT."""
        if not rows:
            return
        dialect = self._connection.dialect
        if dialect.name == "postgresql":
            await self._connection.execute(_INSERT_EVENTS, rows)
            return
        insert = BulkInsert(events, EVENT_COLUMNS, dialect)
        stored_time = insert.processor("occurred_at")
        stored_json = insert.processor("metadata")
        created_at = stored_time(rows[0]["created_at"])
        await insert.execute(
            self._connection,
            [
                (
                    row["id"],
                    row["partner_id"],
                    row["environment"],
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

    async def _claim_message_ids(self, rows: Sequence[dict[str, Any]]) -> set[str]:
        """Records the batch's messageIds not stored before, each for its first event in the
        batch; returns the ids of the events that claimed one. The primary key decides, so
        there is no read-then-write race."""
        keyed = [row for row in rows if row["message_id"] is not None]
        if not keyed:
            return set()
        result = await self._connection.execute(
            _CLAIM_MESSAGE_IDS[self._connection.dialect.name],
            [
                {
                    **self._tenant_columns(),
                    "message_id": row["message_id"],
                    "event_id": row["id"],
                    "user_id": row["user_id"],
                    "occurred_at": row["occurred_at"],
                }
                for row in keyed
            ],
        )
        return set(result.scalars())

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
        missing = sorted(external_id for external_id in seen if external_id not in ids)
        if not missing:
            return ids, set()
        # Most users of a batch exist already: only the others are offered for insertion,
        # and the conflict target still decides between concurrent first writes.
        created = set(
            (
                await self._connection.execute(
                    _ADD_NEW_USERS[self._connection.dialect.name],
                    [self._new_profile(eid, *seen[eid], now) for eid in missing],
                )
            ).scalars()
        )
        return ids | await self._user_ids(missing), created

    async def _user_ids(self, external_ids: list[str]) -> dict[str, str]:
        rows = await self._connection.execute(
            _USER_IDS, {**self._tenant_binds(), "external_ids": external_ids}
        )
        return {row.external_id: row.id for row in rows}

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
            _ADD_TO_PROFILES,
            [
                {
                    **self._tenant_binds(),
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
            _ADD_TO_DAYS[dialect],
            [
                {
                    **self._tenant_columns(),
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
                _ADD_CAMPAIGNS[dialect],
                [
                    {**self._tenant_columns(), "user_id": u, "campaign_id": c}
                    for u, c in sorted(campaigns)
                ],
            )

    async def _drop_users_without_events(self, user_ids: set[str]) -> None:
        """A batch whose only events for a new user were duplicates leaves no empty profile."""
        if user_ids:
            await self._connection.execute(
                delete(users).where(self._scoped(users), users.c.id.in_(sorted(user_ids)))
            )

    async def _events_by_message_id(self, message_ids_sent: list[str]) -> dict[str, EventRecord]:
        if not message_ids_sent:
            return {}
        rows = await self._connection.execute(
            _ORIGINALS, {**self._tenant_binds(), "message_ids": sorted(set(message_ids_sent))}
        )
        return {row.message_id: _event(row) for row in rows}

    def _event_record(self, draft: NewEvent, row: dict[str, Any]) -> EventRecord:
        return EventRecord(
            id=row["id"],
            partner_id=self._tenant.partner_id,
            external_id=draft.external_id,
            environment=self._tenant.environment,
            category=draft.category.value,
            event_type=draft.event_type,
            points=draft.points,
            occurred_at=draft.occurred_at,
            message_id=draft.message_id or "",
            metadata=draft.metadata,
        )

    async def activity_totals(self, user_id: str, as_of: datetime) -> ActivityTotals:
        """Counters of one user as of an instant, in one round trip whatever their history:
        all-time counters live on the profile, windows add up daily rows plus the events of
        the one partial day at each window's start."""
        values: dict[str, Any] = {**self._tenant_binds(), "user_id": user_id}
        for span in WINDOWS_DAYS:
            start = as_of - timedelta(days=span)
            values |= {
                f"day_{span}": start.date(),
                f"start_{span}": start,
                f"end_{span}": _end_of_day(start),
            }
        row = (await self._connection.execute(_ACTIVITY_TOTALS, values)).one()
        return ActivityTotals(**{name: int(value) for name, value in row._mapping.items()})

    async def activity_totals_many(
        self, counters: Sequence[UserCounters], as_of: datetime
    ) -> dict[str, ActivityTotals]:
        """`activity_totals` for a chunk of users, set-wise: three grouped queries, each built
        once for every chunk of every run."""
        ids = [user.id for user in counters]
        tenant = self._tenant_binds()
        bounds = _window_bounds(as_of)
        windows: dict[str, list[int]] = {}
        active_days: dict[str, int] = {}
        for user_id, days, *sums in await self._connection.execute(
            _FULL_DAYS, {**tenant, "ids": ids, **bounds}
        ):
            active_days[user_id] = int(days)
            windows[user_id] = [int(value or 0) for value in sums]
        for user_id, *sums in await self._connection.execute(
            _PARTIAL_DAYS, {**tenant, "ids": ids, **bounds}
        ):
            found = windows.setdefault(user_id, [0] * len(_WINDOW_FIELDS))
            for n, value in enumerate(sums):
                found[n] += int(value or 0)
        campaigns = {
            user_id: int(joined)
            for user_id, joined in await self._connection.execute(
                _CAMPAIGNS_JOINED, {**tenant, "ids": ids}
            )
        }
        none = [0] * len(_WINDOW_FIELDS)
        return {
            user.id: ActivityTotals(
                total_events=user.total_events,
                total_plays=user.total_plays,
                won_plays=user.won_plays,
                **dict(zip(_WINDOW_FIELDS, windows.get(user.id, none), strict=True)),
                campaigns_joined=campaigns.get(user.id, 0),
                active_days=active_days.get(user.id, 0),
            )
            for user in counters
        }

    async def users_after(self, after_external_id: str, limit: int) -> list[UserCounters]:
        """The next chunk of users in external id order: keyset paging along the tenant's
        unique index, so every chunk costs the same however far the scan has got."""
        rows = await self._connection.execute(
            select(
                users.c.id,
                users.c.external_id,
                users.c.first_seen_at,
                users.c.last_seen_at,
                users.c.segment_stage.label("stored_stage"),
                users.c.total_events,
                users.c.total_plays,
                users.c.won_plays,
            )
            .where(self._scoped(users), users.c.external_id > after_external_id)
            .order_by(users.c.external_id)
            .limit(limit)
        )
        # Columns in the dataclass's field order: positional is several times cheaper.
        return [UserCounters(*row) for row in rows]

    async def save_segments(self, computed: Sequence[ComputedSegments], as_of: datetime) -> None:
        """Stores each user's segments as computed as of `as_of`, in one driver call whatever
        the chunk's size. Profiles are locked in id order, as `record_events` does, so the two
        never deadlock."""
        if not computed:
            return
        ordered = sorted(computed, key=lambda item: item.user_id)
        if self._connection.dialect.name == "postgresql":
            await self._connection.execute(
                _SAVE_SEGMENTS_PG,
                {
                    **self._tenant_columns(),
                    "ids": [item.user_id for item in ordered],
                    "stages": [item.stage for item in ordered],
                    "tiers": [item.tier for item in ordered],
                    "scores": [item.engagement_score for item in ordered],
                    "churn": [item.churn_risk_score for item in ordered],
                    "as_of": as_of,
                },
            )
            return
        computed_at = bind_processor(users, "segments_computed_at", self._connection.dialect)(as_of)
        partner_id, environment = self._tenant.partner_id, self._tenant.environment.value
        await self._connection.exec_driver_sql(
            _SAVE_SEGMENTS_SQLITE,
            [
                (
                    item.stage,
                    item.tier,
                    item.engagement_score,
                    item.churn_risk_score,
                    computed_at,
                    partner_id,
                    environment,
                    item.user_id,
                )
                for item in ordered
            ],
        )

    async def add_transitions(
        self, transitions: Sequence[tuple[str, str, str]], at: datetime
    ) -> None:
        """Records (user id, from stage, to stage) changes seen at `at`."""
        if not transitions:
            return
        insert = BulkInsert(stage_transitions, _TRANSITION_COLUMNS, self._connection.dialect)
        stored_at = insert.processor("at")(at)
        partner_id, environment = self._tenant.partner_id, self._tenant.environment.value
        await insert.execute(
            self._connection,
            [
                (partner_id, environment, user_id, before, after, stored_at)
                for user_id, before, after in transitions
            ],
        )

    async def journey(self, user_id: str) -> list[StageTransitionView]:
        """The user's latest `JOURNEY_LENGTH` stage transitions, newest first."""
        rows = await self._connection.execute(
            _JOURNEY, {**self._tenant_binds(), "user_id": user_id}
        )
        return [StageTransitionView(row.from_stage, row.to_stage, row.at) for row in rows]

    async def expire_offers(self, as_of: datetime) -> int:
        result = await self._connection.execute(
            update(offers)
            .where(self._scoped(offers), offers.c.status == "active", offers.c.expires_at <= as_of)
            .values(status="expired")
        )
        return int(result.rowcount)

    async def offer_histories(self, user_ids: Sequence[str]) -> dict[str, OfferHistory]:
        active: dict[str, set[str]] = defaultdict(set)
        ended: dict[str, dict[str, datetime]] = defaultdict(dict)
        created: dict[str, dict[str, datetime]] = defaultdict(dict)
        rows = await self._connection.execute(
            select(
                offers.c.user_id,
                offers.c.offer_type,
                offers.c.status,
                func.max(offers.c.created_at).label("created_at"),
                func.max(offers.c.claimed_at).label("claimed_at"),
                func.max(offers.c.expires_at).label("expires_at"),
            )
            .where(self._scoped(offers), offers.c.user_id.in_(list(user_ids)))
            .group_by(offers.c.user_id, offers.c.offer_type, offers.c.status)
        )
        for row in rows:
            # max() over a column loses the UTC type decoration on some engines.
            made = _utc(row.created_at)
            kind = row.offer_type
            if row.status == "active":
                active[row.user_id].add(kind)
            end = _utc(row.claimed_at) if row.status == "claimed" else _utc(row.expires_at)
            if row.status != "active" and end is not None:
                previous = ended[row.user_id].get(kind)
                ended[row.user_id][kind] = end if previous is None else max(previous, end)
            if made is not None:
                previous = created[row.user_id].get(kind)
                created[row.user_id][kind] = made if previous is None else max(previous, made)
        return {
            user_id: OfferHistory(
                frozenset(active[user_id]), dict(ended[user_id]), dict(created[user_id])
            )
            for user_id in user_ids
        }

    async def add_offers(self, planned: Sequence[NewOffer], as_of: datetime) -> None:
        if not planned:
            return
        insert = BulkInsert(offers, _OFFER_COLUMNS, self._connection.dialect)
        stored_time = insert.processor("expires_at")
        stored_json = insert.processor("metadata")
        created_at = stored_time(as_of)
        partner_id, environment = self._tenant.partner_id, self._tenant.environment.value
        await insert.execute(
            self._connection,
            [
                (
                    str(uuid.uuid4()),
                    partner_id,
                    environment,
                    offer.user_id,
                    offer.offer_type,
                    offer.game_type,
                    offer.title,
                    offer.description,
                    offer.points_value,
                    "active",
                    stored_time(offer.expires_at),
                    None,
                    stored_json(offer.metadata),
                    created_at,
                )
                for offer in planned
            ],
        )

    async def offer_for_update(self, user_id: str, offer_id: str) -> OfferRecord | None:
        """The offer, row-locked until the transaction ends (PostgreSQL; SQLite's write
        transaction already excludes other writers)."""
        row = (
            await self._connection.execute(
                select(offers, users.c.external_id)
                .join(users, _user_of(offers))
                .where(self._scoped(offers), offers.c.id == offer_id, offers.c.user_id == user_id)
                .with_for_update(of=offers)
            )
        ).first()
        return None if row is None else _offer(row)

    async def mark_claimed(self, offer_id: str, now: datetime) -> bool:
        """Claims an active offer; False if it was not active any more (a concurrent claim)."""
        result = await self._connection.execute(
            update(offers)
            .where(self._scoped(offers), offers.c.id == offer_id, offers.c.status == "active")
            .values(status="claimed", claimed_at=now)
        )
        return bool(result.rowcount == 1)

    async def catalogue_override(self) -> dict[str, JsonObject]:
        value = await self._connection.scalar(
            select(catalogue_overrides.c.overrides).where(self._scoped(catalogue_overrides))
        )
        return dict(value) if value else {}

    async def set_catalogue_override(self, override: dict[str, JsonObject], now: datetime) -> None:
        statement = _insert_for(self._connection)(catalogue_overrides).values(
            **self._tenant_columns(), overrides=override, updated_at=now
        )
        await self._connection.execute(
            statement.on_conflict_do_update(
                index_elements=[
                    catalogue_overrides.c.partner_id,
                    catalogue_overrides.c.environment,
                ],
                set_={"overrides": statement.excluded.overrides, "updated_at": now},
            )
        )

    async def timeline(self, user_id: str, page: int, limit: int) -> list[EventRecord]:
        rows = await self._connection.execute(
            _TIMELINE,
            {
                **self._tenant_binds(),
                "user_id": user_id,
                "limit": limit,
                "offset": (page - 1) * limit,
            },
        )
        return [_event(row) for row in rows]

    async def active_offers(self, user_id: str, now: datetime) -> list[OfferRecord]:
        rows = await self._connection.execute(
            _ACTIVE_OFFERS, {**self._tenant_binds(), "user_id": user_id, "now": now}
        )
        return [_offer(row) for row in rows]


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
    connection: StoreConnection, tenant: Tenant, drafts: Sequence[NewEvent]
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
                    f"{tenant.partner_id}/{tenant.environment.value}/{draft.message_id}".encode(),
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

#: The window counters `activity_totals_many` adds up, in the order its queries return them.
_WINDOW_FIELDS = tuple(
    f"{kind}_{span}d" for kind in ("plays", "points_earned") for span in WINDOWS_DAYS
)


def _window_bounds(as_of: datetime) -> dict[str, Any]:
    """Parameters of the window queries: each window's whole days after its first, partial
    one, and that partial day's span of time."""
    bounds: dict[str, Any] = {}
    for span in WINDOWS_DAYS:
        start = as_of - timedelta(days=span)
        bounds[f"after_day_{span}d"] = start.date()
        bounds[f"from_{span}d"] = start
        bounds[f"until_{span}d"] = _end_of_day(start)
    return bounds


def _in_partial_day(span: int) -> ColumnElement[bool]:
    return and_(
        events.c.occurred_at >= bindparam(f"from_{span}d"),
        events.c.occurred_at < bindparam(f"until_{span}d"),
    )


_CHUNK_IDS: BindParameter[list[str]] = bindparam("ids", expanding=True)
_FULL_DAYS = (
    select(
        user_daily_activity.c.user_id,
        func.count(),
        *(
            func.sum(
                case((user_daily_activity.c.day > bindparam(f"after_day_{span}d"), column), else_=0)
            )
            for column in (user_daily_activity.c.plays, user_daily_activity.c.points_earned)
            for span in WINDOWS_DAYS
        ),
    )
    .where(_by_tenant(user_daily_activity), user_daily_activity.c.user_id.in_(_CHUNK_IDS))
    .group_by(user_daily_activity.c.user_id)
)
_PARTIAL_DAYS = (
    select(
        events.c.user_id,
        *(
            func.sum(case((and_(_in_partial_day(span), condition), value), else_=0))
            for condition, value in (
                (events.c.category == Category.GAME_PLAY.value, literal(1)),
                (events.c.points > 0, events.c.points),
            )
            for span in WINDOWS_DAYS
        ),
    )
    .where(
        _by_tenant(events),
        events.c.user_id.in_(_CHUNK_IDS),
        or_(*(_in_partial_day(span) for span in WINDOWS_DAYS)),
    )
    .group_by(events.c.user_id)
)
_CAMPAIGNS_JOINED = (
    select(user_campaigns.c.user_id, func.count())
    .where(_by_tenant(user_campaigns), user_campaigns.c.user_id.in_(_CHUNK_IDS))
    .group_by(user_campaigns.c.user_id)
)
_SAVE_SEGMENTS_SQLITE = (
    "UPDATE users SET segment_stage = ?, segment_tier = ?, segment_engagement_score = ?, "
    "segment_churn_risk = ?, segments_computed_at = ? "
    "WHERE partner_id = ? AND environment = ? AND id = ?"
)
# One statement for the chunk instead of one per profile. The CTE takes the row locks in id
# order (a lone UPDATE ... FROM locks in whatever order its plan visits the rows), and the
# lock an UPDATE of non-key columns takes anyway: FOR UPDATE would also block the reference
# checks of events being stored for these users (FOR KEY SHARE), and deadlock with them.
_SAVE_SEGMENTS_PG = text(
    """WITH locked AS (
        SELECT id FROM users
        WHERE partner_id = :partner_id AND environment = :environment
          AND id = ANY(CAST(:ids AS varchar[]))
        ORDER BY id
        FOR NO KEY UPDATE
    )
    UPDATE users SET
        segment_stage = computed.stage,
        segment_tier = computed.tier,
        segment_engagement_score = computed.score,
        segment_churn_risk = computed.churn,
        segments_computed_at = :as_of
    FROM locked
    JOIN unnest(
        CAST(:ids AS varchar[]), CAST(:stages AS varchar[]), CAST(:tiers AS varchar[]),
        CAST(:scores AS float8[]), CAST(:churn AS integer[])
    ) AS computed (user_id, stage, tier, score, churn) ON computed.user_id = locked.id
    WHERE users.partner_id = :partner_id AND users.environment = :environment
      AND users.id = locked.id"""
)
_TRANSITION_COLUMNS = ("partner_id", "environment", "user_id", "from_stage", "to_stage", "at")
_OFFER_COLUMNS = (
    "id",
    "partner_id",
    "environment",
    "user_id",
    "offer_type",
    "game_type",
    "title",
    "description",
    "points_value",
    "status",
    "expires_at",
    "claimed_at",
    "metadata",
    "created_at",
)


def _end_of_day(moment: datetime) -> datetime:
    return datetime.combine(moment.date() + timedelta(days=1), time(), tzinfo=UTC)


def _utc(value: datetime | str | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):  # SQLite returns max() of a DATETIME column as text
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _insert_for(connection: StoreConnection) -> Any:
    return postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert


def _user(row: Any) -> UserRecord:
    return UserRecord(
        id=row.id,
        partner_id=row.partner_id,
        environment=Environment(row.environment),
        external_id=row.external_id,
        display_name=row.display_name,
        email=row.email,
        phone=row.phone,
        country=row.country,
        device=row.device,
        source=row.source,
        first_seen_at=row.first_seen_at,
        last_seen_at=row.last_seen_at,
        tags=dict(row.tags),
        metadata=dict(row.metadata),
        total_events=row.total_events,
    )


def _event(row: Any) -> EventRecord:
    return EventRecord(
        id=row.id,
        partner_id=row.partner_id,
        external_id=row.external_id,
        environment=Environment(row.environment),
        category=row.category,
        event_type=row.event_type,
        points=row.points,
        occurred_at=row.occurred_at,
        message_id=row.message_id or "",
        metadata=dict(row.metadata),
    )


def _offer(row: Any) -> OfferRecord:
    return OfferRecord(
        id=row.id,
        external_id=row.external_id,
        offer_type=row.offer_type,
        game_type=row.game_type,
        title=row.title,
        description=row.description,
        points_value=row.points_value,
        status=row.status,
        expires_at=row.expires_at,
        claimed_at=row.claimed_at,
        metadata=dict(row.metadata),
    )
