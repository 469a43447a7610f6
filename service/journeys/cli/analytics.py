"""`journeys analytics run`."""

from __future__ import annotations

import argparse

from journeys.cli._common import Commands, progress_bar, run, timestamp
from journeys.config import Settings
from journeys.storage.database import Database
from journeys.usecases.analytics import AnalyticsJob, RunSummary


def add_commands(commands: Commands) -> None:
    group = commands.add_parser("analytics", help="the segmentation and offer job")
    actions = group.add_subparsers(required=True, metavar="ACTION")
    command = actions.add_parser(
        "run", help="run the job once (waits if another run holds the lock)"
    )
    command.add_argument(
        "--as-of",
        type=timestamp,
        help="compute as of this instant (RFC 3339, e.g. 2025-01-15T10:30:00Z); default now",
    )
    command.add_argument(
        "--full",
        action="store_true",
        help="recompute every user, not only those due since the last run",
    )
    command.set_defaults(command=_run_job)


def _run_job(settings: Settings, args: argparse.Namespace) -> int:
    async def job() -> RunSummary | None:
        async with Database(settings.database_url) as database:
            job = AnalyticsJob(database, offer_seed=settings.offer_seed)
            return await job.run(args.as_of, progress=progress_bar(), full=args.full)

    summary = run(job())
    assert summary is not None, "a waiting run always runs"
    print(summary.describe())
    return 0
