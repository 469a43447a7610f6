"""Privacy operations on one user (secret key, or an operator): erasure with optional
suppression, lifting a suppression, and the export of everything stored about them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime

from journeys.domain import EventRecord, KeyKind, OfferRecord, StageTransitionView, utc_now
from journeys.errors import SuppressionNotFound, UserNotFound
from journeys.storage.database import Database
from journeys.usecases import validation
from journeys.usecases.auth import Actor, tenant_of
from journeys.usecases.journeys import Clock, detailed_view
from journeys.usecases.profiles import UserView


@dataclass(frozen=True)
class Erasure:
    external_id: str
    deleted_at: datetime
    suppressed: bool
    rows_removed: int


@dataclass(frozen=True)
class UserExport:
    """Everything stored about one user, valid inside `Privacy.export_user`'s block (one
    consistent snapshot)."""

    #: The profile as GET /users/{externalId} shows it.
    profile: UserView
    #: Every offer, whatever its status, oldest first.
    offers: tuple[OfferRecord, ...]
    #: Every stage transition, oldest first.
    journey: tuple[StageTransitionView, ...]
    _events: Callable[[], AsyncIterator[EventRecord]] = field(repr=False)

    def events(self) -> AsyncIterator[EventRecord]:
        """Every event, oldest first, read from the database a page at a time as it is
        iterated: a user's history need not fit in memory."""
        return self._events()


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

    @asynccontextmanager
    async def export_user(self, actor: Actor, external_id: str) -> AsyncIterator[UserExport]:
        """Everything stored about the user, read in one transaction that stays open while
        the block consumes `events()`."""
        now = self._clock()
        async with self._db.transaction(write=False) as tx:
            store = tx.tenant(await tenant_of(tx.keys, actor, needs=KeyKind.SECRET))
            profile = await detailed_view(store, external_id, now)
            user_id = profile.record.id
            yield UserExport(
                profile=profile,
                offers=tuple(await store.all_offers(user_id)),
                journey=tuple(await store.whole_journey(user_id)),
                _events=lambda: store.events_oldest_first(user_id),
            )
