"""`journeys serve`'s analytics schedule: a run at start, then one every interval, once for
every server sharing the database.

Every worker of `journeys serve --workers N` (and every replica) runs this loop, and the
database decides which of them runs a tick: the first to take the tick lease (`job_leases`
row `analytics-tick`, held for one interval) runs the job; the others find it taken and skip
that tick. Without it the job's own lease kept runs from overlapping but not from repeating:
N loops ran the job N times an interval, one after another. The lease is released on a
graceful stop, so a restarted server runs at start as before; a server killed outright leaves
it to expire (at most one interval), and the next tick of any server runs then.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from journeys.domain import utc_now
from journeys.storage.database import Database
from journeys.usecases.analytics import AnalyticsJob

log = logging.getLogger(__name__)
TICK_LEASE = "analytics-tick"


class AnalyticsSchedule:
    def __init__(
        self,
        database: Database,
        job: AnalyticsJob,
        interval_seconds: float,
        full_every_seconds: float = 0,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        """Runs are incremental unless `full_every_seconds` (> 0) have passed since the last
        succeeded full run started (recorded in the database, so servers and restarts share
        it; the first tick on a fresh database runs full)."""
        self._db = database
        self._job = job
        self._interval = interval_seconds
        self._full_every = timedelta(seconds=full_every_seconds)
        self._clock = clock
        self._holder: str | None = None

    async def run(self) -> None:
        """Ticks until cancelled. A tick another server has taken, or one while another
        process runs the job, is skipped (that process is doing the work)."""
        while True:
            try:
                if await self._take_tick():
                    full = self._full_every > timedelta(0) and await self._job.full_run_due(
                        self._full_every
                    )
                    summary = await self._job.run(wait=False, full=full)
                    if summary is not None:
                        log.info("%s", summary.describe())
                else:
                    log.debug("analytics tick skipped: another server runs this one")
            except Exception:
                log.exception("scheduled analytics run failed; retrying at the next interval")
            await asyncio.sleep(self._interval)

    async def release(self) -> None:
        """Gives up the tick this server holds, if any (a graceful stop)."""
        if self._holder is None:
            return
        async with self._db.transaction(write=True) as tx:
            await tx.jobs.release_lease(TICK_LEASE, self._holder)
        self._holder = None

    async def _take_tick(self) -> bool:
        # A holder per tick: this server cannot take the same interval twice either.
        holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        async with self._db.transaction(write=True) as tx:
            now = self._clock()
            until = now + timedelta(seconds=self._interval)
            taken = await tx.jobs.take_lease(TICK_LEASE, holder, now, until)
        if taken:
            self._holder = holder
        return taken
