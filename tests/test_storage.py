"""The schema and engine settings the service relies on."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from alembic import command
from journeys.storage.migrate import alembic_config

from scripts.stack import migrate


def test_migrations_match_the_table_definitions(database_url: str) -> None:
    migrate(database_url)

    # Raises if the models define anything the migrations do not create.
    command.check(alembic_config(database_url))


@pytest.mark.sqlite_only
def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'wal.db'}"
    migrate(url)
    from scripts.stack import new_key

    new_key(url, "wal")  # any write through the service's engine

    with sqlite3.connect(tmp_path / "wal.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
