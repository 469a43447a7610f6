"""The raw drivers' own connection strings for a database URL of the service, and copies of
a database."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url


def sqlite_path(url: str) -> str:
    return str(make_url(url).database)


def asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def twin(name: str, url: str, suffix: str = "twin") -> str:
    """A copy of the database at `url` (nothing may be connected to it), named with `suffix`;
    its URL."""
    if name == "sqlite":
        source = sqlite_path(url)
        target = source.replace(".db", f"-{suffix}.db")
        with sqlite3.connect(source) as connection:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        shutil.copyfile(source, target)
        return str(make_url(url).set(database=target))
    database = make_url(url).database

    async def copy() -> None:
        admin = await asyncpg.connect(asyncpg_dsn(str(make_url(url).set(database="postgres"))))
        try:
            await admin.execute(f'CREATE DATABASE "{database}_{suffix}" TEMPLATE "{database}"')
        finally:
            await admin.close()

    asyncio.run(copy())
    return make_url(url).set(database=f"{database}_{suffix}").render_as_string(hide_password=False)
