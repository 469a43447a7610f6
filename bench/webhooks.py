"""The webhook scenarios of `make bench`, on a twin of the seeded population (a copy taken
before any analytics run, so both see the same first run):

- The analytics job's cost with one webhook subscribed to every event type (its outbox
  written in every chunk's transaction), against the same job on the original without any.
- Delivery throughput: the twin's server posting those messages to a receiver on 127.0.0.1
  (which answers at once), in messages delivered per second over a fixed window.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from journeys.domain import Environment, WebhookEvent
from journeys.storage.database import Database
from journeys.usecases.auth import Operator
from journeys.usecases.webhooks import NewWebhook, Webhooks

from bench.drivers import asyncpg_dsn, sqlite_path
from bench.report import Row, job_ratio_row

#: How long deliveries are counted for: long enough for a steady rate, short for the run.
WINDOW_SECONDS = 20.0


def subscribe(url: str, partner: str, receiver_url: str) -> None:
    """One webhook of the partner's test environment, taking every event type."""

    async def create() -> None:
        async with Database(url) as database:
            await Webhooks(database, allow_private=True).create_webhook(
                Operator(partner, Environment.TEST),
                NewWebhook(receiver_url, [event.value for event in WebhookEvent], "bench"),
            )

    asyncio.run(create())


def outbox_size(name: str, url: str) -> int:
    if name == "sqlite":
        with sqlite3.connect(sqlite_path(url)) as connection:
            return int(connection.execute("SELECT count(*) FROM webhook_messages").fetchone()[0])

    async def count() -> int:
        connection = await asyncpg.connect(asyncpg_dsn(url))
        try:
            return int(await connection.fetchval("SELECT count(*) FROM webhook_messages"))
        finally:
            await connection.close()

    return asyncio.run(count())


def job_rows(
    name: str, population: str, without: dict[str, Any], with_webhook: dict[str, Any], messages: int
) -> list[Row]:
    return [
        job_ratio_row(
            "Analytics job, 1 webhook",
            population,
            name,
            with_webhook["job_seconds"],
            (without["job_seconds"], "with no webhook"),
            None,
            f"{messages:,} messages written",
            {"with_webhook": with_webhook, "without": without, "messages": messages},
        )
    ]


def delivery_row(name: str, delivered: int, seconds: float, pending: int) -> Row:
    rate = delivered / seconds
    return Row(
        scenario="Webhook deliveries",
        call="posts to a local receiver",
        engine=name,
        measured=f"{rate:,.0f} msg/s",
        baseline="a receiver answering 200 at once",
        ratio=rate,
        ratio_label=f"{rate:,.0f}/s",
        target="reported",
        met=None,
        extra=f"{delivered:,} in {seconds:.0f} s, {pending:,} left",
        details={"delivered": delivered, "seconds": seconds, "pending_after": pending},
    )


class Receiver:
    """A minimal HTTP/1.1 server on 127.0.0.1 answering every request 200 with keep-alive,
    counting them: cheap enough that the dispatcher is what is measured."""

    def __init__(self) -> None:
        self.count = 0
        self.first_at: float | None = None
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bench"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                if self.first_at is None:
                    self.first_at = time.monotonic()
                self.count += 1
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        server = loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        loop.run_forever()
        server.close()
        loop.run_until_complete(server.wait_closed())
        loop.close()

    @contextmanager
    def running(self) -> Iterator[Receiver]:
        thread = threading.Thread(target=self._run, daemon=True)
        thread.start()
        self._ready.wait()
        try:
            yield self
        finally:
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._loop.stop)
            thread.join(timeout=5)


def measure_deliveries(receiver: Receiver, total: int) -> tuple[int, float]:
    """Deliveries counted over `WINDOW_SECONDS` from the first one (or until all `total`
    arrived): (delivered, seconds)."""
    deadline = time.monotonic() + 60
    while receiver.first_at is None:
        if time.monotonic() > deadline:
            raise RuntimeError("no webhook delivery arrived within 60 s")
        time.sleep(0.01)
    start_count, started = receiver.count, time.monotonic()
    while time.monotonic() - started < WINDOW_SECONDS and receiver.count < total:
        time.sleep(0.05)
    return receiver.count - start_count, time.monotonic() - started
