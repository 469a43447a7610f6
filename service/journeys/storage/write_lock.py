"""Taking SQLite's write lock without stalling the event loop.

A write transaction starts with `BEGIN IMMEDIATE`, so it holds the database's one write lock
from its first statement. Transactions run the standard driver on the event loop
(storage/connection.py) and never yield while they hold the lock, so the writers of one process
never wait for each other; those of other processes do: the workers of `journeys serve
--workers N`, a `journeys analytics run` from cron. Left to SQLite's `busy_timeout`, that wait
sleeps inside the driver, on the loop: every call of the process, reads included, stood still
until the other process committed (two workers: reads x1.9, writes x1.0 with p99 x2-3).

So the lock is asked for with `busy_timeout` 0 and, while another process holds it, asked again
after an `asyncio.sleep` that lets the loop serve everything else meanwhile: 0.5 ms at first,
doubling to at most 20 ms (SQLite's own busy handler sleeps 1-100 ms), for at most the same
10 s as before, after which the error is the one the driver raised before (`database is
locked`). The connection's `busy_timeout` stays 10 s for everything else (a reader in WAL mode
waits only in rare moments such as a checkpoint's WAL reset, and briefly).

The other way, funnelling every write through one process, was not taken: a write is a whole
use case (validation, several statements, the outbox), so the funnel would carry every write
call's work to one process over a pipe and back, making that process the writers' bottleneck
and adding a hand-off to each write for a wait that only arises under contention. Retrying
costs nothing when the lock is free (one attempt, as before) and a few microseconds per retry
when it is not.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

from sqlalchemy.exc import DBAPIError

#: Write-lock waits give up after this long, as `busy_timeout` did.
SQLITE_BUSY_TIMEOUT_MS = 10_000
_BEGIN = "BEGIN IMMEDIATE"
_FIRST_PAUSE = 0.0005
_LONGEST_PAUSE = 0.02


async def begin_immediate(driver_connection: Any) -> None:
    """Runs `BEGIN IMMEDIATE` on a `sqlite3.Connection` (autocommit mode), waiting off the loop
    while another process holds the write lock; raises `sqlite3.OperationalError` (`database is
    locked`, wrapped by SQLAlchemy as any statement's error is) when it is still held after
    `SQLITE_BUSY_TIMEOUT_MS`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SQLITE_BUSY_TIMEOUT_MS / 1000
    pause = _FIRST_PAUSE
    driver_connection.execute("PRAGMA busy_timeout=0")
    try:
        while True:
            try:
                driver_connection.execute(_BEGIN)
                return
            except sqlite3.OperationalError as error:
                if error.sqlite_errorcode != sqlite3.SQLITE_BUSY or loop.time() >= deadline:
                    raise DBAPIError.instance(_BEGIN, (), error, sqlite3.Error) from error
            await asyncio.sleep(min(pause, max(0.0, deadline - loop.time())))
            pause = min(pause * 2, _LONGEST_PAUSE)
    finally:
        driver_connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
