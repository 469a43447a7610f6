"""The privacy scenarios of `make bench`: erasure of users with 1,000 events each, and the
export of one user with 100,000 events, through Envoy, each against the database driver doing
the same rows' work itself in the same run.

- Erasure: `DELETE /users/{externalId}` against the driver's own deletes of the same tables'
  rows of another user of the same size, in one transaction.
- Export: `GET /users/{externalId}/export`, streamed and parsed by the client, against the
  driver reading the same user's events into Python; and the server's resident memory while
  it streams, against before.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import grpc
import httpx
from gamifyhost.userjourneys.v1 import event_pb2
from gamifyhost.userjourneys.v1 import user_journeys_service_pb2 as pb
from gamifyhost.userjourneys.v1 import user_journeys_service_pb2_grpc as pb_grpc
from sqlalchemy.engine import make_url

from bench.drivers import asyncpg_dsn, sqlite_path
from bench.procfs import rss_mb
from bench.report import Row

ERASED_EVENTS = 1_000
ERASURES = 5
EXPORTED_EVENTS = 100_000
BATCH = 500
#: Every table holding a user's rows, by the column that names the user.
USER_TABLES = (
    ("webhook_messages", "user_id"),
    ("offers", "user_id"),
    ("events", "user_id"),
    ("message_ids", "user_id"),
    ("user_daily_activity", "user_id"),
    ("user_campaigns", "user_id"),
    ("stage_transitions", "user_id"),
    ("users", "id"),
)


def privacy_rows(
    name: str, url: str, grpc_target: str, base_url: str, key: str, secret: str, pid: int
) -> list[Row]:
    """The erasure and export rows for one engine's running server (`pid`)."""
    run = uuid.uuid4().hex[:8]
    erased = [f"erase-{run}-{n}" for n in range(ERASURES)]
    raw = [f"raw-{run}-{n}" for n in range(ERASURES)]
    exported = f"export-{run}"
    with grpc.insecure_channel(grpc_target) as channel:
        stub = pb_grpc.UserJourneysServiceStub(channel)
        for external_id in erased + raw:
            _track(stub, key, external_id, ERASED_EVENTS)
        _track(stub, key, exported, EXPORTED_EVENTS)

    with httpx.Client(base_url=base_url, timeout=600) as http:
        api_ms = []
        for external_id in erased:
            started = time.perf_counter()
            response = http.delete(
                f"/v1/user-journeys/users/{external_id}", headers={"X-API-Key": secret}
            )
            api_ms.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                raise RuntimeError(f"erasure on {name}: {response.status_code} {response.text}")
        raw_ms = [_raw_erase(url, external_id) * 1000 for external_id in raw]

        before_mb = rss_mb(pid)
        with _peak_rss(pid) as peak:
            started = time.perf_counter()
            size, events = _export(http, secret, exported)
            export_seconds = time.perf_counter() - started
    if events != EXPORTED_EVENTS:
        raise RuntimeError(f"export on {name}: {events} events, not {EXPORTED_EVENTS}")
    raw_read = _raw_read(url, exported)
    growth = max(peak() - before_mb, 0.0)

    erase_ratio = statistics.median(api_ms) / statistics.median(raw_ms)
    export_ratio = export_seconds / raw_read
    details = {
        "erasure_ms": api_ms,
        "raw_erasure_ms": raw_ms,
        "export_seconds": export_seconds,
        "export_bytes": size,
        "raw_read_seconds": raw_read,
        "rss_before_mb": before_mb,
        "rss_peak_mb": peak(),
    }
    return [
        Row(
            scenario="Erasure (REST)",
            call=f"user with {ERASED_EVENTS:,} events",
            engine=name,
            measured=f"{statistics.median(api_ms):.1f} ms (median of {ERASURES})",
            baseline=f"{statistics.median(raw_ms):.1f} ms raw deletes, one transaction",
            ratio=erase_ratio,
            ratio_label=f"{erase_ratio:.1f}x",
            target="<= 3x",
            met=erase_ratio <= 3,
            extra=f"max {max(api_ms):.1f} ms",
            details=details,
        ),
        Row(
            scenario="Export (REST, streamed)",
            call=f"user with {EXPORTED_EVENTS:,} events",
            engine=name,
            measured=f"{export_seconds:.2f} s, {size / 1e6:.0f} MB",
            baseline=f"{raw_read:.2f} s raw read of the events",
            ratio=export_ratio,
            ratio_label=f"{export_ratio:.1f}x",
            target="<= 5x",
            met=export_ratio <= 5,
            extra=f"{EXPORTED_EVENTS / export_seconds:,.0f} events/s",
            details=details,
        ),
        Row(
            scenario="Export server RSS",
            call=f"user with {EXPORTED_EVENTS:,} events",
            engine=name,
            measured=f"peak {peak():.0f} MB (+{growth:.1f} MB)",
            baseline=f"{before_mb:.0f} MB before",
            ratio=growth,
            ratio_label=f"+{growth:.1f} MB",
            target="<= +64 MB",
            met=growth <= 64,
            extra=f"document {size / 1e6:.0f} MB",
            details=details,
        ),
    ]


def _track(stub: pb_grpc.UserJourneysServiceStub, key: str, external_id: str, count: int) -> None:
    start = datetime.now(UTC) - timedelta(days=29)
    step = timedelta(days=29) / count
    for first in range(0, count, BATCH):
        events = []
        for n in range(first, min(first + BATCH, count)):
            item = event_pb2.EventInput(
                external_id=external_id,
                category="GAME_PLAY",
                event_type="spin",
                points=n % 50,
                message_id=f"{external_id}-{n}",
                occurred_at=(start + step * n).strftime("%Y-%m-%dT%H:%M:%SZ"),
            )
            item.metadata.update({"won": n % 3 == 0})
            events.append(item)
        answer = stub.TrackEvents(
            pb.TrackEventsRequest(events=events), metadata=(("x-api-key", key),), timeout=120
        )
        if answer.accepted != len(events):
            raise RuntimeError(f"seeding {external_id}: {answer.rejected} rejected")


def _export(http: httpx.Client, secret: str, external_id: str) -> tuple[int, int]:
    """The export's size in bytes and its number of events, read as a client would."""
    with http.stream(
        "GET", f"/v1/user-journeys/users/{external_id}/export", headers={"X-API-Key": secret}
    ) as response:
        body = b"".join(response.iter_bytes())
    if response.status_code != 200:
        raise RuntimeError(f"export: {response.status_code} {body[:300]!r}")
    return len(body), len(json.loads(body)["data"]["events"])


def _raw_erase(url: str, external_id: str) -> float:
    """Seconds for the driver to delete the user's rows of every table in one transaction."""
    if make_url(url).get_backend_name() == "sqlite":
        connection = sqlite3.connect(sqlite_path(url), isolation_level=None)
        try:
            owner = connection.execute(
                "SELECT partner_id, environment, id FROM users WHERE external_id = ?",
                (external_id,),
            ).fetchone()
            started = time.perf_counter()
            connection.execute("BEGIN IMMEDIATE")
            for table, column in USER_TABLES:
                connection.execute(_delete(table, column, "?", "?", "?"), owner)
            connection.execute("COMMIT")
            return time.perf_counter() - started
        finally:
            connection.close()

    async def erase() -> float:
        connection = await asyncpg.connect(asyncpg_dsn(url))
        try:
            owner = await connection.fetchrow(
                "SELECT partner_id, environment, id FROM users WHERE external_id = $1",
                external_id,
            )
            started = time.perf_counter()
            async with connection.transaction():
                for table, column in USER_TABLES:
                    await connection.execute(_delete(table, column, "$1", "$2", "$3"), *owner)
            return time.perf_counter() - started
        finally:
            await connection.close()

    return asyncio.run(erase())


def _delete(table: str, column: str, partner: str, environment: str, user: str) -> str:
    # By the tenant and the user, as the service's statements are: the indexes lead with both.
    return (
        f"DELETE FROM {table} WHERE partner_id = {partner} AND environment = {environment} "
        f"AND {column} = {user}"
    )


def _raw_read(url: str, external_id: str) -> float:
    """Seconds for the driver to read every event of the user, oldest first, into Python."""
    query = (
        "SELECT e.* FROM events e JOIN users u ON u.partner_id = e.partner_id "
        "AND u.environment = e.environment AND u.id = e.user_id "
        "WHERE u.external_id = {} ORDER BY e.occurred_at, e.seq"
    )
    if make_url(url).get_backend_name() == "sqlite":
        connection = sqlite3.connect(sqlite_path(url))
        try:
            started = time.perf_counter()
            rows = connection.execute(query.format("?"), (external_id,)).fetchall()
            seconds = time.perf_counter() - started
        finally:
            connection.close()
    else:

        async def read() -> tuple[float, list[Any]]:
            connection = await asyncpg.connect(asyncpg_dsn(url))
            try:
                started = time.perf_counter()
                found = await connection.fetch(query.format("$1"), external_id)
                return time.perf_counter() - started, found
            finally:
                await connection.close()

        seconds, rows = asyncio.run(read())
    if len(rows) != EXPORTED_EVENTS:
        raise RuntimeError(f"raw read: {len(rows)} events")
    return seconds


@contextmanager
def _peak_rss(pid: int) -> Iterator[Callable[[], float]]:
    """The highest resident memory of `pid` seen while the block runs (every 10 ms)."""
    peak = [rss_mb(pid)]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.01):
            peak[0] = max(peak[0], rss_mb(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield lambda: peak[0]
    finally:
        done.set()
        sampler.join()
