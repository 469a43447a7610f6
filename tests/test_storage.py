"""The schema and engine settings the service relies on."""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path

import pytest
from alembic import command
from journeys.storage.migrate import alembic_config
from journeys.storage.scope import ScopedStore
from journeys.storage.tenant_store import TenantStore

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


def test_no_concern_of_the_tenant_store_shadows_another() -> None:
    """`TenantStore` is the union of the concerns' stores: a statement or method named alike
    in two of them would silently replace the other's."""
    concerns = [base for base in TenantStore.__mro__[1:] if issubclass(base, ScopedStore)]
    names = Counter(
        name
        for concern in concerns
        if concern is not ScopedStore
        for name in vars(concern)
        if not name.startswith("__")
    )
    assert [name for name, count in names.items() if count > 1] == []
