"""The API's operations, one method each, independent of any transport."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from journeys.domain import (
    Announcement,
    Category,
    EventInput,
    EventRecord,
    JsonObject,
    NewEvent,
    OfferRecord,
    StoredEvent,
    SuppressedExternalIds,
    UserChanges,
    UserRecord,
    WebhookEvent,
    utc_now,
)
from journeys.errors import (
    ExternalIdErased,
    InvalidArgument,
    OfferExpired,
    OfferNotActive,
    OfferNotFound,
    UserNotFound,
)
from journeys.storage.database import Database
from journeys.storage.tenant_store import TenantStore
from journeys.usecases import catalogue, profiles, validation
from journeys.usecases.auth import Caller, admit, authenticate, presented_digest
from journeys.usecases.profiles import UserView

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class ItemResult:
    index: int
    status: str  # accepted | duplicate | rejected
    event_id: str = ""
    error: str = ""


@dataclass(frozen=True)
class BatchOutcome:
    results: tuple[ItemResult, ...]

    def count(self, status: str) -> int:
        return sum(1 for result in self.results if result.status == status)


@dataclass(frozen=True)
class TimelinePage:
    events: tuple[EventRecord, ...]
    page: int
    limit: int
    total: int


class Journeys:
    def __init__(self, database: Database, clock: Clock = utc_now) -> None:
        self._db = database
        self._clock = clock

    async def track_user(self, caller: Caller, raw: UserChanges) -> UserView:
        now = self._clock()
        async with self._db.transaction(write=True) as tx:
            tenant = await authenticate(tx.keys, caller)
            changes = validation.user_changes(raw)
            store = tx.tenant(tenant)
            try:
                await store.upsert_user(changes, now)
            except SuppressedExternalIds:
                raise ExternalIdErased from None
            record = await _existing(store, changes.external_id)
            activity = await store.activity(record, now)
        return profiles.view(record, activity, now)

    async def get_user(self, caller: Caller, external_id: str) -> UserView:
        now = self._clock()
        found = await self._db.lookups.profile(presented_digest(caller), external_id, now)
        admit(caller, found.key)
        if found.user is None or found.activity is None:
            raise UserNotFound
        return profiles.view(found.user, found.activity, now, advise=True, journey=found.journey)

    async def get_offers(self, caller: Caller, external_id: str) -> list[OfferRecord]:
        now = self._clock()
        found = await self._db.lookups.offers(presented_digest(caller), external_id, now)
        admit(caller, found.key)
        if not found.user_found:
            raise UserNotFound
        offers = found.offers
        if len(offers) < 2:
            return offers
        priority = catalogue.priorities(found.catalogue_override)
        # Stable: offers of one priority stay in creation order, as storage returns them.
        return sorted(offers, key=lambda offer: priority.get(offer.offer_type, len(priority)))

    async def claim_offer(self, caller: Caller, external_id: str, offer_id: str) -> OfferRecord:
        """Claims an active offer and records an `offer_claimed` event, in one transaction;
        of two simultaneous claims exactly one succeeds."""
        now = self._clock()
        async with self._db.transaction(write=True) as tx:
            store = tx.tenant(await authenticate(tx.keys, caller))
            canonical_id = canonical_uuid(offer_id)
            # The profile before the offer, as an erasure takes them: else each would wait
            # for the other.
            user = await store.lock_user(external_id)
            if canonical_id is None or user is None:
                raise OfferNotFound
            offer = await store.offer_for_update(user.id, canonical_id)
            if offer is None:
                raise OfferNotFound
            if offer.status == "claimed":
                raise OfferNotActive
            if offer.status == "expired" or offer.expires_at <= now:
                raise OfferExpired
            if not await store.mark_claimed(offer.id, now):
                raise OfferNotActive
            await store.record_events(
                [
                    NewEvent(
                        external_id=user.external_id,
                        category=Category.POINTS,
                        event_type="offer_claimed",
                        points=offer.points_value,
                        occurred_at=now,
                        message_id=None,
                        metadata={"offerId": offer.id, "offerType": offer.offer_type},
                    )
                ],
                now,
            )
            claimed = replace(offer, status="claimed", claimed_at=now)
            announced = Announcement(WebhookEvent.OFFER_CLAIMED, user.id, now, claimed)
            await store.announce([announced], await store.subscriptions(), now)
        return claimed

    async def track_event(self, caller: Caller, raw: EventInput) -> StoredEvent:
        """Stores one event; a repeated `messageId` returns the original event (`is_new`
        false)."""
        now = self._clock()
        async with self._db.transaction(write=True) as tx:
            store = tx.tenant(await authenticate(tx.keys, caller))
            event = validation.new_event(raw, now)
            try:
                (stored,) = await store.record_events([event], now)
            except SuppressedExternalIds:
                raise ExternalIdErased from None
            return stored

    async def track_events(
        self, caller: Caller, raw: Sequence[EventInput | JsonObject]
    ) -> BatchOutcome:
        """Stores every valid event of a batch in one transaction and reports every item.
        An item is typed (gRPC) or a JSON object as the partner sent it (REST), whose field
        types are checked here, item by item."""
        now = self._clock()
        async with self._db.transaction(write=True) as tx:
            store = tx.tenant(await authenticate(tx.keys, caller))
            validation.batch_size(len(raw))
            results: list[ItemResult | None] = [None] * len(raw)
            valid: list[tuple[int, NewEvent]] = []
            for index, item in enumerate(raw):
                try:
                    typed = (
                        item if isinstance(item, EventInput) else validation.event_from_json(item)
                    )
                    valid.append((index, validation.new_event(typed, now)))
                except InvalidArgument as error:
                    results[index] = _rejected(index, error)
            while valid:
                try:
                    stored = await store.record_events([event for _, event in valid], now)
                except SuppressedExternalIds as refused:
                    # Nothing of the batch was written: it goes again without those items.
                    for index, event in valid:
                        if event.external_id in refused.external_ids:
                            results[index] = _rejected(index, ExternalIdErased())
                    valid = [item for item in valid if results[item[0]] is None]
                    continue
                for (index, _), outcome in zip(valid, stored, strict=True):
                    status = "accepted" if outcome.is_new else "duplicate"
                    results[index] = ItemResult(index, status, event_id=outcome.event.id)
                break
        return BatchOutcome(tuple(result for result in results if result is not None))

    async def get_timeline(
        self, caller: Caller, external_id: str, page: int | None, limit: int | None
    ) -> TimelinePage:
        async with self._db.transaction(write=False) as tx:
            store = tx.tenant(await authenticate(tx.keys, caller))
            page_number, page_size = validation.page_and_limit(page, limit)
            user = await _existing(store, external_id)
            events = await store.timeline(user.id, page_number, page_size)
        return TimelinePage(tuple(events), page_number, page_size, user.total_events)


def _rejected(index: int, error: InvalidArgument) -> ItemResult:
    """An item's error names its field and rule, without the request-level prefix."""
    description = error.violation.description if error.violation else error.message
    return ItemResult(index, "rejected", error=description)


async def detailed_view(store: TenantStore, external_id: str, now: datetime) -> UserView:
    """The profile as GET /users/{externalId} shows it: with advice and recent journey."""
    record = await _existing(store, external_id)
    activity = await store.activity(record, now)
    journey = tuple(await store.journey(record.id))
    return profiles.view(record, activity, now, advise=True, journey=journey)


def canonical_uuid(value: str) -> str | None:
    """An id we print as a UUID, as we print it; None for anything that is not one."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


async def _existing(store: TenantStore, external_id: str) -> UserRecord:
    record = await store.get_user(external_id)
    if record is None:
        raise UserNotFound
    return record
