"""`journeys privacy delete|export`: an operator erasing or exporting one user of a partner's
environment, as the partner would with a secret key."""

from __future__ import annotations

import argparse
import sys

from journeys.cli._common import Commands, add_environment, environment, error, run
from journeys.config import Settings
from journeys.errors import JourneysError
from journeys.storage.database import Database
from journeys.transport import export_json
from journeys.usecases.auth import Operator
from journeys.usecases.privacy import Privacy


def add_commands(commands: Commands) -> None:
    group = commands.add_parser("privacy", help="erase or export one user's data")
    actions = group.add_subparsers(required=True, metavar="ACTION")
    delete = actions.add_parser("delete", help="erase a user and everything stored about them")
    _add_user_arguments(delete)
    delete.add_argument(
        "--suppress",
        action="store_true",
        help="also refuse the id from now on (kept as a SHA-256 digest only)",
    )
    delete.set_defaults(command=_delete)
    export = actions.add_parser("export", help="write everything stored about a user as JSON")
    _add_user_arguments(export)
    export.set_defaults(command=_export)


def _add_user_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--partner", required=True, help="partner name")
    add_environment(parser, required=True)
    parser.add_argument("external_id", metavar="EXTERNAL_ID", help="the partner's id of the user")


def _operator(args: argparse.Namespace) -> Operator:
    return Operator(args.partner, environment(args.environment))


def _delete(settings: Settings, args: argparse.Namespace) -> int:
    async def delete() -> str:
        async with Database(settings.database_url) as database:
            erasure = await Privacy(database).delete_user(
                _operator(args), args.external_id, suppress=args.suppress
            )
        suppressed = ", id suppressed" if erasure.suppressed else ""
        return (
            f"erased user {erasure.external_id!r} at {erasure.deleted_at:%Y-%m-%dT%H:%M:%SZ}: "
            f"{erasure.rows_removed} rows removed{suppressed}"
        )

    try:
        print(run(delete()))
    except JourneysError as problem:
        error(problem.message)
        return 1
    return 0


def _export(settings: Settings, args: argparse.Namespace) -> int:
    async def export() -> None:
        out = sys.stdout.buffer
        async with (
            Database(settings.database_url) as database,
            Privacy(database).export_user(_operator(args), args.external_id) as found,
        ):
            async for chunk in export_json.render(found, envelope=False):
                out.write(chunk)
        out.write(b"\n")
        out.flush()

    try:
        run(export())
    except JourneysError as problem:
        error(problem.message)
        return 1
    return 0
