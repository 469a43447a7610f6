"""`journeys`: serve the API, migrate the database, manage partner keys, run the analytics
job, manage offer catalogues and holdouts, erase or export a user's data and manage
webhooks.
One module per command group; each adds its parsers."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from journeys.cli import (
    analytics,
    catalogue,
    database,
    dev,
    keys,
    offers,
    privacy,
    serve,
    webhooks,
)
from journeys.config import Settings
from journeys.observability import configure_logging


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = Settings.from_env()
    # JSON lines for the server (log collectors), text for the commands people run by hand.
    default_format = "json" if args.command is serve.serve else "text"
    configure_logging(settings.log_level, settings.log_format or default_format)
    code: int = args.command(settings, args)
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="journeys", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    for group in (serve, database, keys, analytics, dev, catalogue, offers, privacy, webhooks):
        group.add_commands(commands)
    return parser
