"""`journeys migrate`."""

from __future__ import annotations

import argparse

from journeys.cli._common import Commands
from journeys.config import Settings
from journeys.storage import migrate


def add_commands(commands: Commands) -> None:
    command = commands.add_parser("migrate", help="bring the database schema up to date")
    command.set_defaults(command=_migrate)


def _migrate(settings: Settings, _args: argparse.Namespace) -> int:
    migrate.upgrade(settings.database_url)
    print(f"database is up to date ({settings.database_url})")
    return 0
