"""The raw drivers' own connection strings for a database URL of the service."""

from __future__ import annotations

from sqlalchemy.engine import make_url


def sqlite_path(url: str) -> str:
    return str(make_url(url).database)


def asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
