"""The dispatcher inside `journeys serve`: takes due messages from the outbox, posts each
signed to its webhook, and records what came back. Woken when a commit in this process
wrote messages; polls as the fallback (messages written by other processes, retries)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx

from journeys import observability
from journeys.domain import DeliveryStatus, DueMessage, Tenant, utc_now
from journeys.storage.database import Database
from journeys.webhooks import addresses, payloads, signing
from journeys.webhooks.schedule import DEFAULT_RETRY_SCHEDULE, verdict

log = logging.getLogger(__name__)
USER_AGENT = "journeys-webhooks/1"
#: How often the delivery log is trimmed to the retention, and how many rows at a time.
SWEEP_SECONDS = 3600.0
SWEEP_BATCH = 1000


@dataclass(frozen=True)
class DispatchSettings:
    allow_private: bool = False
    retry_schedule: Sequence[float] = DEFAULT_RETRY_SCHEDULE
    timeout_seconds: float = 15.0
    poll_seconds: float = 1.0
    #: Attempts to one webhook at once: a slow endpoint holds only its own slots.
    per_webhook: int = 4
    #: Messages of one webhook taken from the outbox at once (its attempts queue for its
    #: slots), so the outbox is read once per batch rather than once per message.
    taken_per_webhook: int = 16
    #: Messages taken at once, over all webhooks.
    in_flight: int = 256
    #: An attempt whose result was never recorded is made again after this long: longer
    #: than a taken batch of one webhook can need (16 / 4 times the 15 s timeout), so a live
    #: attempt is never doubled.
    lease_seconds: float = 120.0
    #: Delivered and failed messages (the delivery log) are kept this long.
    retention: timedelta = timedelta(days=30)


class Dispatcher:
    def __init__(
        self,
        database: Database,
        settings: DispatchSettings,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._db = database
        self._settings = settings
        self._clock = clock
        self._wake = asyncio.Event()
        self._busy: dict[str, int] = {}
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._backlog_reported = 0.0
        self._next_sweep = 0.0
        #: Webhooks this process saw answer 410: what it had already taken for them is dropped
        #: (disabling them marked it failed).
        self._gone: set[str] = set()
        database.on_announced(self.wake)

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Delivers until cancelled; attempts in flight then are left to their lease."""
        settings = self._settings
        async with httpx.AsyncClient(
            timeout=settings.timeout_seconds,
            follow_redirects=False,
            trust_env=False,
            limits=httpx.Limits(max_connections=settings.in_flight),
        ) as client:
            try:
                while True:
                    self._wake.clear()
                    try:
                        await self.dispatch_due(client)
                        if time.monotonic() - self._backlog_reported >= settings.poll_seconds:
                            await self._report_backlog()
                            self._backlog_reported = time.monotonic()
                        if time.monotonic() >= self._next_sweep:
                            await self.forget_old_messages()
                            self._next_sweep = time.monotonic() + SWEEP_SECONDS
                    except Exception:
                        log.exception("webhook dispatch failed; retrying at the next poll")
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), settings.poll_seconds)
            finally:
                for task in self._tasks:
                    task.cancel()
                await asyncio.gather(*self._tasks, return_exceptions=True)

    async def dispatch_due(self, client: httpx.AsyncClient) -> int:
        """Starts an attempt for every due message there is room for; the number started."""
        now = self._clock()
        async with self._db.transaction(write=False) as tx:
            tenants = await tx.outbox.due_tenants(now)
        started = 0
        for tenant in tenants:
            room = self._settings.in_flight - len(self._tasks)
            if room <= 0:
                break
            for message in await self._take(tenant, now, room):
                self._start(client, message)
                started += 1
        return started

    async def forget_old_messages(self) -> int:
        """Deletes delivered and failed messages older than the retention, a batch at a
        time, each batch in one transaction per tenant; how many went."""
        before = self._clock() - self._settings.retention
        forgotten = 0
        while True:
            async with self._db.transaction(write=False) as tx:
                found = await tx.outbox.finished_before(before, SWEEP_BATCH)
            by_tenant: dict[Tenant, list[str]] = {}
            for tenant, message_id in found:
                by_tenant.setdefault(tenant, []).append(message_id)
            for tenant, message_ids in by_tenant.items():
                async with self._db.transaction(write=True) as tx:
                    await tx.tenant(tenant).forget_messages(message_ids)
            forgotten += len(found)
            if len(found) < SWEEP_BATCH:
                return forgotten
            await asyncio.sleep(0)

    async def settled(self) -> None:
        """Waits for every attempt in flight to be made and recorded."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _take(self, tenant: Tenant, now: datetime, room: int) -> list[DueMessage]:
        lease_until = now + timedelta(seconds=self._settings.lease_seconds)
        async with self._db.transaction(write=True) as tx:
            return await tx.tenant(tenant).take_due(
                now, lease_until, room, self._busy, self._settings.taken_per_webhook
            )

    def _start(self, client: httpx.AsyncClient, message: DueMessage) -> None:
        webhook = message.webhook_id
        self._busy[webhook] = self._busy.get(webhook, 0) + 1
        slots = self._slots.setdefault(webhook, asyncio.Semaphore(self._settings.per_webhook))
        task = asyncio.create_task(self._attempt(client, message, slots))
        self._tasks.add(task)

        def done(finished: asyncio.Task[None]) -> None:
            self._tasks.discard(finished)
            left = self._busy.get(webhook, 1) - 1
            if left:
                self._busy[webhook] = left
            else:
                self._busy.pop(webhook, None)
                self._slots.pop(webhook, None)
            # Take more once half of the webhook's batch is done (or the last slot is free).
            if left <= self._settings.taken_per_webhook // 2:
                self._wake.set()

        task.add_done_callback(done)

    async def _attempt(
        self, client: httpx.AsyncClient, message: DueMessage, slots: asyncio.Semaphore
    ) -> None:
        try:
            async with slots:
                if message.webhook_id in self._gone:
                    return
                response_status = await self._post(client, message)
            result = verdict(
                message.attempt, response_status, self._settings.retry_schedule, self._clock()
            )
            async with self._db.transaction(write=True) as tx:
                store = tx.tenant(message.tenant)
                await store.record_attempt(
                    message.message_id, result.status, result.next_attempt_at, response_status
                )
                if result.disable:
                    await store.disable_webhook(message.webhook_id)
                    self._gone.add(message.webhook_id)
        except Exception:
            log.exception("webhook attempt %s failed to record", message.message_id)
            return
        outcome = "disabled" if result.disable else _OUTCOMES[result.status]
        observability.webhook_attempted(outcome)

    async def _post(self, client: httpx.AsyncClient, message: DueMessage) -> int | None:
        """The HTTP status the webhook answered; None for no answer (refused address,
        connection failure, timeout)."""
        try:
            target = await addresses.resolve(
                message.url, allow_private=self._settings.allow_private
            )
        except addresses.AddressRefused as reason:
            log.warning("webhook %s not delivered: %s", message.webhook_id, reason)
            return None
        body = payloads.body(message.announcement)
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "host": target.host_header,
            **signing.headers(message.secret, message.message_id, int(time.time()), body),
        }
        try:
            response = await client.post(
                target.url,
                content=body,
                headers=headers,
                extensions={"sni_hostname": target.host},
            )
        except httpx.HTTPError as problem:
            log.info("webhook %s attempt failed: %r", message.webhook_id, problem)
            return None
        return response.status_code

    async def _report_backlog(self) -> None:
        async with self._db.transaction(write=False) as tx:
            depth, oldest = await tx.outbox.backlog()
        age = 0.0 if oldest is None else max(0.0, (utc_now() - oldest).total_seconds())
        observability.webhook_backlog(depth, age)


_OUTCOMES = {
    DeliveryStatus.DELIVERED: "delivered",
    DeliveryStatus.PENDING: "retrying",
    DeliveryStatus.FAILED: "failed",
}
