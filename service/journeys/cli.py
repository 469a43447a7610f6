"""`journeys`: serve the API, migrate the database, manage partner keys, run the analytics
job and manage offer catalogues."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
import time
import tomllib
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from journeys.config import Settings
from journeys.devtools import devdata
from journeys.domain import Environment, Tenant, utc_now
from journeys.errors import InvalidArgument
from journeys.gateway import Gateway
from journeys.observability import MetricsServer, configure_logging
from journeys.storage import migrate
from journeys.storage.database import Database
from journeys.transport.ratelimit import RateLimiter
from journeys.transport.server import GrpcServer
from journeys.usecases import Journeys, apikeys, catalogue
from journeys.usecases.analytics import AnalyticsJob, RunSummary, run_on_schedule
from journeys.usecases.auth import create_key

log = logging.getLogger("journeys")
T = TypeVar("T")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = Settings.from_env()
    # JSON lines for the server (log collectors), text for the commands people run by hand.
    default_format = "json" if args.command is _serve else "text"
    configure_logging(settings.log_level, settings.log_format or default_format)
    code: int = args.command(settings, args)
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="journeys", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the gRPC server and the Envoy gateway")
    serve.add_argument(
        "--no-gateway", action="store_true", help="run only the gRPC server (no Envoy)"
    )
    serve.add_argument(
        "--demo-key",
        action="store_true",
        help="on a database without keys, create a TEST key for partner 'demo' and print it",
    )
    serve.set_defaults(command=_serve)

    gateway = commands.add_parser(
        "gateway", help="run only Envoy, in front of one or more `serve --no-gateway` replicas"
    )
    gateway.add_argument(
        "--upstream",
        action="append",
        type=_host_port,
        required=True,
        metavar="HOST:PORT",
        help="a replica's gRPC address (repeat for several)",
    )
    gateway.set_defaults(command=_gateway)

    migrate_cmd = commands.add_parser("migrate", help="bring the database schema up to date")
    migrate_cmd.set_defaults(command=_migrate)

    keys = commands.add_parser("keys", help="manage partner API keys")
    key_commands = keys.add_subparsers(required=True, metavar="ACTION")
    create = key_commands.add_parser("create", help="create a key (and the partner if new)")
    create.add_argument("--partner", required=True, help="partner name")
    create.add_argument("--environment", required=True, choices=["test", "live"])
    create.set_defaults(command=_keys_create)
    listing = key_commands.add_parser("list", help="list keys by display prefix")
    listing.set_defaults(command=_keys_list)
    revoke = key_commands.add_parser("revoke", help="revoke a key")
    revoke.add_argument("key", help="the full key, or the display prefix `keys list` shows")
    revoke.set_defaults(command=_keys_revoke)

    analytics = commands.add_parser("analytics", help="the segmentation and offer job")
    analytics_commands = analytics.add_subparsers(required=True, metavar="ACTION")
    run = analytics_commands.add_parser(
        "run", help="run the job once (waits if another run holds the lock)"
    )
    run.add_argument(
        "--as-of",
        type=_timestamp,
        help="compute as of this instant (RFC 3339, e.g. 2025-01-15T10:30:00Z); default now",
    )
    run.set_defaults(command=_analytics_run)

    dev = commands.add_parser("dev", help="tools for development and benchmarks")
    dev_commands = dev.add_subparsers(required=True, metavar="ACTION")
    seed = dev_commands.add_parser("seed-data", help="generate a realistic population")
    seed.add_argument("--users", type=int, required=True)
    seed.add_argument("--events", type=int, required=True)
    seed.add_argument("--partner", default="seed", help="partner name (created if new)")
    seed.add_argument("--environment", default="test", choices=["test", "live"])
    seed.add_argument("--seed", type=int, default=1, help="random seed")
    seed.add_argument(
        "--bulk",
        action="store_true",
        help="fast path for benchmarks: executemany + set-based counters (empty tenant only)",
    )
    seed.set_defaults(command=_seed_data)

    offers = commands.add_parser("catalogue", help="a partner's offer catalogue")
    offer_commands = offers.add_subparsers(required=True, metavar="ACTION")
    for action, helptext in (
        ("show", "print the effective catalogue (default merged with the override)"),
        ("set", "replace the override with a TOML file of changed fields"),
        ("reset", "drop the override: back to the default catalogue"),
    ):
        command = offer_commands.add_parser(action, help=helptext)
        command.add_argument("--partner", required=True, help="partner name")
        command.add_argument("--environment", required=True, choices=["test", "live"])
        if action == "set":
            command.add_argument("file", type=Path, help="TOML file, same shape as the default")
        command.set_defaults(command=_catalogue, action=action)
    return parser


def _host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host, int(port)


def _gateway(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> int:
        envoy = Gateway(settings, args.upstream)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await envoy.start()
        exited = asyncio.ensure_future(envoy.wait_exit())
        exited.add_done_callback(lambda _: stop.set())
        upstreams = ", ".join(f"{host}:{port}" for host, port in args.upstream)
        log.info("Envoy on %s:%s in front of %s", settings.host, settings.http_port, upstreams)
        print("journeys is ready", flush=True)
        await stop.wait()
        crashed = exited.done()
        if not crashed:
            await envoy.drain(settings.shutdown_grace_seconds)
        await envoy.stop()
        if crashed:
            log.error("envoy exited unexpectedly with status %s", exited.result())
            return 1
        return 0

    return _run(run())


def _timestamp(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 timestamp: {value!r}") from None
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(f"timestamp needs a time zone (e.g. Z): {value!r}")
    return parsed.astimezone(UTC)


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a pinned dependency on Linux
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def _migrate(settings: Settings, _args: argparse.Namespace) -> int:
    migrate.upgrade(settings.database_url)
    print(f"database is up to date ({settings.database_url})")
    return 0


def _keys_create(settings: Settings, args: argparse.Namespace) -> int:
    async def create() -> str:
        async with (
            Database(settings.database_url) as database,
            database.transaction(write=True) as tx,
        ):
            return await create_key(
                tx.keys, args.partner, Environment(args.environment.upper()), utc_now()
            )

    key = _run(create())
    print(f"Created a {args.environment.upper()} key for partner {args.partner!r}.")
    print("Store it now: it is shown only once.")
    print(key)
    return 0


def _keys_list(settings: Settings, _args: argparse.Namespace) -> int:
    async def listing() -> None:
        async with (
            Database(settings.database_url) as database,
            database.transaction(write=False) as tx,
        ):
            keys = await tx.keys.list_keys()
        print(f"{'PREFIX':<18}{'ENV':<6}{'STATUS':<9}{'CREATED':<22}PARTNER")
        for key in keys:
            state = "revoked" if key.revoked_at else "active"
            created = key.created_at.strftime("%Y-%m-%dT%H:%M:%SZ")
            print(
                f"{key.display_prefix + '…':<18}{key.environment.value:<6}{state:<9}"
                f"{created:<22}{key.partner_name}"
            )

    _run(listing())
    return 0


def _keys_revoke(settings: Settings, args: argparse.Namespace) -> int:
    presented: str = args.key.rstrip("…")
    is_full_key = apikeys.environment_of(presented) is not None
    if not is_full_key and len(presented) != apikeys.DISPLAY_PREFIX_LENGTH:
        print(
            "error: give the full key or its display prefix (as `journeys keys list` shows)",
            file=sys.stderr,
        )
        return 2

    async def revoke() -> list[str]:
        async with (
            Database(settings.database_url) as database,
            database.transaction(write=True) as tx,
        ):
            return await tx.keys.revoke(
                apikeys.digest(presented) if is_full_key else "",
                "" if is_full_key else presented,
                utc_now(),
            )

    revoked = _run(revoke())
    if not revoked:
        print("error: no active key matches", file=sys.stderr)
        return 1
    print(f"revoked {len(revoked)} key(s)")
    return 0


def _analytics_run(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> RunSummary | None:
        async with Database(settings.database_url) as database:
            return await AnalyticsJob(database).run(args.as_of, progress=_progress_bar())

    summary = _run(run())
    assert summary is not None, "a waiting run always runs"
    print(summary.describe())
    return 0


def _seed_data(settings: Settings, args: argparse.Namespace) -> int:
    if args.users < 1 or args.events < args.users:
        print("error: need --users >= 1 and --events >= --users", file=sys.stderr)
        return 2

    async def seed() -> None:
        async with Database(settings.database_url) as database:
            await devdata.seed(
                database,
                users=args.users,
                events=args.events,
                partner=args.partner,
                environment=Environment(args.environment.upper()),
                random_seed=args.seed,
                progress=_progress_bar("events"),
                bulk=args.bulk,
            )

    started = time.monotonic()
    try:
        _run(seed())
    except devdata.TenantNotEmpty as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(
        f"seeded {args.users} users and {args.events} events for partner {args.partner!r} "
        f"in {time.monotonic() - started:.1f}s"
    )
    return 0


def _progress_bar(unit: str = "users") -> Callable[[int, int], None] | None:
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        width = 30
        filled = width * done // max(total, 1)
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {unit}")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


def _catalogue(settings: Settings, args: argparse.Namespace) -> int:
    environment = Environment(args.environment.upper())
    override: dict[str, Any] | None = None
    if args.action == "set":
        try:
            override = catalogue.check_override(tomllib.loads(args.file.read_text()))
        except (OSError, tomllib.TOMLDecodeError) as error:
            print(f"error: cannot read {args.file}: {error}", file=sys.stderr)
            return 2
        except InvalidArgument as error:
            print(
                f"error: {error.violation.description if error.violation else error}",
                file=sys.stderr,
            )
            return 2

    async def apply() -> list[Any] | None:
        async with (
            Database(settings.database_url) as database,
            database.transaction(write=True) as tx,
        ):
            partner_id = await tx.keys.partner_id(args.partner)
            if partner_id is None:
                return None
            store = tx.tenant(Tenant(partner_id, environment))
            if args.action == "set":
                await store.set_catalogue_override(override or {}, utc_now())
            elif args.action == "reset":
                await store.set_catalogue_override({}, utc_now())
            return catalogue.entries(await store.catalogue_override())

    entries = _run(apply())
    if entries is None:
        print(f"error: no partner named {args.partner!r}", file=sys.stderr)
        return 1
    print(json.dumps([_entry_json(entry) for entry in entries], indent=2, ensure_ascii=False))
    return 0


def _entry_json(entry: Any) -> dict[str, Any]:
    return {
        "offerType": entry.offer_type,
        "priority": entry.priority,
        "gameType": entry.game_type,
        "title": entry.title,
        "description": entry.description,
        "pointsValue": entry.points_value,
        "validityHours": entry.validity.total_seconds() / 3600,
        "cooldownHours": entry.cooldown.total_seconds() / 3600,
        "oncePerUtcDay": entry.once_per_utc_day,
        "enabled": entry.enabled,
        "metadata": dict(entry.metadata),
    }


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    return _run(_serve_async(settings, gateway=not args.no_gateway, demo_key=args.demo_key))


async def _serve_async(settings: Settings, *, gateway: bool, demo_key: bool) -> int:
    database = Database(settings.database_url)
    if demo_key:
        await _print_demo_key(database)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    # Envoy is forked before gRPC starts its threads (gRPC warns about forks after that).
    envoy = Gateway(settings, [(settings.host, settings.grpc_port)]) if gateway else None
    envoy_exit: asyncio.Future[int] | None = None
    if envoy is not None:
        await envoy.start()
        envoy_exit = asyncio.ensure_future(envoy.wait_exit())
        envoy_exit.add_done_callback(lambda _: stop.set())
    server: GrpcServer | None = None
    schedule: asyncio.Task[None] | None = None
    metrics: MetricsServer | None = None
    exit_code = 0
    try:
        if settings.metrics_port > 0:
            metrics = MetricsServer(settings.metrics_port)
            log.info("serving Prometheus metrics on http://%s/metrics", metrics.address)
        limiter = (
            RateLimiter(settings.rate_limit, settings.rate_burst)
            if settings.rate_limit > 0
            else None
        )
        for table in await database.keep_partitions_ready(utc_now().date()):
            log.info("created events partition %s", table)
        server = GrpcServer(Journeys(database), settings.host, settings.grpc_port, limiter)
        await server.start()
        if settings.analytics_interval > 0:
            schedule = asyncio.create_task(
                run_on_schedule(AnalyticsJob(database), settings.analytics_interval)
            )
        log.info(
            "serving gRPC on %s%s",
            server.address,
            f", REST and gRPC via Envoy on {settings.host}:{settings.http_port}" if envoy else "",
        )
        print("journeys is ready", flush=True)
        await stop.wait()
        if envoy_exit is not None and envoy_exit.done():
            log.error("envoy exited unexpectedly with status %s", envoy_exit.result())
            exit_code = 1
    finally:
        log.info("shutting down: draining in-flight calls")
        grace = settings.shutdown_grace_seconds
        if envoy is not None:  # first, so REST calls it already received reach the server
            grace = await envoy.drain(grace)
        if schedule is not None:
            schedule.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await schedule
        if server is not None:
            await server.stop(grace)
        if envoy is not None:
            await envoy.stop()
        if metrics is not None:
            metrics.stop()
        await database.dispose()
    return exit_code


async def _print_demo_key(database: Database) -> None:
    async with database.transaction(write=True) as tx:
        if await tx.keys.count_keys() > 0:
            return
        key = await create_key(tx.keys, "demo", Environment.TEST, utc_now())
    print(
        "\nA TEST key for partner 'demo' (shown only once):\n\n"
        f"    {key}\n\n"
        "More keys: .venv/bin/journeys keys create --partner NAME --environment test|live\n",
        flush=True,
    )


if __name__ == "__main__":
    raise SystemExit(main())
