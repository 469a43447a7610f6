"""Webhook endpoints (secret key, or an operator): create, list, delete, and the log of
their deliveries. Messages to them are written by the use cases that make the changes."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from journeys.domain import (
    DeliveryRecord,
    KeyKind,
    WebhookEvent,
    WebhookRecord,
    WebhookStatus,
    utc_now,
)
from journeys.errors import InvalidArgument, WebhookLimitReached, WebhookNotFound
from journeys.storage.database import Database
from journeys.usecases import validation
from journeys.usecases.auth import Actor, tenant_of
from journeys.usecases.journeys import Clock, canonical_uuid
from journeys.webhooks import addresses, signing

MAX_WEBHOOKS = 10
DESCRIPTION_MAX = 500
DELIVERIES_LIMIT_DEFAULT = 20
DELIVERIES_LIMIT_MAX = 100
PUBLIC_URL_REQUIRED = "url must be a public http(s) address"
#: How much of an unknown event type the error message repeats.
SHOWN_NAME_MAX = 64
URL_PATTERN = "^[Hh][Tt][Tt][Pp][Ss]?://[^\\u0000-\\u0020\\u007f]+$"


@dataclass(frozen=True)
class NewWebhook:
    url: str
    events: Sequence[str]
    description: str


def event_types(names: Sequence[str]) -> tuple[WebhookEvent, ...]:
    """The subscribed types, each once, in the order given; 400 naming an unknown one."""
    if not names:
        raise InvalidArgument.field("events", "events must name at least one event type")
    known = {event.value: event for event in WebhookEvent}
    chosen: list[WebhookEvent] = []
    for name in names:
        event = known.get(name)
        if event is None:
            # Echoed short: the message travels in a gRPC trailer, which has a size limit.
            shown = repr(name) if len(name) <= SHOWN_NAME_MAX else f"{name[:SHOWN_NAME_MAX]!r}…"
            raise InvalidArgument.field(
                "events", f"events must be among {', '.join(known)}; got {shown}"
            )
        if event not in chosen:
            chosen.append(event)
    return tuple(chosen)


def deliveries_limit(limit: int | None) -> int:
    limit = DELIVERIES_LIMIT_DEFAULT if limit is None else limit
    if not 1 <= limit <= DELIVERIES_LIMIT_MAX:
        raise InvalidArgument.field("limit", f"limit must be between 1 and {DELIVERIES_LIMIT_MAX}")
    return limit


def request_schemas() -> dict[str, dict[str, validation.Schema]]:
    """The rules above as JSON Schema (see `validation.json_schemas`): POST /webhooks' body
    and the deliveries' query. Whether a URL resolves to a public address is for the
    server to find out."""
    return {
        "webhook": {
            "url": {
                "type": "string",
                "minLength": 1,
                "maxLength": addresses.MAX_URL_LENGTH,
                # What `addresses.parse` takes: http(s), any case, no space or control
                # character. Whether it resolves to a public address the server finds out.
                "pattern": URL_PATTERN,
            },
            "events": {
                "type": "array",
                "minItems": 1,
                "items": {"type": "string", "enum": [event.value for event in WebhookEvent]},
            },
            "description": {
                "type": "string",
                "maxLength": DESCRIPTION_MAX,
                "pattern": validation.NOT_NUL_PATTERN,
            },
        },
        "webhook_deliveries": {
            "limit": {"type": "integer", "minimum": 1, "maximum": DELIVERIES_LIMIT_MAX},
        },
    }


class Webhooks:
    def __init__(
        self, database: Database, *, allow_private: bool = False, clock: Clock = utc_now
    ) -> None:
        self._db = database
        self._allow_private = allow_private
        self._clock = clock

    async def create_webhook(self, actor: Actor, new: NewWebhook) -> WebhookRecord:
        """Registers the endpoint; the returned record holds its secret, which is not shown
        again."""
        now = self._clock()
        async with self._db.transaction(write=False) as tx:
            await tenant_of(tx.keys, actor, needs=KeyKind.SECRET)
        events = event_types(new.events)
        if len(new.description) > DESCRIPTION_MAX:
            raise InvalidArgument.field(
                "description", f"description must be at most {DESCRIPTION_MAX} characters"
            )
        validation.no_nul("description", new.description)
        # Resolved outside any transaction: a slow name server holds up no other writer.
        try:
            await addresses.resolve(new.url, allow_private=self._allow_private)
        except addresses.AddressRefused:
            raise InvalidArgument.field("url", PUBLIC_URL_REQUIRED) from None
        webhook = WebhookRecord(
            id=str(uuid.uuid4()),
            url=new.url,
            events=events,
            description=new.description,
            status=WebhookStatus.ENABLED,
            created_at=now,
            secret=signing.new_secret(),
        )
        async with self._db.transaction(write=True) as tx:
            store = tx.tenant(await tenant_of(tx.keys, actor, needs=KeyKind.SECRET))
            if await store.count_webhooks() >= MAX_WEBHOOKS:
                raise WebhookLimitReached(MAX_WEBHOOKS)
            await store.add_webhook(webhook)
        return webhook

    async def list_webhooks(self, actor: Actor) -> list[WebhookRecord]:
        async with self._db.transaction(write=False) as tx:
            store = tx.tenant(await tenant_of(tx.keys, actor, needs=KeyKind.SECRET))
            return await store.list_webhooks()

    async def delete_webhook(self, actor: Actor, webhook_id: str) -> WebhookRecord:
        async with self._db.transaction(write=True) as tx:
            store = tx.tenant(await tenant_of(tx.keys, actor, needs=KeyKind.SECRET))
            webhook = await store.find_webhook(canonical_uuid(webhook_id) or "")
            if webhook is None:
                raise WebhookNotFound
            await store.delete_webhook(webhook.id)
        return dataclasses.replace(webhook, status=WebhookStatus.DELETED)

    async def deliveries(
        self, actor: Actor, webhook_id: str, limit: int | None
    ) -> list[DeliveryRecord]:
        async with self._db.transaction(write=False) as tx:
            store = tx.tenant(await tenant_of(tx.keys, actor, needs=KeyKind.SECRET))
            webhook = await store.find_webhook(canonical_uuid(webhook_id) or "")
            if webhook is None:
                raise WebhookNotFound
            return await store.deliveries(webhook.id, deliveries_limit(limit))
