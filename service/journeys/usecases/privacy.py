"""Privacy operations on one user (secret key, or an operator): erasure with optional
suppression, and lifting a suppression."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from journeys.domain import KeyKind, utc_now
from journeys.errors import SuppressionNotFound, UserNotFound
from journeys.storage.database import Database
from journeys.usecases import validation
from journeys.usecases.auth import Actor, tenant_of
from journeys.usecases.journeys import Clock


@dataclass(frozen=True)
class Erasure:
    external_id: str
    deleted_at: datetime
    suppressed: bool
    rows_removed: int


class Privacy:
    def __init__(self, database: Database, clock: Clock = utc_now) -> None:
        self._db = database
        self._clock = clock

    async def delete_user(self, actor: Actor, external_id: str, *, suppress: bool) -> Erasure:
        """Removes the user and every row about them, records that (by digest only) and,
        with `suppress`, keeps the id from coming back; all in one transaction."""
        now = self._clock()
        async with self._db.transaction(write=True) as tx:
            store = tx.tenant(await tenant_of(tx.keys, actor, needs=KeyKind.SECRET))
            external_id = validation.external_id(external_id)
            user = await store.get_user(external_id)
            removed = None if user is None else await store.erase_user(user.id)
            if removed is None:
                raise UserNotFound
            await store.record_erasure(external_id, now, removed, suppress)
            if suppress:
                await store.suppress(external_id, now)
        return Erasure(external_id, now, suppress, removed)

    async def lift_suppression(self, actor: Actor, external_id: str) -> None:
        """Lets an erased id be used again."""
        async with self._db.transaction(write=True) as tx:
            store = tx.tenant(await tenant_of(tx.keys, actor, needs=KeyKind.SECRET))
            external_id = validation.external_id(external_id)
            if not await store.lift_suppression(external_id):
                raise SuppressionNotFound
