"""Erasure: every row about one user removed, and the record that it happened (what was
removed and when, never whom it was about)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Delete, Table, bindparam, delete, insert, select

from journeys.domain import external_id_digest
from journeys.storage.schema import (
    erasures,
    events,
    message_ids,
    offers,
    stage_transitions,
    user_campaigns,
    user_daily_activity,
    users,
    webhook_messages,
)
from journeys.storage.scope import ScopedStore, TenantScope

#: Every table holding rows of one user, by `user_id`, children before the profile they
#: reference. On PostgreSQL `events` is the partitioned parent, so one statement covers every
#: partition. Webhook messages about the user go too, delivered or not: their payloads name
#: the user.
USER_TABLES: tuple[Table, ...] = (
    webhook_messages,
    offers,
    events,
    message_ids,
    user_daily_activity,
    user_campaigns,
    stage_transitions,
)


def _of_user(table: Table) -> Delete:
    return delete(table).where(TenantScope.of(table), table.c.user_id == bindparam("user_id"))


class Erasures(ScopedStore):
    # PostgreSQL: the profile is locked first. Every writer of a user's rows holds the
    # profile FOR KEY SHARE from the moment it finds it (`Ingestion`, `Profiles.lock_user`,
    # the analytics job's `Profiles.users_after`), so a write either holds it already, and
    # this waits for it and erases what it stored too, or waits for this, and then finds no
    # profile: it creates a new one (an event or profile for an unknown id does), is refused
    # as suppressed, answers 404 (a claim), or leaves the user out (the analytics job). An
    # upsert of the profile (POST /users) waits on this lock as well, then inserts anew.
    _LOCK = (
        select(users.c.id)
        .where(TenantScope.of(users), users.c.id == bindparam("user_id"))
        .with_for_update()
    )
    _ROWS = tuple(_of_user(table) for table in USER_TABLES)
    _PROFILE = delete(users).where(TenantScope.of(users), users.c.id == bindparam("user_id"))

    async def erase_user(self, user_id: str) -> int | None:
        """Deletes the user and every row about them; the number of rows removed, or None if
        the profile was gone already (a concurrent erasure)."""
        binds = self._scope.binds(user_id=user_id)
        if await self._connection.scalar(self._LOCK, binds) is None:
            return None
        removed = 0
        for statement in (*self._ROWS, self._PROFILE):
            removed += int((await self._connection.execute(statement, binds)).rowcount)
        return removed

    _RECORD = insert(erasures)

    async def record_erasure(
        self, external_id: str, at: datetime, rows_removed: int, suppressed: bool
    ) -> None:
        await self._connection.execute(
            self._RECORD,
            {
                "id": str(uuid.uuid4()),
                **self._scope.columns(),
                "external_id_digest": external_id_digest(external_id),
                "erased_at": at,
                "rows_removed": rows_removed,
                "suppressed": suppressed,
            },
        )
