"""What every command shares: running a coroutine, a progress bar, argument types."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, TypeVar

from journeys.domain import Environment

T = TypeVar("T")
#: `add_subparsers()`'s return type, which argparse does not name publicly.
Commands = Any


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a pinned dependency on Linux
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def progress_bar(unit: str = "users") -> Callable[[int, int], None] | None:
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


def environment(value: str) -> Environment:
    return Environment(value.upper())


def add_environment(parser: argparse.ArgumentParser, **options: Any) -> None:
    parser.add_argument("--environment", choices=["test", "live"], **options)


def timestamp(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 timestamp: {value!r}") from None
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(f"timestamp needs a time zone (e.g. Z): {value!r}")
    return parsed.astimezone(UTC)


def error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
