"""The composition root of `journeys serve`: builds the process's parts from the settings and
runs them until SIGINT or SIGTERM, then stops them in the reverse of their start.

With `--workers N` (N > 1) the process is a supervisor instead: it prepares the database,
starts Envoy and N worker processes serving the one gRPC port (journeys.workers), and stops
them in order: Envoy drains first, then every worker gets what is left of the grace. A worker
that exits on its own stops everything, and the supervisor exits 1 (a process manager restarts
the whole unit; restarting one worker here would hide a crash loop). Each worker runs the same
parts as a single process; what must happen once (the analytics tick, each webhook message) is
decided by the database."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
from collections.abc import AsyncIterator

from journeys.config import Settings
from journeys.domain import Environment, utc_now
from journeys.gateway import Gateway
from journeys.observability import MetricsServer
from journeys.storage.database import Database
from journeys.transport import privacy, reports, segments, servicer, webhooks
from journeys.transport.ratelimit import RateLimiter
from journeys.transport.server import GrpcServer
from journeys.usecases import Journeys, keys
from journeys.usecases.analytics import AnalyticsJob
from journeys.usecases.analytics_schedule import AnalyticsSchedule
from journeys.usecases.privacy import Privacy
from journeys.usecases.reports import Reports
from journeys.usecases.segments import Segments
from journeys.usecases.webhooks import Webhooks
from journeys.webhooks.dispatcher import Dispatcher, DispatchSettings
from journeys.workers import (
    Workers,
    ensure_port_free,
    stop_requests,
    worker_metrics_port,
)

log = logging.getLogger("journeys")
READY_LINE = "journeys is ready"
_ENVOY_CONNECTIONS_PER_WORKER = 8


async def serve(
    settings: Settings,
    *,
    gateway: bool = True,
    demo_key: bool = False,
    worker: int | None = None,
) -> int:
    """Serves until asked to stop; 1 when Envoy (or a worker) exited on its own, else 0.
    `worker`: this process is worker `worker` of a supervisor (`serve --workers N`)."""
    if worker is None and settings.workers > 1:
        return await _supervise(settings, gateway=gateway, demo_key=demo_key)
    stop = asyncio.Event()
    grace = _Grace(settings.shutdown_grace_seconds)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    if worker is not None:
        settings = dataclasses.replace(
            settings, metrics_port=worker_metrics_port(settings.metrics_port, worker)
        )
    async with contextlib.AsyncExitStack() as parts:
        if worker is not None:
            requests = stop_requests(lambda seconds: _stop_with(grace, stop, seconds))
            parts.push_async_callback(_cancel, asyncio.create_task(requests))
        database = Database(
            settings.database_url,
            connections=max(2, settings.database_connections // settings.workers),
        )
        parts.push_async_callback(database.dispose)
        if demo_key:
            await _print_demo_key(database)
        # Envoy is forked before gRPC starts its threads (gRPC warns about forks after that);
        # its drain is the last thing registered, so it runs first: REST calls it already
        # received still reach the server.
        envoy = await parts.enter_async_context(_envoy(settings, stop)) if gateway else None
        if settings.metrics_port > 0:
            metrics = MetricsServer(settings.metrics_port)
            parts.callback(metrics.stop)
            log.info("serving Prometheus metrics on http://%s/metrics", metrics.address)
        if worker is None:  # the supervisor did this once for all workers
            await _prepare(database)
        limiter = (
            RateLimiter(settings.rate_limit, settings.rate_burst)
            if settings.rate_limit > 0
            else None
        )
        server = GrpcServer(
            _servicers(database, settings),
            settings.host,
            settings.grpc_port,
            limiter,
            share_port=worker is not None,
        )
        await server.start()
        parts.push_async_callback(lambda: server.stop(grace.left))
        if settings.analytics_interval > 0:
            schedule = AnalyticsSchedule(
                database,
                AnalyticsJob(database, offer_seed=settings.offer_seed),
                settings.analytics_interval,
                settings.analytics_full_interval,
            )
            parts.push_async_callback(schedule.release)
            parts.push_async_callback(_cancel, asyncio.create_task(schedule.run()))
        dispatcher = Dispatcher(
            database,
            DispatchSettings(
                allow_private=settings.webhook_allow_private,
                retry_schedule=settings.webhook_retry_schedule,
            ),
        )
        parts.push_async_callback(_cancel, asyncio.create_task(dispatcher.run()))
        if envoy is not None:
            parts.push_async_callback(grace.spend_on, envoy)
        log.info(
            "%sserving gRPC on %s%s",
            "" if worker is None else f"worker {worker} (pid {os.getpid()}) ",
            server.address,
            f", REST and gRPC via Envoy on {settings.host}:{settings.http_port}" if envoy else "",
        )
        print(READY_LINE, flush=True)
        await stop.wait()
        log.info("shutting down: draining in-flight calls")
        if envoy is not None and envoy.exited is not None:
            log.error("envoy exited unexpectedly with status %s", envoy.exited)
            return 1
    return 0


async def _supervise(settings: Settings, *, gateway: bool, demo_key: bool) -> int:
    """`serve --workers N`: Envoy and N workers on one gRPC port, stopped in order."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with Database(settings.database_url) as database:
        if demo_key:
            await _print_demo_key(database)
        await _prepare(database)
    ensure_port_free(settings.host, settings.grpc_port)
    failed: list[int] = []

    def worker_exited(_index: int, _status: int) -> None:
        failed.append(_index)
        stop.set()

    async with contextlib.AsyncExitStack() as parts:
        # Envoy first (forked before anything else runs), as in a single process. It keeps one
        # HTTP/2 connection per upstream, and the kernel hands each connection to one worker:
        # listing the one port several times a worker gives Envoy as many connections to
        # spread REST calls over (round robin), so every worker gets its share.
        port = (settings.host, settings.grpc_port)
        upstreams = [port] * (settings.workers * _ENVOY_CONNECTIONS_PER_WORKER)
        envoy = (
            await parts.enter_async_context(_envoy(settings, stop, upstreams)) if gateway else None
        )
        workers = Workers(settings.workers, READY_LINE, worker_exited)
        parts.callback(workers.kill)
        try:
            await workers.start()
        except RuntimeError as problem:
            log.error("%s: stopping", problem)
            return 1
        pids = ", ".join(str(pid) for pid in workers.pids)
        log.info(
            "%d workers (pids %s) serving gRPC on %s:%s",
            settings.workers,
            pids,
            settings.host,
            settings.grpc_port,
        )
        print(READY_LINE, flush=True)
        await stop.wait()
        log.info("shutting down: draining in-flight calls")
        grace = _Grace(settings.shutdown_grace_seconds)
        if envoy is not None:
            await grace.spend_on(envoy)
        await workers.stop(grace.left)
        if envoy is not None and envoy.exited is not None:
            log.error("envoy exited unexpectedly with status %s", envoy.exited)
            return 1
    return 1 if failed else 0


async def _prepare(database: Database) -> None:
    """What a server does to the database once before serving."""
    for table in await database.keep_partitions_ready(utc_now().date()):
        log.info("created events partition %s", table)


def _stop_with(grace: _Grace, stop: asyncio.Event, seconds: float | None) -> None:
    """A worker asked to stop by its supervisor, with what is left of the grace."""
    if seconds is not None:
        grace.left = seconds
    stop.set()


def _servicers(database: Database, settings: Settings) -> dict[str, object]:
    allow_private = settings.webhook_allow_private
    return {
        servicer.SERVICE_NAME: servicer.UserJourneysServicer(Journeys(database)),
        segments.SERVICE_NAME: segments.SegmentsServicer(Segments(database)),
        privacy.SERVICE_NAME: privacy.PrivacyServicer(Privacy(database)),
        webhooks.SERVICE_NAME: webhooks.WebhooksServicer(
            Webhooks(database, allow_private=allow_private)
        ),
        reports.SERVICE_NAME: reports.ReportsServicer(Reports(database)),
    }


class _Grace:
    """The shutdown grace, shared: what Envoy's drain leaves is the server's."""

    def __init__(self, seconds: float) -> None:
        self.left = seconds

    async def spend_on(self, envoy: _RunningEnvoy) -> None:
        self.left = await envoy.gateway.drain(self.left)


class _RunningEnvoy:
    def __init__(self, gateway: Gateway, exit_code: asyncio.Future[int]) -> None:
        self.gateway = gateway
        self._exit_code = exit_code

    @property
    def exited(self) -> int | None:
        return self._exit_code.result() if self._exit_code.done() else None


@contextlib.asynccontextmanager
async def _envoy(
    settings: Settings, stop: asyncio.Event, upstreams: list[tuple[str, int]] | None = None
) -> AsyncIterator[_RunningEnvoy]:
    gateway = Gateway(settings, upstreams or [(settings.host, settings.grpc_port)])
    await gateway.start()
    exit_code = asyncio.ensure_future(gateway.wait_exit())
    exit_code.add_done_callback(lambda _: stop.set())
    try:
        yield _RunningEnvoy(gateway, exit_code)
    finally:
        await gateway.stop()


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _print_demo_key(database: Database) -> None:
    key = await keys.create_first(database, "demo", Environment.TEST, utc_now())
    if key is None:
        return
    print(
        "\nA TEST key for partner 'demo' (shown only once):\n\n"
        f"    {key}\n\n"
        "More keys: .venv/bin/journeys keys create --partner NAME --environment test|live\n",
        flush=True,
    )


async def serve_gateway(settings: Settings, upstreams: list[tuple[str, int]]) -> int:
    """Envoy alone, in front of `serve --no-gateway` replicas; 1 when it exited on its own."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with _envoy(settings, stop, upstreams) as envoy:
        listed = ", ".join(f"{host}:{port}" for host, port in upstreams)
        log.info("Envoy on %s:%s in front of %s", settings.host, settings.http_port, listed)
        print(READY_LINE, flush=True)
        await stop.wait()
        if envoy.exited is not None:
            log.error("envoy exited unexpectedly with status %s", envoy.exited)
            return 1
        await envoy.gateway.drain(settings.shutdown_grace_seconds)
    return 0
