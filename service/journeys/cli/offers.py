"""`journeys offers holdout`: a partner's holdout share (users who get no offers)."""

from __future__ import annotations

import argparse

from journeys.cli._common import Commands, add_environment, environment, error, run
from journeys.config import Settings
from journeys.domain import utc_now
from journeys.errors import InvalidArgument
from journeys.storage.database import Database
from journeys.usecases.holdout import holdout


def add_commands(commands: Commands) -> None:
    group = commands.add_parser("offers", help="the offer engine's settings")
    actions = group.add_subparsers(required=True, metavar="ACTION")
    command = actions.add_parser(
        "holdout", help="show or set the share of users who get no offers (default 0.05)"
    )
    command.add_argument("--partner", required=True, help="partner name")
    add_environment(command, required=True)
    command.add_argument("--share", type=float, help="0 to 1, e.g. 0.05; omitted: show it")
    command.set_defaults(command=_holdout)


def _holdout(settings: Settings, args: argparse.Namespace) -> int:
    async def apply() -> float | None:
        async with Database(settings.database_url) as database:
            return await holdout(
                database, args.partner, environment(args.environment), utc_now(), args.share
            )

    try:
        share = run(apply())
    except InvalidArgument as problem:
        error(problem.violation.description if problem.violation else str(problem))
        return 2
    if share is None:
        error(f"no partner named {args.partner!r}")
        return 1
    print(f"holdout share of {args.partner} ({args.environment}): {share:g}")
    return 0
