"""`journeys dev seed-data`: a realistic population for benchmarks and demos."""

from __future__ import annotations

import argparse
import time

from journeys.cli._common import Commands, add_environment, environment, error, progress_bar, run
from journeys.config import Settings
from journeys.devtools import devdata
from journeys.storage.database import Database


def add_commands(commands: Commands) -> None:
    group = commands.add_parser("dev", help="tools for development and benchmarks")
    actions = group.add_subparsers(required=True, metavar="ACTION")
    seed = actions.add_parser("seed-data", help="generate a realistic population")
    seed.add_argument("--users", type=int, required=True)
    seed.add_argument("--events", type=int, required=True)
    seed.add_argument("--partner", default="seed", help="partner name (created if new)")
    add_environment(seed, default="test")
    seed.add_argument("--seed", type=int, default=1, help="random seed")
    seed.add_argument(
        "--bulk",
        action="store_true",
        help="fast path for benchmarks: executemany + set-based counters (empty tenant only)",
    )
    seed.set_defaults(command=_seed_data)


def _seed_data(settings: Settings, args: argparse.Namespace) -> int:
    if args.users < 1 or args.events < args.users:
        error("need --users >= 1 and --events >= --users")
        return 2

    async def seed() -> None:
        async with Database(settings.database_url) as database:
            await devdata.seed(
                database,
                users=args.users,
                events=args.events,
                partner=args.partner,
                environment=environment(args.environment),
                random_seed=args.seed,
                progress=progress_bar("events"),
                bulk=args.bulk,
            )

    started = time.monotonic()
    try:
        run(seed())
    except devdata.TenantNotEmpty as problem:
        error(str(problem))
        return 1
    print(
        f"seeded {args.users} users and {args.events} events for partner {args.partner!r} "
        f"in {time.monotonic() - started:.1f}s"
    )
    return 0
