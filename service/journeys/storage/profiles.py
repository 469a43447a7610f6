"""Profiles: a user's fields and counters, and the reads of one user (profile, timeline)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Select,
    String,
    Table,
    and_,
    bindparam,
    case,
    select,
    tuple_,
)

from journeys.domain import (
    ANALYTICS_DUE_NOW,
    EventRecord,
    SuppressedExternalIds,
    UserChanges,
    UserCounters,
    UserRecord,
)
from journeys.storage.dialect import insert_for
from journeys.storage.driver import driver_of
from journeys.storage.rows import event_record, user_record
from journeys.storage.schema import events, users
from journeys.storage.scope import ScopedStore, TenantScope
from journeys.storage.suppressions import suppressed_among

PROFILE_FIELDS = ("display_name", "email", "phone", "country", "device", "source")
#: A profile's natural key: the conflict target of every insert of a user.
USER_KEY = [*TenantScope.columns_of(users), users.c.external_id]


def user_of(table: Table) -> ColumnElement[bool]:
    """Joins a row to its user along the users' primary key (tenant first)."""
    return and_(TenantScope.same_tenant(users, table), users.c.id == table.c.user_id)


def new_profile(
    scope: TenantScope,
    external_id: str,
    first_seen_at: datetime,
    last_seen_at: datetime,
    now: datetime,
) -> dict[str, Any]:
    """The row of a profile seen for the first time: empty fields, zero counters."""
    return {
        "id": str(uuid.uuid4()),
        **scope.columns(),
        "external_id": external_id,
        **dict.fromkeys(PROFILE_FIELDS, ""),
        "tags": {},
        "metadata": {},
        "first_seen_at": first_seen_at,
        "last_seen_at": last_seen_at,
        "created_at": now,
        "updated_at": now,
    }


#: A user as the analytics job reads them: `UserCounters`' fields in order.
_COUNTERS = (
    users.c.id,
    users.c.external_id,
    users.c.first_seen_at,
    users.c.last_seen_at,
    users.c.segment_stage.label("stored_stage"),
    users.c.total_events,
    users.c.total_plays,
    users.c.won_plays,
    users.c.analytics_due_at,
)


class Profiles(ScopedStore):
    # The reads on a request's path are built once, each beside its method: building one
    # took longer than executing it (measured), and only the values change between calls.

    async def upsert_user(self, changes: UserChanges, now: datetime) -> None:
        """Creates the profile or updates exactly the fields that were sent, in one statement,
        so two concurrent first writes of one user cannot both insert. A profile it creates
        for a suppressed id raises `SuppressedExternalIds` (the caller rolls back)."""
        sent: dict[str, Any] = {
            name: value for name in PROFILE_FIELDS if (value := getattr(changes, name)) is not None
        }
        if changes.tags is not None:
            sent["tags"] = changes.tags
        if changes.metadata is not None:
            sent["metadata"] = changes.metadata
        insert = (
            insert_for(self._connection)(users)
            .values(**new_profile(self._scope, changes.external_id, now, now, now))
            .values(**sent)
        )
        excluded = insert.excluded
        statement = insert.on_conflict_do_update(
            index_elements=USER_KEY,
            set_={
                **{name: excluded[name] for name in sent},
                "last_seen_at": case(
                    (excluded.last_seen_at > users.c.last_seen_at, excluded.last_seen_at),
                    else_=users.c.last_seen_at,
                ),
                "updated_at": excluded.updated_at,
                # Days since last seen feed the segments: a move makes the user due.
                "analytics_due_at": case(
                    (
                        excluded.last_seen_at > users.c.last_seen_at,
                        bindparam(
                            "due_now", ANALYTICS_DUE_NOW, type_=users.c.analytics_due_at.type
                        ),
                    ),
                    else_=users.c.analytics_due_at,
                ),
            },
        )
        # Only an insert leaves the two equal (an update moves `updated_at` on), so a user
        # who exists already is not looked up on the suppression list.
        created = (
            await self._connection.execute(
                statement.returning(users.c.created_at == users.c.updated_at)
            )
        ).scalar_one()
        external_id = changes.external_id
        if created and await suppressed_among(
            await driver_of(self._connection), self._scope, [external_id]
        ):
            raise SuppressedExternalIds(frozenset([external_id]))

    _USER_BY_EXTERNAL_ID = select(users).where(
        TenantScope.of(users), users.c.external_id == bindparam("external_id", type_=String())
    )

    async def get_user(self, external_id: str) -> UserRecord | None:
        return await self._user(self._USER_BY_EXTERNAL_ID, external_id)

    # FOR KEY SHARE on PostgreSQL, as `Ingestion` finds the profiles it writes for (see there):
    # it holds off only an erasure.
    _USER_LOCKED = _USER_BY_EXTERNAL_ID.with_for_update(read=True, key_share=True)

    async def lock_user(self, external_id: str) -> UserRecord | None:
        """The profile, kept from being erased until the transaction ends; None if there is
        none (also if an erasure removed it while this waited)."""
        return await self._user(self._USER_LOCKED, external_id)

    async def _user(self, statement: Select[Any], external_id: str) -> UserRecord | None:
        if "\x00" in external_id:  # stored ids never hold one; PostgreSQL text cannot hold one
            return None
        row = (
            await self._connection.execute(statement, self._scope.binds(external_id=external_id))
        ).first()
        return None if row is None else user_record(row)

    _TIMELINE = (
        select(events, users.c.external_id)
        .join(users, user_of(events))
        .where(TenantScope.of(events), events.c.user_id == bindparam("user_id"))
        .order_by(events.c.occurred_at.desc(), events.c.seq.desc())
        .limit(bindparam("limit", type_=Integer()))
        # (page - 1) * limit exceeds 32 bits for a page near int32's top.
        .offset(bindparam("offset", type_=BigInteger()))
    )

    async def timeline(self, user_id: str, page: int, limit: int) -> list[EventRecord]:
        rows = await self._connection.execute(
            self._TIMELINE,
            self._scope.binds(user_id=user_id, limit=limit, offset=(page - 1) * limit),
        )
        return [event_record(row) for row in rows]

    _USERS_AFTER = (
        select(*_COUNTERS)
        .where(TenantScope.of(users), users.c.external_id > bindparam("after", type_=String()))
        .order_by(users.c.external_id)
        .limit(bindparam("limit", type_=Integer()))
        # The analytics job writes rows referencing each profile of the chunk it read: held
        # FOR KEY SHARE (see `lock_user`), none is erased before the chunk commits, and one
        # erased before it is read is not in the chunk.
        .with_for_update(read=True, key_share=True)
    )

    async def users_after(self, after_external_id: str, limit: int) -> list[UserCounters]:
        """The next chunk of users in external id order, kept from being erased until the
        transaction ends: keyset paging along the tenant's unique index, so every chunk costs
        the same however far the scan has got."""
        rows = await self._connection.execute(
            self._USERS_AFTER, self._scope.binds(after=after_external_id, limit=limit)
        )
        # Columns in the dataclass's field order: positional is several times cheaper.
        return [UserCounters(*row) for row in rows]

    _AT = users.c.analytics_due_at.type
    _DUE_AFTER = (
        select(*_COUNTERS)
        .where(
            TenantScope.of(users),
            users.c.analytics_due_at <= bindparam("as_of", type_=_AT),
            tuple_(users.c.analytics_due_at, users.c.id)
            > tuple_(bindparam("after_due", type_=_AT), bindparam("after_id", type_=String())),
        )
        .order_by(users.c.analytics_due_at, users.c.id)
        .limit(bindparam("limit", type_=Integer()))
        # As `_USERS_AFTER`: none of the chunk is erased before it commits.
        .with_for_update(read=True, key_share=True)
    )

    async def due_users_after(
        self, as_of: datetime, after: tuple[datetime, str] | None, limit: int
    ) -> list[UserCounters]:
        """The next chunk of users due as of `as_of` (`rules/due.py`), in (due, id) order
        after `after`: one range of the (tenant, due, id) index, each chunk the same cost.
        A recomputed user's new due instant is later than `as_of`, and one marked due by new
        data meanwhile sorts before the cursor: either way no user is read twice in a run."""
        # The first chunk starts just before the earliest instant a user can be due at.
        after_due, after_id = after or (ANALYTICS_DUE_NOW - timedelta(microseconds=1), "")
        rows = await self._connection.execute(
            self._DUE_AFTER,
            self._scope.binds(as_of=as_of, after_due=after_due, after_id=after_id, limit=limit),
        )
        return [UserCounters(*row) for row in rows]
