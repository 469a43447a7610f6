"""Everything stored about one user, for an export: their events in keyset pages (a user may
have very many), and all their offers and stage transitions."""

from __future__ import annotations

from collections.abc import AsyncIterator

from sqlalchemy import Integer, bindparam, select, tuple_

from journeys.domain import EventRecord, OfferRecord, StageTransitionView
from journeys.storage.profiles import user_of
from journeys.storage.rows import event_record, offer_record
from journeys.storage.schema import events, offers, stage_transitions, users
from journeys.storage.scope import ScopedStore, TenantScope
from journeys.storage.types import UTCDateTime

EVENTS_PAGE = 1000

_FIRST_EVENTS = (
    select(events, users.c.external_id)
    .join(users, user_of(events))
    .where(TenantScope.of(events), events.c.user_id == bindparam("user_id"))
    .order_by(events.c.occurred_at, events.c.seq)
    .limit(bindparam("limit", type_=Integer()))
)
# A range of the events' (tenant, user, occurred_at, seq) index after the last row seen: every
# page costs the same however deep it is.
_NEXT_EVENTS = _FIRST_EVENTS.where(
    tuple_(events.c.occurred_at, events.c.seq)
    > tuple_(bindparam("after_at", type_=UTCDateTime()), bindparam("after_seq", type_=Integer()))
)


class Exports(ScopedStore):
    async def events_oldest_first(
        self, user_id: str, page_size: int = EVENTS_PAGE
    ) -> AsyncIterator[EventRecord]:
        """Every event of the user, oldest first (ties in insertion order), read `page_size`
        rows at a time so memory stays flat whatever their number."""
        rows = list(
            await self._connection.execute(
                _FIRST_EVENTS, self._scope.binds(user_id=user_id, limit=page_size)
            )
        )
        while rows:
            for row in rows:
                yield event_record(row)
            if len(rows) < page_size:
                return
            last = rows[-1]
            rows = list(
                await self._connection.execute(
                    _NEXT_EVENTS,
                    self._scope.binds(
                        user_id=user_id,
                        limit=page_size,
                        after_at=last.occurred_at,
                        after_seq=last.seq,
                    ),
                )
            )

    _EVERY_OFFER = (
        select(offers, users.c.external_id)
        .join(users, user_of(offers))
        .where(TenantScope.of(offers), offers.c.user_id == bindparam("user_id"))
        .order_by(offers.c.created_at, offers.c.id)
    )

    async def all_offers(self, user_id: str) -> list[OfferRecord]:
        """Every offer the user was ever made, whatever its status, oldest first."""
        rows = await self._connection.execute(self._EVERY_OFFER, self._scope.binds(user_id=user_id))
        return [offer_record(row) for row in rows]

    _WHOLE_JOURNEY = (
        select(stage_transitions)
        .where(
            TenantScope.of(stage_transitions), stage_transitions.c.user_id == bindparam("user_id")
        )
        .order_by(stage_transitions.c.at, stage_transitions.c.seq)
    )

    async def whole_journey(self, user_id: str) -> list[StageTransitionView]:
        """Every stage transition of the user, oldest first."""
        rows = await self._connection.execute(
            self._WHOLE_JOURNEY, self._scope.binds(user_id=user_id)
        )
        return [StageTransitionView(row.from_stage, row.to_stage, row.at) for row in rows]
