"""The API's operations, one method each, independent of any transport."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from journeys import validation
from journeys.domain import (
    OfferRecord,
    ProfileMetrics,
    Tenant,
    UserChanges,
    UserView,
    utc_now,
)
from journeys.errors import UserNotFound
from journeys.storage.database import Database
from journeys.usecases.auth import authenticate

Clock = Callable[[], datetime]


class Journeys:
    def __init__(self, database: Database, clock: Clock = utc_now) -> None:
        self._db = database
        self._clock = clock

    async def authenticate(self, api_key: str | None) -> Tenant:
        async with self._db.transaction(write=False) as tx:
            return await authenticate(tx.keys, api_key)

    async def track_user(self, api_key: str | None, raw: UserChanges) -> UserView:
        async with self._db.transaction(write=True) as tx:
            tenant = await authenticate(tx.keys, api_key)
            changes = validation.user_changes(raw)
            store = tx.tenant(tenant)
            await store.upsert_user(changes, self._clock())
            record = await store.get_user(changes.external_id)
        assert record is not None, "upserted row must be readable in its transaction"
        return UserView(record, ProfileMetrics())

    async def get_user(self, api_key: str | None, external_id: str) -> UserView:
        async with self._db.transaction(write=False) as tx:
            tenant = await authenticate(tx.keys, api_key)
            record = await tx.tenant(tenant).get_user(external_id)
        if record is None:
            raise UserNotFound
        return UserView(record, ProfileMetrics())

    async def get_offers(self, api_key: str | None, external_id: str) -> list[OfferRecord]:
        async with self._db.transaction(write=False) as tx:
            tenant = await authenticate(tx.keys, api_key)
            store = tx.tenant(tenant)
            record = await store.get_user(external_id)
            if record is None:
                raise UserNotFound
            return await store.active_offers(record.id, self._clock())
