"""The delivery log is kept for the retention (30 days) and then forgotten, delivered and
failed messages alike; pending ones stay until they are delivered or fail."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
from journeys.domain import Environment, UserChanges, utc_now
from journeys.storage.database import Database
from journeys.usecases import Journeys
from journeys.usecases.analytics import AnalyticsJob
from journeys.usecases.auth import Caller, Operator
from journeys.usecases.webhooks import NewWebhook, Webhooks
from journeys.webhooks.dispatcher import Dispatcher, DispatchSettings

from scripts.stack import migrate, new_key, sql
from tests.webhooks.receiver import receiving

STATUSES = "SELECT status, count(*) FROM webhook_messages GROUP BY status ORDER BY status"


def test_finished_messages_are_forgotten_after_the_retention(database_url: str) -> None:
    migrate(database_url)
    key = Caller(new_key(database_url, "retained"))
    operator = Operator("retained", Environment.TEST)
    now = utc_now()
    settings = DispatchSettings(allow_private=True)

    with receiving() as receiver:

        async def deliver() -> None:
            async with Database(database_url) as database:
                webhooks = Webhooks(database, allow_private=True)
                for url in (receiver.url, "http://127.0.0.1:9/closed"):
                    await webhooks.create_webhook(operator, NewWebhook(url, ["offer.created"], ""))
                await Journeys(database).track_user(key, UserChanges(external_id="kept"))
                await AnalyticsJob(database).run(now)
                dispatcher = Dispatcher(database, settings)
                async with httpx.AsyncClient() as client:
                    await dispatcher.dispatch_due(client)
                    await dispatcher.settled()

        asyncio.run(deliver())
    statuses = dict(sql(database_url, STATUSES))
    assert statuses["delivered"] == statuses["pending"] > 0, statuses

    def sweep(days: int) -> int:
        async def run() -> int:
            async with Database(database_url) as database:
                later = Dispatcher(database, settings, clock=lambda: now + timedelta(days=days))
                return await later.forget_old_messages()

        return asyncio.run(run())

    assert sweep(29) == 0
    assert dict(sql(database_url, STATUSES)) == statuses
    assert sweep(31) == statuses["delivered"]
    assert dict(sql(database_url, STATUSES)) == {"pending": statuses["pending"]}
