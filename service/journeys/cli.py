"""`journeys`: serve the API, migrate the database, manage partner keys."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

from journeys import apikeys
from journeys.config import Settings
from journeys.domain import Environment, utc_now
from journeys.gateway import Gateway
from journeys.server import GrpcServer
from journeys.storage import migrate
from journeys.storage.database import Database
from journeys.usecases import Journeys
from journeys.usecases.auth import create_key

log = logging.getLogger("journeys")
T = TypeVar("T")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = Settings.from_env()
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
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
    return parser


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
        database = Database(settings.database_url)
        try:
            async with database.transaction(write=True) as tx:
                return await create_key(
                    tx.keys, args.partner, Environment(args.environment.upper()), utc_now()
                )
        finally:
            await database.dispose()

    key = _run(create())
    print(f"Created a {args.environment.upper()} key for partner {args.partner!r}.")
    print("Store it now: it is shown only once.")
    print(key)
    return 0


def _keys_list(settings: Settings, _args: argparse.Namespace) -> int:
    async def listing() -> None:
        database = Database(settings.database_url)
        try:
            async with database.transaction(write=False) as tx:
                keys = await tx.keys.list_keys()
        finally:
            await database.dispose()
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
        database = Database(settings.database_url)
        try:
            async with database.transaction(write=True) as tx:
                return await tx.keys.revoke(
                    apikeys.digest(presented) if is_full_key else "",
                    "" if is_full_key else presented,
                    utc_now(),
                )
        finally:
            await database.dispose()

    revoked = _run(revoke())
    if not revoked:
        print("error: no active key matches", file=sys.stderr)
        return 1
    print(f"revoked {len(revoked)} key(s)")
    return 0


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
    exit_code = 0
    try:
        server = GrpcServer(Journeys(database), settings.host, settings.grpc_port)
        await server.start()
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
        if server is not None:
            await server.stop(settings.shutdown_grace_seconds)
        if envoy is not None:
            await envoy.stop()
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
