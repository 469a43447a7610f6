"""`make bench` / `make bench-quick`: every figure is a ratio to a baseline measured in the same
run, next to the absolute numbers.

    python -m bench [--quick] [--engines sqlite,postgresql]

1. gRPC unary (GetOffers, GetUser, TrackEvent) straight to the grpc.aio server, against a no-op
   grpc.aio server (bench/noop_server.py) driven the same way. Targets per process
   (`UNARY_TARGETS`): SQLite GetOffers >= 45 %, GetUser and TrackEvent >= 30 %; PostgreSQL
   GetOffers >= 25 %, GetUser and TrackEvent >= 15 % of the no-op's req/s.
2. The same calls as REST through Envoy, against Envoy in front of the no-op server, with the
   same targets.
3. Batch ingest (TrackEvents, 500 events a call, 10 % duplicates) against the driver's own
   executemany of the same rows in one transaction. Target >= 50 % on both engines, and
   >= 20k events/s on SQLite.
4. The analytics job over a generated population against one raw GROUP BY user_id over the
   same events table. Target <= 3x; peak RSS flat and <= 1 GB at 1M users.
5. Erasure of users with 1,000 events and the export of one with 100,000, through Envoy,
   against the driver's own deletes and read (bench/operations.py).
6. Offers (bench/learning.py): the analytics job with learning on against off, on two copies of
   the population (target <= 1.1x), and the offer simulator shortened to 100 users.
7. Workers (bench/workers.py): GetOffers and GetUser over gRPC at `journeys serve --workers 2`
   against `--workers 1`, and two no-op servers on one port against one. Target >= 1.8x.

The unary calls include a page of 100 segment members (ListSegmentMembers, secret key).

Writes bench/results/latest.{md,json} and a timestamped copy of each (not committed).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import grpc
from gamifyhost.userjourneys.v1 import event_pb2
from gamifyhost.userjourneys.v1 import segments_service_pb2 as segments_pb
from gamifyhost.userjourneys.v1 import user_journeys_service_pb2 as pb
from journeys.domain import Environment, KeyKind
from journeys.storage.bulk import bind_processor
from journeys.storage.schema import EVENT_COLUMNS, events
from sqlalchemy.dialects import sqlite as sqlite_dialect

from bench import h2load, learning, webhooks, workers
from bench.drivers import asyncpg_dsn, sqlite_path, twin
from bench.noop_server import READY_LINE as NOOP_READY
from bench.operations import privacy_rows
from bench.procfs import peak_rss_mb, rss_mb
from bench.report import Row, write_report
from scripts.pgcluster import Cluster, bindir
from scripts.stack import (
    BIN,
    Stack,
    free_port,
    migrate,
    new_key,
    running_stack,
    sql,
    start_journeys,
)
from scripts.throwaway_cluster import throwaway_cluster

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
SERVICE = "gamifyhost.userjourneys.v1.UserJourneysService"
SEGMENTS_SERVICE = "gamifyhost.userjourneys.v1.SegmentsService"
PARTNER = "seed"
#: The limiter runs on every call, but one benchmark key must not be throttled to the
#: production default of 100 req/s.
UNTHROTTLED = {"JOURNEYS_RATE_LIMIT": "1000000000", "JOURNEYS_RATE_BURST": "1000000000"}
BATCH_SIZE = 500
DUPLICATE_SHARE = 0.10
RAW_SCAN_SQL = (
    "SELECT user_id, count(*), "
    "sum(CASE WHEN category = 'GAME_PLAY' THEN 1 ELSE 0 END), "
    "sum(CASE WHEN points > 0 THEN points ELSE 0 END), max(occurred_at) "
    "FROM events GROUP BY user_id"
)


@dataclass(frozen=True)
class Mode:
    name: str
    users: int
    events: int
    load_seconds: float
    warmup_seconds: float
    ingest_batches: int

    @property
    def population(self) -> str:
        return f"{_count(self.users)} users / {_count(self.events)} events"


QUICK = Mode("quick", 100_000, 1_000_000, 1.5, 0.5, 40)
FULL = Mode("full", 1_000_000, 10_000_000, 10.0, 2.0, 200)


@dataclass
class Engine:
    """One database under test and the `journeys serve` running on it."""

    name: str
    url: str
    key: str = ""
    secret_key: str = ""
    stack: Stack | None = None
    postmaster: int | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    #: (reader, writer) of the unary calls, chosen once: no job runs while they are loaded.
    picked_users: tuple[str, str] | None = None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small population, short loads")
    parser.add_argument(
        "--engines",
        default="sqlite,postgresql",
        help="comma-separated; postgresql is skipped when it is not installed",
    )
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated scenarios: grpc,rest,workers,ingest,analytics,privacy,webhooks,"
        "offers",
    )
    parser.add_argument("--users", type=int, help="override the mode's population (smoke runs)")
    parser.add_argument("--events", type=int, help="override the mode's population (smoke runs)")
    args = parser.parse_args(argv)
    mode = QUICK if args.quick else FULL
    if args.users or args.events:
        mode = dataclasses.replace(
            mode, users=args.users or mode.users, events=args.events or mode.events
        )
    engines = [name for name in args.engines.split(",") if name]
    only = {name for name in args.only.split(",") if name}
    if "postgresql" in engines and bindir() is None:
        print("PostgreSQL is not installed: benchmarking SQLite only", file=sys.stderr)
        engines.remove("postgresql")
    started = time.monotonic()
    load_at_start = [round(value, 2) for value in os.getloadavg()]
    rows: list[Row] = []
    with (
        contextlib.ExitStack() as cleanup,
        tempfile.TemporaryDirectory(prefix="journeys-bench-") as scratch_dir,
    ):
        scratch = Path(scratch_dir)
        databases = []
        for name in engines:
            if name == "sqlite":
                url = f"sqlite+aiosqlite:///{scratch / 'bench.db'}"
                databases.append(Engine(name, url))
            else:
                cluster = cleanup.enter_context(throwaway_cluster())
                engine = Engine(name, cluster.create_database("bench"))
                engine.postmaster = _postmaster_pid(cluster)
                databases.append(engine)

        # Populations (and their keys) are set up side by side (not measured against a target,
        # only reported).
        def populate(engine: Engine) -> None:
            _seed(engine, mode)
            _settle(engine)
            engine.key = new_key(engine.url, PARTNER)
            engine.secret_key = new_key(engine.url, PARTNER, Environment.TEST, KeyKind.SECRET)

        with ThreadPoolExecutor(max_workers=len(databases) or 1) as pool:
            list(pool.map(populate, databases))
        with_webhooks = not only or "webhooks" in only
        with_offers = not only or "offers" in only
        # Copies of the population before any run, for the job with a webhook subscribed and
        # for the job with learning on and off.
        twins = (
            {engine.name: twin(engine.name, engine.url) for engine in databases}
            if with_webhooks
            else {}
        )
        learning_twins = (
            {engine.name: learning.twins(engine.name, engine.url) for engine in databases}
            if with_offers
            else {}
        )
        first_jobs = {}
        for engine in databases:
            # Always run: it makes the offers GetOffers reads.
            first_jobs[engine.name] = job = _run_analytics_job(engine)
            if not only or "analytics" in only:
                rows += _analytics(engine, mode, job)
            _settle(engine)
        for engine in databases:
            if with_webhooks:
                rows += _webhook_rows(engine, twins[engine.name], mode, first_jobs[engine.name])
            if with_offers:
                _log(f"[{engine.name}] analytics job with learning on and off")
                rows += learning.job_rows(
                    engine.name, mode.population, *learning_twins[engine.name]
                )
                _log(f"  {rows[-1].scenario} {rows[-1].engine}: {rows[-1].ratio_label}")
        if with_offers:
            _log(f"offer simulator, {learning.SIMULATED_USERS} users (SQLite)")
            rows += learning.simulator_rows()
        for engine in databases:
            engine.stack = cleanup.enter_context(
                running_stack(engine.url, env_overrides=UNTHROTTLED)
            )
        if not only or only & {"grpc", "rest", "workers"}:
            rows += _unary(databases, mode, scratch, cleanup, only)
        if not only or "ingest" in only:
            for engine in databases:
                rows += _ingest(engine, mode)
        if not only or "privacy" in only:
            for engine in databases:
                assert engine.stack is not None
                _log(f"[{engine.name}] erasure and export")
                rows += privacy_rows(
                    engine.name,
                    engine.url,
                    engine.stack.direct_target,
                    engine.stack.base_url,
                    engine.key,
                    engine.secret_key,
                    engine.stack.process.pid,
                )
                for row in rows[-3:]:
                    _log(f"  {row.scenario} {row.engine}: {row.measured} = {row.ratio_label}")
        for engine in databases:
            assert engine.stack is not None
            engine.facts["server_peak_rss_mb"] = peak_rss_mb(engine.stack.process.pid)
    meta = {
        "mode": mode.name,
        "population": mode.population,
        "engines": engines,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - started, 1),
        "machine": {**_machine(), "load_average_at_start": load_at_start},
        "facts": {engine.name: engine.facts for engine in databases},
        "command": "make bench" if mode.name == "full" else "make bench-quick",
    }
    table = write_report(rows, meta, RESULTS)
    print(table)
    return 0


# ---------------------------------------------------------------------------------------------
# Population and the analytics job


def _seed(engine: Engine, mode: Mode) -> None:
    _log(f"[{engine.name}] migrating and seeding {mode.population} (bulk path)")
    migrate(engine.url)
    started = time.monotonic()
    result = subprocess.run(
        [
            str(BIN / "journeys"),
            "dev",
            "seed-data",
            "--bulk",
            f"--users={mode.users}",
            f"--events={mode.events}",
            f"--partner={PARTNER}",
        ],
        env={**os.environ, "JOURNEYS_DATABASE_URL": engine.url},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"seeding failed:\n{result.stderr}")
    seconds = time.monotonic() - started
    engine.facts["seed_seconds"] = round(seconds, 1)
    engine.facts["seed_events_per_second"] = round(mode.events / seconds)
    _log(f"[{engine.name}] seeded in {seconds:.1f}s ({mode.events / seconds:,.0f} events/s)")


def _settle(engine: Engine) -> None:
    """PostgreSQL: what autovacuum does soon after a bulk write (the seeding, the job's
    offers and segments), done now: left to itself it takes a core during the next
    measurements (the first unary loads ran at a tenth of their rate beside it)."""
    if engine.name != "postgresql":
        return
    started = time.monotonic()

    async def vacuum() -> None:
        connection = await asyncpg.connect(asyncpg_dsn(engine.url))
        try:
            await connection.execute("VACUUM (ANALYZE)")
        finally:
            await connection.close()

    asyncio.run(vacuum())
    _log(f"[{engine.name}] VACUUM (ANALYZE) in {time.monotonic() - started:.1f}s")


def _analytics(engine: Engine, mode: Mode, job: dict[str, Any]) -> list[Row]:
    """The job's first run over the population (`job`), against a raw aggregation."""
    raw_seconds, groups = _raw_scan(engine)
    _log(f"[{engine.name}] raw GROUP BY user_id: {raw_seconds:.2f}s ({groups} groups)")
    ratio = job["job_seconds"] / raw_seconds
    _log(
        f"[{engine.name}] analytics job: {job['job_seconds']:.2f}s, peak RSS "
        f"{job['peak_rss_mb']:.0f} MB"
    )
    details = {**job, "raw_scan_seconds": raw_seconds, "raw_groups": groups}
    return [
        Row(
            scenario="Analytics job",
            call=mode.population,
            engine=engine.name,
            measured=f"{job['job_seconds']:.1f} s",
            baseline=f"{raw_seconds:.2f} s raw GROUP BY",
            ratio=ratio,
            ratio_label=f"{ratio:.1f}x",
            target="<= 3x",
            met=ratio <= 3,
            extra=f"{job['users_per_second']:,.0f} users/s",
            details=details,
        ),
        Row(
            scenario="Analytics peak RSS",
            call=mode.population,
            engine=engine.name,
            measured=f"{job['peak_rss_mb']:.0f} MB",
            baseline=f"{job['rss_first_quarter_mb']:.0f} MB in the first quarter",
            ratio=job["peak_rss_mb"] / max(job["rss_first_quarter_mb"], 1),
            ratio_label=f"{job['peak_rss_mb'] / max(job['rss_first_quarter_mb'], 1):.2f}x",
            target="flat (<= 1.25x), <= 1 GB",
            met=job["peak_rss_mb"] <= 1024
            and job["peak_rss_mb"] <= 1.25 * job["rss_first_quarter_mb"],
            extra="",
            details=details,
        ),
    ]


def _webhook_rows(engine: Engine, twin_url: str, mode: Mode, without: dict[str, Any]) -> list[Row]:
    """The first run again on the twin with one webhook taking everything, then its server
    delivering what that run wrote."""
    _log(f"[{engine.name}] analytics job with one webhook subscribed, then its deliveries")
    receiver = webhooks.Receiver()
    with receiver.running():
        webhooks.subscribe(twin_url, PARTNER, receiver.url)
        twin = Engine(engine.name, twin_url)
        with_webhook = _run_analytics_job(twin)
        messages = webhooks.outbox_size(engine.name, twin_url)
        rows = webhooks.job_rows(engine.name, mode.population, without, with_webhook, messages)
        _settle(twin)
        with running_stack(twin_url, env_overrides={"JOURNEYS_WEBHOOK_ALLOW_PRIVATE": "true"}):
            delivered, seconds = webhooks.measure_deliveries(receiver, messages)
            pending = messages - receiver.count
    rows.append(webhooks.delivery_row(engine.name, delivered, seconds, pending))
    for row in rows:
        _log(f"  {row.scenario} {row.engine}: {row.measured} = {row.ratio_label}")
    return rows


def _raw_scan(engine: Engine) -> tuple[float, int]:
    """The baseline: one aggregation over every event, each group fetched into Python. Run
    twice; the second (warm cache, like the job after it) counts."""
    timings = []
    groups = 0
    for _ in range(2):
        started = time.monotonic()
        if engine.name == "sqlite":
            with contextlib.closing(sqlite3.connect(sqlite_path(engine.url))) as db:
                groups = len(db.execute(RAW_SCAN_SQL).fetchall())
        else:

            async def scan() -> int:
                connection = await asyncpg.connect(asyncpg_dsn(engine.url))
                try:
                    return len(await connection.fetch(RAW_SCAN_SQL))
                finally:
                    await connection.close()

            groups = asyncio.run(scan())
        timings.append(time.monotonic() - started)
    return timings[-1], groups


def _run_analytics_job(engine: Engine) -> dict[str, Any]:
    """`journeys analytics run` as its own process: its time (from its summary line), and its
    resident memory sampled every 50 ms (peak from the kernel's high-water mark)."""
    command = [str(BIN / "journeys"), "analytics", "run"]
    env = {**os.environ, "JOURNEYS_DATABASE_URL": engine.url}
    started = time.monotonic()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    samples: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            rss = rss_mb(process.pid)
            if rss:
                samples.append(rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = process.communicate()
    done.set()
    sampler.join()
    wall = time.monotonic() - started
    if process.returncode != 0:
        raise RuntimeError(f"analytics run failed:\n{err.decode()}")
    summary = out.decode().strip().splitlines()[-1]
    # "... N users scanned, ... in 12.3s"
    users = int(summary.split(" users scanned")[0].rsplit(" ", 1)[1])
    offers = int(summary.split(" offers created")[0].rsplit(" ", 1)[1])
    seconds = float(summary.rsplit(" in ", 1)[1].rstrip("s"))
    quarter = max(1, len(samples) // 4)
    peak = max(samples) if samples else 0.0
    return {
        "summary": summary,
        "job_seconds": seconds,
        "process_seconds": round(wall, 2),
        "users_scanned": users,
        "offers_created": offers,
        "users_per_second": users / max(seconds, 1e-9),
        "peak_rss_mb": peak,
        "rss_first_quarter_mb": max(samples[:quarter]) if samples else 0.0,
        "rss_samples": len(samples),
    }


# ---------------------------------------------------------------------------------------------
# Unary calls: gRPC direct and REST through Envoy


@dataclass(frozen=True)
class Call:
    name: str
    grpc_body: bytes
    rest_method: str
    rest_path: str
    rest_body: bytes | None
    response_type: Any
    service: str = SERVICE
    #: Called with the partner's secret key (a partner operation).
    secret: bool = False

    def key(self, engine: Engine) -> str:
        return engine.secret_key if self.secret else engine.key


def _calls(reader: str, writer: str) -> list[Call]:
    event = event_pb2.EventInput(
        external_id=writer, category="GAME_PLAY", event_type="spin", points=10
    )
    event.metadata.update({"won": True})
    rest_event = {
        "externalId": writer,
        "category": "GAME_PLAY",
        "eventType": "spin",
        "points": 10,
        "metadata": {"won": True},
    }
    return [
        Call(
            "GetOffers",
            pb.GetOffersRequest(external_id=reader).SerializeToString(),
            "GET",
            f"/v1/user-journeys/users/{reader}/offers",
            None,
            pb.GetOffersResponse,
        ),
        Call(
            "GetUser",
            pb.GetUserRequest(external_id=reader).SerializeToString(),
            "GET",
            f"/v1/user-journeys/users/{reader}",
            None,
            pb.GetUserResponse,
        ),
        Call(
            "ListSegmentMembers",
            segments_pb.ListSegmentMembersRequest(limit=100).SerializeToString(),
            "GET",
            "/v1/user-journeys/users?limit=100",
            None,
            segments_pb.ListSegmentMembersResponse,
            service=SEGMENTS_SERVICE,
            secret=True,
        ),
        Call(
            "TrackEvent",
            pb.TrackEventRequest(event=event).SerializeToString(),
            "POST",
            "/v1/user-journeys/events",
            json.dumps(rest_event).encode(),
            pb.TrackEventResponse,
        ),
    ]


def _pick_users(engine: Engine) -> tuple[str, str]:
    """A reader with three active offers (a `regular` user where there is one) and a writer
    of another archetype, so the reader's responses stay the same during the run."""
    if engine.picked_users is None:
        engine.picked_users = _find_users(engine)
    return engine.picked_users


def _find_users(engine: Engine) -> tuple[str, str]:
    found = sql(
        engine.url,
        "SELECT u.external_id FROM users u JOIN offers o ON o.user_id = u.id "
        "WHERE o.status = 'active' AND u.external_id LIKE 'regular-%' "
        "GROUP BY u.external_id ORDER BY count(*) DESC, u.external_id LIMIT 1",
    )
    if not found:
        found = sql(engine.url, "SELECT external_id FROM users ORDER BY external_id LIMIT 1")
    writer = sql(
        engine.url,
        "SELECT external_id FROM users WHERE external_id LIKE 'casual-%' "
        "ORDER BY external_id LIMIT 1",
    )
    return str(found[0][0]), str((writer or found)[0][0])


def _unary(
    engines: list[Engine],
    mode: Mode,
    scratch: Path,
    cleanup: contextlib.ExitStack,
    only: set[str],
) -> list[Row]:
    reader, writer = _pick_users(engines[0])
    for engine in engines[1:]:
        assert _pick_users(engine)[0], "every engine has the same population"
    calls = _calls(reader, writer)
    # Check every call answers for real before loading it (gRPC errors are HTTP 200s), and
    # keep the answers: the no-op server returns them, so both serve the same shapes.
    canned: dict[str, str] = {}
    expected_frame: dict[tuple[str, str], int] = {}
    for engine in engines:
        reader_here, writer_here = _pick_users(engine)
        here = _calls(reader_here, writer_here)
        assert engine.stack is not None
        for call in here:
            response = _grpc_call(engine.stack.direct_target, call.key(engine), call)
            expected_frame[(engine.name, call.name)] = 5 + len(response)
            canned.setdefault(call.name, base64.b64encode(response).decode())
            status, body = _http(engine.stack.base_url, call.key(engine), call)
            if status != 200 or json.loads(body).get("status") != "success":
                raise RuntimeError(f"REST {call.name} on {engine.name}: {status} {body[:300]!r}")
    canned["TrackEvents"] = ""
    canned_file = scratch / "canned.json"
    canned_file.write_text(json.dumps(canned))
    noop = cleanup.enter_context(_noop_stack(canned_file))
    for call in calls:
        response = _grpc_call(noop.grpc_target, "pk_test_" + "0" * 32, call)
        expected_frame[("noop", call.name)] = 5 + len(response)
        status, _ = _http(noop.base_url, "pk_test_" + "0" * 32, call)
        assert status == 200, f"REST {call.name} through Envoy to the no-op server: {status}"

    rows: list[Row] = []
    for path in ("grpc", "rest"):
        if only and path not in only:
            continue
        for call in calls:
            baseline = _drive(
                path,
                call,
                "noop",
                noop.grpc_target,
                noop.base_url,
                "pk_test_x",
                mode,
                noop.watch(),
                expected_frame,
            )
            for engine in engines:
                assert engine.stack is not None
                reader_here, writer_here = _pick_users(engine)
                call_here = next(c for c in _calls(reader_here, writer_here) if c.name == call.name)
                before = _event_count(engine) if call.name == "TrackEvent" else 0
                measured = _drive(
                    path,
                    call_here,
                    engine.name,
                    engine.stack.direct_target,
                    engine.stack.base_url,
                    call_here.key(engine),
                    mode,
                    _watch_stack(engine),
                    expected_frame,
                )
                if call.name == "TrackEvent":
                    stored = _event_count(engine) - before
                    measured.checked += f"; {stored} events stored"
                    # Warm-up requests store events too; never fewer than the counted ones.
                    if stored < measured.succeeded:
                        raise RuntimeError(
                            f"{engine.name}: {measured.succeeded} TrackEvent calls succeeded "
                            f"but only {stored} events were stored"
                        )
                ratio = measured.rps / baseline.rps
                goal = UNARY_TARGETS.get((engine.name, call.name))
                rows.append(
                    Row(
                        scenario="gRPC direct" if path == "grpc" else "REST via Envoy",
                        call=call.name,
                        engine=engine.name,
                        measured=f"{measured.rps:,.0f} req/s, p99 {measured.p99_ms:.1f} ms",
                        baseline=f"{baseline.rps:,.0f} req/s, p99 {baseline.p99_ms:.1f} ms (no-op)",
                        ratio=ratio,
                        ratio_label=f"{ratio:.0%}",
                        target=f">= {goal:.0%}" if goal is not None else "",
                        met=None if goal is None else ratio >= goal,
                        extra=_cpu_note(measured, baseline),
                        details={"measured": measured.as_json(), "baseline": baseline.as_json()},
                    )
                )
                _log(
                    f"  {rows[-1].scenario} {call.name} {engine.name}: {rows[-1].measured} "
                    f"= {ratio:.0%} of {baseline.rps:,.0f}; {rows[-1].extra}"
                )
    if not only or "workers" in only:
        rows += _workers(engines, calls, canned_file, mode, noop, expected_frame)
    return rows


def _workers(
    engines: list[Engine],
    calls: list[Call],
    canned_file: Path,
    mode: Mode,
    noop: NoopStack,
    expected_frame: dict[tuple[str, str], int],
) -> list[Row]:
    """Reads over gRPC at one process and at `workers.WORKERS` (bench/workers.py)."""
    rows: list[Row] = []
    reads = [call for call in calls if call.name in workers.READS]

    def grpc_load(call: Call, name: str, target: str, key: str, watch: dict[str, int]) -> Any:
        return _drive("grpc", call, name, target, "", key, mode, watch, expected_frame)

    _log(f"workers 1 vs {workers.WORKERS}: no-op servers")
    with workers.noop_servers(canned_file, workers.WORKERS, REPO) as (target, pids):
        for call in reads:
            one = grpc_load(call, "noop", noop.grpc_target, "pk_test_x", noop.watch())
            many = grpc_load(call, "noop", target, "pk_test_x", workers.watch(pids, None))
            rows.append(workers.row(call.name, "noop", one, many))
            _log(f"  {call.name} noop: {rows[-1].measured} = {rows[-1].ratio_label}")
    for engine in engines:
        assert engine.stack is not None
        reader, writer = _pick_users(engine)
        here = {call.name: call for call in _calls(reader, writer)}
        args = ("--workers", str(workers.WORKERS), "--no-gateway")
        with running_stack(engine.url, *args, env_overrides=UNTHROTTLED) as stack:
            pids = workers.worker_pids(stack.process.pid)
            for read in reads:
                call, key = here[read.name], here[read.name].key(engine)
                one = grpc_load(
                    call, engine.name, engine.stack.direct_target, key, _watch_stack(engine)
                )
                many = grpc_load(
                    call,
                    engine.name,
                    stack.direct_target,
                    key,
                    workers.watch(pids, engine.postmaster),
                )
                rows.append(workers.row(call.name, engine.name, one, many))
                _log(f"  {call.name} {engine.name}: {rows[-1].measured} = {rows[-1].ratio_label}")
    return rows


#: Each call's least share of the no-op server's req/s, per engine (one process).
UNARY_TARGETS = {
    ("sqlite", "GetOffers"): 0.45,
    ("sqlite", "GetUser"): 0.30,
    ("sqlite", "TrackEvent"): 0.30,
    ("postgresql", "GetOffers"): 0.25,
    ("postgresql", "GetUser"): 0.15,
    ("postgresql", "TrackEvent"): 0.15,
}


def _cpu_note(measured: h2load.Measured, baseline: h2load.Measured) -> str:
    server = " + ".join(f"{name} {cpu:.0%}" for name, cpu in measured.server_cpu.items())
    return (
        f"CPU: {server}; h2load {measured.loadgen_cpu:.0%} "
        f"(no-op run: h2load {baseline.loadgen_cpu:.0%})"
    )


def _drive(
    path: str,
    call: Call,
    target_name: str,
    grpc_target: str,
    base_url: str,
    key: str,
    mode: Mode,
    watch: dict[str, int],
    expected_frame: dict[tuple[str, str], int],
) -> h2load.Measured:
    if path == "grpc":
        load = h2load.Load(
            url=f"http://{grpc_target}/{call.service}/{call.name}",
            headers=(
                ("content-type", "application/grpc"),
                ("te", "trailers"),
                ("x-api-key", key),
            ),
            body=h2load.grpc_frame(call.grpc_body),
            seconds=mode.load_seconds,
            warmup_seconds=mode.warmup_seconds,
        )
    else:
        headers = [("x-api-key", key)]
        if call.rest_body is not None:
            headers.append(("content-type", "application/json"))
        load = h2load.Load(
            url=base_url + call.rest_path,
            headers=tuple(headers),
            body=call.rest_body,
            http1=True,
            seconds=mode.load_seconds,
            warmup_seconds=mode.warmup_seconds,
        )
    measured = h2load.run(load, watch)
    if measured.succeeded == 0 or measured.failed:
        raise RuntimeError(f"{path} {call.name} on {target_name}: {measured}")
    if path == "grpc":
        frame = expected_frame[(target_name, call.name)]
        answered = measured.data_bytes / frame
        # A failed call (gRPC error, HTTP 200) would carry no message: a whole frame missing.
        if answered < measured.succeeded * 0.999:
            raise RuntimeError(
                f"{call.name} on {target_name}: {measured.succeeded} HTTP successes but only "
                f"{answered:.0f} responses' worth of data: gRPC errors"
            )
        measured.checked = f"{answered:.0f} responses of {frame} bytes for {measured.succeeded}"
    else:
        if measured.status_2xx != measured.succeeded:
            raise RuntimeError(f"REST {call.name} on {target_name}: non-2xx answers")
        measured.checked = f"{measured.status_2xx} 2xx"
    return measured


def _grpc_call(target: str, key: str, call: Call) -> bytes:
    with grpc.insecure_channel(target) as channel:
        method: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
            f"/{call.service}/{call.name}"
        )
        response: bytes = method(call.grpc_body, metadata=(("x-api-key", key),), timeout=10)
    call.response_type.FromString(response)  # parses
    return response


def _http(base_url: str, key: str, call: Call) -> tuple[int, bytes]:
    request = urllib.request.Request(
        base_url + call.rest_path,
        data=call.rest_body,
        method=call.rest_method,
        headers={"X-API-Key": key, "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), bytes(error.read())


@dataclass
class NoopStack:
    process: subprocess.Popen[str]
    gateway: subprocess.Popen[str]
    grpc_port: int
    http_port: int

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def watch(self) -> dict[str, int]:
        return {"server": self.process.pid, "envoy": _only_child(self.gateway.pid)}


@contextlib.contextmanager
def _noop_stack(canned: Path) -> Iterator[NoopStack]:
    """The no-op grpc.aio server, and the service's own gateway (`journeys gateway`) in front
    of it."""
    grpc_port, http_port, admin_port = free_port(), free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.noop_server", f"--port={grpc_port}", f"--canned={canned}"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if NOOP_READY not in line:
        process.kill()
        raise RuntimeError(f"the no-op server did not start: {line}{process.stdout.read()}")
    env = {
        **os.environ,
        "JOURNEYS_HTTP_PORT": str(http_port),
        "JOURNEYS_ADMIN_PORT": str(admin_port),
        "JOURNEYS_LOG_FORMAT": "text",
    }
    gateway = start_journeys(["gateway", f"--upstream=127.0.0.1:{grpc_port}"], env)
    try:
        yield NoopStack(process, gateway, grpc_port, http_port)
    finally:
        for child in (gateway, process):
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def _only_child(pid: int) -> int:
    """The one child process of `pid` (Envoy, under `journeys gateway`)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    if len(children) != 1:
        raise RuntimeError(f"expected one child of {pid}, found {children}")
    return int(children[0])


def _watch_stack(engine: Engine) -> dict[str, int]:
    assert engine.stack is not None
    pid = engine.stack.process.pid
    watch = {"server": pid}
    for child in h2load.children(pid):
        if h2load.process_name(child) == "envoy":
            watch["envoy"] = child
    if engine.postmaster is not None:
        watch["postgres"] = engine.postmaster
    return watch


def _event_count(engine: Engine) -> int:
    return int(sql(engine.url, "SELECT count(*) FROM events")[0][0])


# ---------------------------------------------------------------------------------------------
# Batch ingest


def _ingest(engine: Engine, mode: Mode) -> list[Row]:
    assert engine.stack is not None
    rng = random.Random(3)
    external_ids = [
        row[0] for row in sql(engine.url, "SELECT external_id FROM users ORDER BY external_id")
    ]
    now = datetime.now(UTC).replace(microsecond=0)
    warmup = 2
    batches = _batches(engine.name, rng, external_ids, now, mode.ingest_batches + warmup)
    requests = [pb.TrackEventsRequest(events=batch).SerializeToString() for batch in batches]
    before = _event_count(engine)
    outcome = asyncio.run(_send_batches(engine.stack.direct_target, engine.key, requests, warmup))
    stored = _event_count(engine) - before
    timed = batches[warmup:]
    submitted = sum(len(batch) for batch in timed)
    rate = submitted / outcome["seconds"]
    if outcome["rejected"] or outcome["accepted"] + outcome["warmup_accepted"] != stored:
        raise RuntimeError(f"ingest on {engine.name}: {outcome}, {stored} stored")
    # The baseline: the same rows, inserted by the driver's executemany in one transaction.
    unique = _unique_events(timed)
    raw_seconds = _raw_insert(engine, unique, now)
    raw_rate = len(unique) / raw_seconds
    ratio = rate / raw_rate
    floor = 20_000 if engine.name == "sqlite" else 0
    details = {
        **outcome,
        "events_submitted": submitted,
        "events_per_second": rate,
        "raw_rows": len(unique),
        "raw_seconds": raw_seconds,
        "raw_events_per_second": raw_rate,
    }
    _log(f"[{engine.name}] ingest {rate:,.0f} events/s vs raw {raw_rate:,.0f}/s = {ratio:.0%}")
    return [
        Row(
            scenario="Batch ingest",
            call=f"TrackEvents x{BATCH_SIZE}, {DUPLICATE_SHARE:.0%} dup",
            engine=engine.name,
            measured=f"{rate:,.0f} events/s",
            baseline=f"{raw_rate:,.0f} rows/s raw executemany",
            ratio=ratio,
            ratio_label=f"{ratio:.0%}",
            target=">= 50% of raw" + (f", >= {floor // 1000}k/s" if floor else ""),
            met=ratio >= 0.5 and rate >= floor,
            extra=f"p99 call {outcome['p99_ms']:.0f} ms; {outcome['duplicates']} duplicates",
            details=details,
        )
    ]


def _batches(
    engine: str, rng: random.Random, external_ids: list[str], now: datetime, count: int
) -> list[list[event_pb2.EventInput]]:
    """Each batch: 450 new events for 100 users of the population, plus 50 repeats of the
    previous batch's messageIds (the first batch repeats its own)."""
    fresh = round(BATCH_SIZE * (1 - DUPLICATE_SHARE))
    batches: list[list[event_pb2.EventInput]] = []
    for n in range(count):
        users = rng.sample(external_ids, 100)
        batch = []
        for i in range(fresh):
            category = rng.choices(
                ["GAME_PLAY", "POINTS", "CAMPAIGN", "CUSTOM"], cum_weights=[70, 85, 90, 100]
            )[0]
            item = event_pb2.EventInput(
                external_id=users[i % len(users)],
                category=category,
                event_type="play" if category == "GAME_PLAY" else category.lower(),
                points=rng.randint(-20, 120) if category != "CUSTOM" else 0,
                occurred_at=(now - timedelta(seconds=rng.randint(0, 30 * 86400))).strftime(
                    "%Y-%m-%dT%H:%M:%SZ"
                ),
                message_id=f"bench-{engine}-{n}-{i}",
            )
            if category == "GAME_PLAY":
                item.metadata.update({"won": rng.random() < 0.35})
            elif category == "CAMPAIGN":
                item.metadata.update({"campaignId": f"campaign-{rng.randint(1, 20)}"})
            batch.append(item)
        source = batches[-1] if batches else batch
        batch += [source[i] for i in rng.sample(range(len(source)), BATCH_SIZE - fresh)]
        batches.append(batch)
    return batches


async def _send_batches(
    target: str, key: str, requests: list[bytes], warmup: int, in_flight: int = 2
) -> dict[str, Any]:
    """Pre-serialized requests, `in_flight` calls at a time; the first `warmup` are untimed."""
    totals = {"accepted": 0, "duplicates": 0, "rejected": 0, "warmup_accepted": 0}
    latencies: list[float] = []
    async with grpc.aio.insecure_channel(target) as channel:
        method: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
            f"/{SERVICE}/TrackEvents"
        )
        metadata = (("x-api-key", key),)

        async def send(body: bytes, timed: bool) -> None:
            started = time.monotonic()
            answer = pb.TrackEventsResponse.FromString(
                await method(body, metadata=metadata, timeout=60)
            )
            if not timed:
                totals["warmup_accepted"] += answer.accepted
            else:
                latencies.append(time.monotonic() - started)
                totals["accepted"] += answer.accepted
                totals["duplicates"] += answer.duplicates
                totals["rejected"] += answer.rejected

        for body in requests[:warmup]:
            await send(body, timed=False)
        queue = list(requests[warmup:])
        started = time.monotonic()

        async def worker() -> None:
            while queue:
                await send(queue.pop(0), timed=True)

        await asyncio.gather(*(worker() for _ in range(in_flight)))
        seconds = time.monotonic() - started
    latencies.sort()
    return {
        **totals,
        "seconds": seconds,
        "calls": len(latencies),
        "p99_ms": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1000,
    }


def _unique_events(batches: list[list[event_pb2.EventInput]]) -> list[event_pb2.EventInput]:
    seen: set[str] = set()
    unique = []
    for batch in batches:
        for item in batch:
            if item.message_id not in seen:
                seen.add(item.message_id)
                unique.append(item)
    return unique


def _raw_insert(engine: Engine, items: list[event_pb2.EventInput], now: datetime) -> float:
    """Inserts the rows the service stored for `items` (fresh ids and messageIds) with the
    driver's executemany in one transaction; returns its seconds, then deletes them again."""
    users = dict(sql(engine.url, "SELECT external_id, id FROM users"))
    partner_id, environment = sql(engine.url, "SELECT partner_id, environment FROM users LIMIT 1")[
        0
    ]
    parsed = [
        (
            item,
            datetime.strptime(item.occurred_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC),
            json.dumps(_struct_dict(item)),
        )
        for item in items
    ]
    columns = ", ".join(EVENT_COLUMNS)
    # The values as each driver takes them: SQLite stores naive UTC text, asyncpg datetimes.
    stored_time: Callable[[datetime], Any] = (
        bind_processor(events, "occurred_at", sqlite_dialect.dialect())
        if engine.name == "sqlite"
        else lambda moment: moment
    )
    rows = [
        (
            f"raw-{n}",
            partner_id,
            environment,
            users[item.external_id],
            item.category,
            item.event_type,
            item.points,
            stored_time(occurred),
            f"raw-{item.message_id}",
            metadata,
            stored_time(now),
        )
        for n, (item, occurred, metadata) in enumerate(parsed)
    ]
    if engine.name == "sqlite":
        with contextlib.closing(
            sqlite3.connect(sqlite_path(engine.url), isolation_level=None)
        ) as db:
            db.execute("PRAGMA synchronous=NORMAL")  # as the service runs it
            db.execute("PRAGMA foreign_keys=ON")
            started = time.monotonic()
            db.execute("BEGIN IMMEDIATE")
            db.executemany(f"INSERT INTO events ({columns}) VALUES ({', '.join('?' * 11)})", rows)
            db.execute("COMMIT")
            seconds = time.monotonic() - started
            db.execute("DELETE FROM events WHERE id LIKE 'raw-%'")
        return seconds

    async def insert() -> float:
        connection = await asyncpg.connect(asyncpg_dsn(engine.url))
        try:
            placeholders = ", ".join(f"${n}" for n in range(1, 12))
            started = time.monotonic()
            async with connection.transaction():
                await connection.executemany(
                    f"INSERT INTO events ({columns}) VALUES ({placeholders})", rows
                )
            seconds = time.monotonic() - started
            await connection.execute("DELETE FROM events WHERE id LIKE 'raw-%'")
            return seconds
        finally:
            await connection.close()

    return asyncio.run(insert())


def _struct_dict(item: event_pb2.EventInput) -> dict[str, Any]:
    from google.protobuf.json_format import MessageToDict

    return dict(MessageToDict(item.metadata)) if item.HasField("metadata") else {}


# ---------------------------------------------------------------------------------------------
# Helpers


def _postmaster_pid(cluster: Cluster) -> int | None:
    try:
        return int((cluster.data / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None


def _machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "load_average_at_end": [round(value, 2) for value in os.getloadavg()],
        "python": sys.version.split()[0],
        "h2load": _h2load_version(),
    }


def _h2load_version() -> str:
    try:
        return subprocess.run(
            [h2load.H2LOAD, "--version"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        return "missing"


def _count(value: int) -> str:
    return f"{value // 1_000_000}M" if value % 1_000_000 == 0 else f"{value // 1000}k"


_STARTED = time.monotonic()


def _log(message: str) -> None:
    """Progress on stderr, stamped with the seconds since the run began (where time goes)."""
    print(f"[{time.monotonic() - _STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)
