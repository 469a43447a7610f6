"""`journeys keys create|list|revoke`."""

from __future__ import annotations

import argparse

from journeys.cli._common import Commands, add_environment, environment, error, run
from journeys.config import Settings
from journeys.domain import KeyKind, utc_now
from journeys.errors import InvalidArgument
from journeys.storage.database import Database
from journeys.usecases import keys


def add_commands(commands: Commands) -> None:
    group = commands.add_parser("keys", help="manage partner API keys")
    actions = group.add_subparsers(required=True, metavar="ACTION")
    create = actions.add_parser("create", help="create a key (and the partner if new)")
    create.add_argument("--partner", required=True, help="partner name")
    add_environment(create, required=True)
    create.add_argument(
        "--secret",
        action="store_true",
        help="a secret key (sk_…) for the partner's servers: it also opens segments, erasure "
        "and export",
    )
    create.set_defaults(command=_create)
    listing = actions.add_parser("list", help="list keys by display prefix")
    listing.set_defaults(command=_list)
    revoke = actions.add_parser("revoke", help="revoke a key")
    revoke.add_argument("key", help="the full key, or the display prefix `keys list` shows")
    revoke.set_defaults(command=_revoke)


def _create(settings: Settings, args: argparse.Namespace) -> int:
    kind = KeyKind.SECRET if args.secret else KeyKind.PUBLIC

    async def create() -> str:
        async with Database(settings.database_url) as database:
            return await keys.create(
                database, args.partner, environment(args.environment), utc_now(), kind
            )

    key = run(create())
    print(f"Created a {args.environment.upper()} {kind.value} key for partner {args.partner!r}.")
    print("Store it now: it is shown only once.")
    print(key)
    return 0


def _list(settings: Settings, _args: argparse.Namespace) -> int:
    async def listing() -> None:
        async with Database(settings.database_url) as database:
            found = await keys.listing(database)
        print(f"{'PREFIX':<18}{'ENV':<6}{'KIND':<8}{'STATUS':<9}{'CREATED':<22}PARTNER")
        for key in found:
            state = "revoked" if key.revoked_at else "active"
            created = key.created_at.strftime("%Y-%m-%dT%H:%M:%SZ")
            print(
                f"{key.display_prefix + '…':<18}{key.environment.value:<6}{key.kind.value:<8}"
                f"{state:<9}{created:<22}{key.partner_name}"
            )

    run(listing())
    return 0


def _revoke(settings: Settings, args: argparse.Namespace) -> int:
    async def revoke() -> int:
        async with Database(settings.database_url) as database:
            return await keys.revoke(database, args.key, utc_now())

    try:
        revoked = run(revoke())
    except InvalidArgument as problem:
        error(problem.violation.description if problem.violation else str(problem))
        return 2
    if not revoked:
        error("no active key matches")
        return 1
    print(f"revoked {revoked} key(s)")
    return 0
