"""`journeys catalogue show|set|reset`: a partner's offer catalogue override."""

from __future__ import annotations

import argparse
import json
import tomllib
from pathlib import Path
from typing import Any

from journeys.cli._common import Commands, add_environment, environment, error, run
from journeys.config import Settings
from journeys.domain import utc_now
from journeys.errors import InvalidArgument
from journeys.rules import CatalogueEntry
from journeys.storage.database import Database
from journeys.usecases import catalogue


def add_commands(commands: Commands) -> None:
    group = commands.add_parser("catalogue", help="a partner's offer catalogue")
    actions = group.add_subparsers(required=True, metavar="ACTION")
    for action, helptext in (
        ("show", "print the effective catalogue (default merged with the override)"),
        ("set", "replace the override with a TOML file of changed fields"),
        ("reset", "drop the override: back to the default catalogue"),
    ):
        command = actions.add_parser(action, help=helptext)
        command.add_argument("--partner", required=True, help="partner name")
        add_environment(command, required=True)
        if action == "set":
            command.add_argument("file", type=Path, help="TOML file, same shape as the default")
        command.set_defaults(command=_catalogue, action=action)


def _catalogue(settings: Settings, args: argparse.Namespace) -> int:
    replacement: dict[str, Any] | None = {} if args.action == "reset" else None
    if args.action == "set":
        try:
            replacement = tomllib.loads(args.file.read_text())
        except (OSError, tomllib.TOMLDecodeError) as problem:
            error(f"cannot read {args.file}: {problem}")
            return 2

    async def apply() -> list[CatalogueEntry] | None:
        async with Database(settings.database_url) as database:
            return await catalogue.override(
                database, args.partner, environment(args.environment), utc_now(), replacement
            )

    try:
        entries = run(apply())
    except InvalidArgument as problem:
        error(problem.violation.description if problem.violation else str(problem))
        return 2
    if entries is None:
        error(f"no partner named {args.partner!r}")
        return 1
    print(json.dumps([_entry_json(entry) for entry in entries], indent=2, ensure_ascii=False))
    return 0


def _entry_json(entry: CatalogueEntry) -> dict[str, Any]:
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
