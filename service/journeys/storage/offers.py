"""Offers: those the analytics job plans and expires, and the claims of users."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from sqlalchemy import bindparam, func, select, update

from journeys.domain import NewOffer, OfferRecord
from journeys.rules import OfferHistory
from journeys.storage.bulk import BulkInsert
from journeys.storage.outcomes import OfferOutcomes
from journeys.storage.profiles import user_of
from journeys.storage.rows import offer_record
from journeys.storage.schema import offers, users
from journeys.storage.scope import COLUMNS, TenantScope
from journeys.storage.types import UTCDateTime, as_utc

_OF_USER = select(offers, users.c.external_id).join(users, user_of(offers))


_OUTCOME_KEY = (offers.c.offer_type, offers.c.context_stage, offers.c.context_tier)


class Offers(OfferOutcomes):
    # RETURNING names exactly the rows this statement expired, so a claim racing the sweep
    # is counted once, as whichever of the two changed the row.
    _EXPIRE = (
        update(offers)
        .where(
            TenantScope.of(offers),
            offers.c.status == "active",
            offers.c.expires_at <= bindparam("as_of", type_=UTCDateTime()),
        )
        .values(status="expired")
        .returning(*_OUTCOME_KEY)
    )

    _EXPIRING = (
        _OF_USER.where(
            TenantScope.of(offers),
            offers.c.status == "active",
            offers.c.expires_at <= bindparam("as_of", type_=UTCDateTime()),
        )
        .order_by(offers.c.id)
        .with_for_update(of=offers)
    )

    async def expiring_offers(self, as_of: datetime) -> list[tuple[str, OfferRecord]]:
        """The offers `expire_offers(as_of)` is about to expire, by user id, as they will be
        (expired), row-locked so a claim cannot slip in between."""
        rows = await self._connection.execute(self._EXPIRING, self._scope.binds(as_of=as_of))
        return [(row.user_id, replace(offer_record(row), status="expired")) for row in rows]

    async def expire_offers(self, as_of: datetime) -> int:
        """Expires every active offer past `as_of`, counting each as a failure in its
        context; the number expired."""
        result = await self._connection.execute(self._EXPIRE, self._scope.binds(as_of=as_of))
        expired = [tuple(row) for row in result]
        await self.count_outcomes(as_of, failures=expired)
        return len(expired)

    _HISTORIES = (
        select(
            offers.c.user_id,
            offers.c.offer_type,
            offers.c.status,
            func.max(offers.c.created_at).label("created_at"),
            func.max(offers.c.claimed_at).label("claimed_at"),
            func.max(offers.c.expires_at).label("expires_at"),
        )
        .where(TenantScope.of(offers), offers.c.user_id.in_(bindparam("user_ids", expanding=True)))
        .group_by(offers.c.user_id, offers.c.offer_type, offers.c.status)
    )

    async def offer_histories(self, user_ids: Sequence[str]) -> dict[str, OfferHistory]:
        active: dict[str, set[str]] = defaultdict(set)
        ended: dict[str, dict[str, datetime]] = defaultdict(dict)
        created: dict[str, dict[str, datetime]] = defaultdict(dict)
        expiring: dict[str, dict[str, datetime]] = defaultdict(dict)
        rows = await self._connection.execute(
            self._HISTORIES, self._scope.binds(user_ids=list(user_ids))
        )
        for row in rows:
            # max() over a column loses the UTC type decoration on some engines.
            made = as_utc(row.created_at)
            kind = row.offer_type
            if row.status == "active":
                active[row.user_id].add(kind)
                # One active offer per type (a unique index): max() is its expiry.
                if (expires := as_utc(row.expires_at)) is not None:
                    expiring[row.user_id][kind] = expires
            end = as_utc(row.claimed_at) if row.status == "claimed" else as_utc(row.expires_at)
            if row.status != "active" and end is not None:
                previous = ended[row.user_id].get(kind)
                ended[row.user_id][kind] = end if previous is None else max(previous, end)
            if made is not None:
                previous = created[row.user_id].get(kind)
                created[row.user_id][kind] = made if previous is None else max(previous, made)
        return {
            user_id: OfferHistory(
                frozenset(active[user_id]),
                dict(ended[user_id]),
                dict(created[user_id]),
                dict(expiring[user_id]),
            )
            for user_id in user_ids
        }

    _OFFER_COLUMNS = (
        "id",
        *COLUMNS,
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
        "context_stage",
        "context_tier",
    )

    async def add_offers(self, planned: Sequence[NewOffer], as_of: datetime) -> list[str]:
        """Stores the planned offers as active; their new ids, in the order planned."""
        if not planned:
            return []
        ids = [str(uuid.uuid4()) for _ in planned]
        insert = BulkInsert(offers, self._OFFER_COLUMNS, self._connection.dialect)
        stored_time = insert.processor("expires_at")
        stored_json = insert.processor("metadata")
        created_at = stored_time(as_of)
        tenant = self._scope.values()
        await insert.execute(
            self._connection,
            [
                (
                    offer_id,
                    *tenant,
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
                    offer.context_stage,
                    offer.context_tier,
                )
                for offer, offer_id in zip(planned, ids, strict=True)
            ],
        )
        return ids

    _FOR_UPDATE = _OF_USER.where(
        TenantScope.of(offers),
        offers.c.id == bindparam("offer_id"),
        offers.c.user_id == bindparam("user_id"),
    ).with_for_update(of=offers)

    async def offer_for_update(self, user_id: str, offer_id: str) -> OfferRecord | None:
        """The offer, row-locked until the transaction ends (PostgreSQL; SQLite's write
        transaction already excludes other writers)."""
        row = (
            await self._connection.execute(
                self._FOR_UPDATE, self._scope.binds(offer_id=offer_id, user_id=user_id)
            )
        ).first()
        return None if row is None else offer_record(row)

    _CLAIM = (
        update(offers)
        .where(
            TenantScope.of(offers),
            offers.c.id == bindparam("offer_id"),
            offers.c.status == "active",
        )
        .values(status="claimed", claimed_at=bindparam("now", type_=UTCDateTime()))
        .returning(*_OUTCOME_KEY)
    )

    async def mark_claimed(self, offer_id: str, now: datetime) -> bool:
        """Claims an active offer and counts it as a success in its context; False if it was
        not active any more (a concurrent claim)."""
        result = await self._connection.execute(
            self._CLAIM, self._scope.binds(offer_id=offer_id, now=now)
        )
        claimed = [tuple(row) for row in result]
        await self.count_outcomes(now, successes=claimed)
        return len(claimed) == 1

    # A read on a request's path, built once: building it took longer than executing it.
    _ACTIVE = (
        _OF_USER.where(
            TenantScope.of(offers),
            offers.c.user_id == bindparam("user_id"),
            offers.c.status == "active",
            offers.c.expires_at > bindparam("now", type_=UTCDateTime()),
        )
    ).order_by(offers.c.created_at, offers.c.id)

    async def active_offers(self, user_id: str, now: datetime) -> list[OfferRecord]:
        rows = await self._connection.execute(
            self._ACTIVE, self._scope.binds(user_id=user_id, now=now)
        )
        return [offer_record(row) for row in rows]
