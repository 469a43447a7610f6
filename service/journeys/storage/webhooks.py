"""Webhooks: a tenant's endpoints, the outbox of messages to them (written in the
transaction of the change they announce), and the state of each message's delivery."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, insert, select, update

from journeys.domain import (
    Announcement,
    DeliveryRecord,
    DeliveryStatus,
    DueMessage,
    Environment,
    OfferRecord,
    StageChange,
    Tenant,
    WebhookEvent,
    WebhookRecord,
    WebhookStatus,
)
from journeys.storage.bulk import BulkInsert
from journeys.storage.connection import StoreConnection
from journeys.storage.schema import webhook_messages, webhooks
from journeys.storage.scope import COLUMNS, ScopedStore, TenantScope
from journeys.storage.types import UTCDateTime, as_utc

#: Enabled webhooks by the event types they take.
Subscriptions = Mapping[WebhookEvent, tuple[str, ...]]

_LIVE = webhooks.c.status != WebhookStatus.DELETED.value
_MESSAGES = webhook_messages.c


def new_message_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


class Webhooks(ScopedStore):
    async def add_webhook(self, webhook: WebhookRecord) -> None:
        await self._connection.execute(
            insert(webhooks),
            {
                **self._scope.columns(),
                "id": webhook.id,
                "url": webhook.url,
                "events": ",".join(webhook.events),
                "description": webhook.description,
                "secret": webhook.secret,
                "status": webhook.status.value,
                "created_at": webhook.created_at,
            },
        )

    _COUNT = select(func.count()).select_from(webhooks).where(TenantScope.of(webhooks), _LIVE)

    async def count_webhooks(self) -> int:
        """Webhooks that count towards the tenant's limit: all but the deleted."""
        return int(await self._connection.scalar(self._COUNT, self._scope.binds()) or 0)

    _LIST = (
        select(webhooks)
        .where(TenantScope.of(webhooks), _LIVE)
        .order_by(webhooks.c.created_at, webhooks.c.id)
    )

    async def list_webhooks(self) -> list[WebhookRecord]:
        rows = await self._connection.execute(self._LIST, self._scope.binds())
        return [_webhook(row) for row in rows]

    _ONE = select(webhooks).where(
        TenantScope.of(webhooks), _LIVE, webhooks.c.id == bindparam("hook")
    )

    async def find_webhook(self, webhook_id: str) -> WebhookRecord | None:
        """The webhook, unless it is unknown here or deleted."""
        row = (
            await self._connection.execute(self._ONE, self._scope.binds(hook=webhook_id))
        ).first()
        return None if row is None else _webhook(row)

    _SET_STATUS = (
        update(webhooks)
        .where(TenantScope.of(webhooks), webhooks.c.id == bindparam("hook"))
        .values(status=bindparam("new_status"))
    )
    _DROP_MESSAGES = delete(webhook_messages).where(
        TenantScope.of(webhook_messages), _MESSAGES.webhook_id == bindparam("hook")
    )

    async def delete_webhook(self, webhook_id: str) -> None:
        """Marks the webhook deleted and drops its messages, sent or not: nothing more goes
        to it, and no payload outlives the endpoint it was for."""
        binds = self._scope.binds(hook=webhook_id)
        await self._connection.execute(self._DROP_MESSAGES, binds)
        await self._connection.execute(
            self._SET_STATUS, {**binds, "new_status": WebhookStatus.DELETED.value}
        )

    _FAIL_PENDING = (
        update(webhook_messages)
        .where(
            TenantScope.of(webhook_messages),
            _MESSAGES.webhook_id == bindparam("hook"),
            _MESSAGES.status == DeliveryStatus.PENDING.value,
        )
        .values(status=DeliveryStatus.FAILED.value, next_attempt_at=None)
    )

    async def disable_webhook(self, webhook_id: str) -> None:
        """The endpoint answered 410 Gone: it gets nothing more, and what was still pending
        for it has failed."""
        binds = self._scope.binds(hook=webhook_id)
        await self._connection.execute(
            self._SET_STATUS, {**binds, "new_status": WebhookStatus.DISABLED.value}
        )
        await self._connection.execute(self._FAIL_PENDING, binds)

    _LOG = (
        select(webhook_messages)
        .where(TenantScope.of(webhook_messages), _MESSAGES.webhook_id == bindparam("hook"))
        .order_by(_MESSAGES.created_at.desc(), _MESSAGES.id.desc())
        .limit(bindparam("limit"))
    )

    async def deliveries(self, webhook_id: str, limit: int) -> list[DeliveryRecord]:
        """The webhook's latest messages, newest first."""
        rows = await self._connection.execute(
            self._LOG, self._scope.binds(hook=webhook_id, limit=limit)
        )
        return [
            DeliveryRecord(
                message_id=row.id,
                event=WebhookEvent(row.event),
                attempts=row.attempts,
                status=DeliveryStatus(row.status),
                last_response_status=row.last_response_status,
                last_attempt_at=row.last_attempt_at,
                next_attempt_at=row.next_attempt_at,
            )
            for row in rows
        ]

    _SUBSCRIBED = select(webhooks.c.id, webhooks.c.events).where(
        TenantScope.of(webhooks), webhooks.c.status == WebhookStatus.ENABLED.value
    )

    async def subscriptions(self) -> Subscriptions:
        """Who takes what, read in the transaction that announces: a webhook created or
        deleted meanwhile is seen consistently with the change."""
        rows = await self._connection.execute(self._SUBSCRIBED, self._scope.binds())
        taken: dict[WebhookEvent, list[str]] = {}
        for row in rows:
            for name in row.events.split(","):
                taken.setdefault(WebhookEvent(name), []).append(row.id)
        return {event: tuple(ids) for event, ids in taken.items()}

    _MESSAGE_COLUMNS = (
        "id",
        *COLUMNS,
        "webhook_id",
        "user_id",
        "event",
        "occurred_at",
        "subject",
        "status",
        "attempts",
        "next_attempt_at",
        "created_at",
    )

    async def announce(
        self, announcements: Sequence[Announcement], subscriptions: Subscriptions, now: datetime
    ) -> int:
        """Writes a message per announcement and webhook subscribed to its type, due now;
        the number written."""
        wanted = [
            (announcement, webhook_id)
            for announcement in announcements
            for webhook_id in subscriptions.get(announcement.event, ())
        ]
        if not wanted:
            return 0
        bulk = BulkInsert(webhook_messages, self._MESSAGE_COLUMNS, self._connection.dialect)
        stored_time, stored_json = bulk.processor("occurred_at"), bulk.processor("subject")
        due = stored_time(now)
        tenant = self._scope.values()
        await bulk.execute(
            self._connection,
            [
                (
                    new_message_id(),
                    *tenant,
                    webhook_id,
                    announcement.user_id,
                    announcement.event.value,
                    stored_time(announcement.occurred_at),
                    stored_json(_subject_json(announcement.subject)),
                    DeliveryStatus.PENDING.value,
                    0,
                    due,
                    due,
                )
                for announcement, webhook_id in wanted
            ],
        )
        self.announced()
        return len(wanted)

    def announced(self) -> None:
        """Called once messages are written; the transaction wakes the dispatcher when it
        commits (Transaction.tenant sets it)."""

    _DUE = (
        select(
            _MESSAGES.id,
            _MESSAGES.webhook_id,
            _MESSAGES.user_id,
            _MESSAGES.event,
            _MESSAGES.occurred_at,
            _MESSAGES.subject,
            _MESSAGES.attempts,
            webhooks.c.url,
            webhooks.c.secret,
        )
        .join(
            webhooks,
            and_(
                TenantScope.same_tenant(webhook_messages, webhooks),
                webhooks.c.id == _MESSAGES.webhook_id,
            ),
        )
        .where(
            TenantScope.of(webhook_messages),
            _MESSAGES.status == DeliveryStatus.PENDING.value,
            _MESSAGES.next_attempt_at <= bindparam("now", type_=UTCDateTime()),
            webhooks.c.status == WebhookStatus.ENABLED.value,
        )
        .order_by(_MESSAGES.next_attempt_at)
        .limit(bindparam("limit"))
        # PostgreSQL: replicas scanning at once each take different rows (SQLite's write
        # transaction excludes the others anyway).
        .with_for_update(of=webhook_messages, skip_locked=True)
    )
    _TAKE = (
        update(webhook_messages)
        .where(
            TenantScope.of(webhook_messages),
            _MESSAGES.id.in_(bindparam("ids", expanding=True)),
        )
        .values(
            attempts=_MESSAGES.attempts + 1,
            last_attempt_at=bindparam("now", type_=UTCDateTime()),
            next_attempt_at=bindparam("lease_until", type_=UTCDateTime()),
        )
    )

    async def take_due(
        self,
        now: datetime,
        lease_until: datetime,
        limit: int,
        in_flight: Mapping[str, int],
        per_webhook: int,
    ) -> list[DueMessage]:
        """Claims up to `limit` due messages for one attempt each, no webhook beyond
        `per_webhook` attempts at once counting those `in_flight`. The attempt is counted and
        the message is not due again before `lease_until`, when, if this attempt's result was
        never recorded (the process died), it is tried again."""
        rows = (
            await self._connection.execute(self._DUE, self._scope.binds(now=now, limit=limit))
        ).all()
        busy = dict(in_flight)
        taken = []
        for row in rows:
            if busy.get(row.webhook_id, 0) < per_webhook:
                busy[row.webhook_id] = busy.get(row.webhook_id, 0) + 1
                taken.append(row)
        if not taken:
            return []
        await self._connection.execute(
            self._TAKE,
            self._scope.binds(ids=[row.id for row in taken], now=now, lease_until=lease_until),
        )
        tenant = self._scope.tenant
        return [_due(tenant, row) for row in taken]

    _RESULT = (
        update(webhook_messages)
        .where(TenantScope.of(webhook_messages), _MESSAGES.id == bindparam("message_id"))
        .values(
            status=bindparam("new_status"),
            next_attempt_at=bindparam("next_at", type_=UTCDateTime()),
            last_response_status=bindparam("response_status"),
        )
    )

    async def record_attempt(
        self,
        message_id: str,
        status: DeliveryStatus,
        next_attempt_at: datetime | None,
        response_status: int | None,
    ) -> None:
        await self._connection.execute(
            self._RESULT,
            self._scope.binds(
                message_id=message_id,
                new_status=status.value,
                next_at=next_attempt_at,
                response_status=response_status,
            ),
        )

    _FORGET = delete(webhook_messages).where(
        TenantScope.of(webhook_messages), _MESSAGES.id.in_(bindparam("ids", expanding=True))
    )

    async def forget_messages(self, message_ids: Sequence[str]) -> None:
        await self._connection.execute(self._FORGET, self._scope.binds(ids=list(message_ids)))


class Outbox:
    """The dispatcher's reads across tenants: which tenants have messages due, and how large
    and old the backlog is (for its metrics)."""

    def __init__(self, connection: StoreConnection) -> None:
        self._connection = connection

    _DUE_TENANTS = (
        select(_MESSAGES.partner_id, _MESSAGES.environment)
        .where(
            _MESSAGES.status == DeliveryStatus.PENDING.value,
            _MESSAGES.next_attempt_at <= bindparam("now", type_=UTCDateTime()),
        )
        .distinct()
    )

    async def due_tenants(self, now: datetime) -> list[Tenant]:
        rows = await self._connection.execute(self._DUE_TENANTS, {"now": now})
        return [Tenant(row.partner_id, Environment(row.environment)) for row in rows]

    _BACKLOG = select(func.count(), func.min(_MESSAGES.created_at)).where(
        _MESSAGES.status == DeliveryStatus.PENDING.value
    )

    _FINISHED = (
        select(_MESSAGES.partner_id, _MESSAGES.environment, _MESSAGES.id)
        .where(
            _MESSAGES.status.in_([DeliveryStatus.DELIVERED.value, DeliveryStatus.FAILED.value]),
            _MESSAGES.created_at < bindparam("before", type_=UTCDateTime()),
        )
        .limit(bindparam("limit"))
    )

    async def finished_before(self, before: datetime, limit: int) -> list[tuple[Tenant, str]]:
        """Up to `limit` delivered or failed messages written before `before`, by tenant:
        the retention sweep's work (the deletes themselves are scoped to each tenant)."""
        rows = await self._connection.execute(self._FINISHED, {"before": before, "limit": limit})
        return [(Tenant(row.partner_id, Environment(row.environment)), row.id) for row in rows]

    async def backlog(self) -> tuple[int, datetime | None]:
        """Pending messages, and when the oldest of them was written."""
        count, oldest = (await self._connection.execute(self._BACKLOG)).one()
        return int(count), as_utc(oldest)


def _webhook(row: Any) -> WebhookRecord:
    return WebhookRecord(
        id=row.id,
        url=row.url,
        events=tuple(WebhookEvent(name) for name in row.events.split(",")),
        description=row.description,
        status=WebhookStatus(row.status),
        created_at=row.created_at,
        secret=row.secret,
    )


def _subject_json(subject: OfferRecord | StageChange) -> dict[str, Any]:
    # A copy of the instance's fields (one dict copy, not a walk over `fields()`): this runs
    # for every message the analytics job writes.
    stored = dict(subject.__dict__)
    for name in _TIMES[type(subject)]:
        value = stored[name]
        if value is not None:
            stored[name] = value.isoformat()
    return stored


_TIMES = {OfferRecord: ("expires_at", "claimed_at"), StageChange: ("at",)}


def _subject(event: WebhookEvent, stored: dict[str, Any]) -> OfferRecord | StageChange:
    kind = StageChange if event is WebhookEvent.STAGE_CHANGED else OfferRecord
    values = dict(stored)
    for name in _TIMES[kind]:
        if values.get(name) is not None:
            values[name] = datetime.fromisoformat(values[name])
    return kind(**values)


def _due(tenant: Tenant, row: Any) -> DueMessage:
    event = WebhookEvent(row.event)
    return DueMessage(
        tenant=tenant,
        message_id=row.id,
        webhook_id=row.webhook_id,
        url=row.url,
        secret=row.secret,
        attempt=row.attempts + 1,
        announcement=Announcement(
            event, row.user_id, row.occurred_at, _subject(event, row.subject)
        ),
    )
