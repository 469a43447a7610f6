"""Alembic environment: runs migrations over an async engine."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from journeys.storage import partitions
from journeys.storage.schema import metadata


def _is_defined(obj: Any, name: str | None, kind: str, reflected: bool, _other: Any) -> bool:
    """What `alembic check` compares: the partitions of events are not table definitions."""
    table = obj if kind == "table" else getattr(obj, "table", None)
    return not (reflected and table is not None and partitions.is_partition(table.name))


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=_is_defined,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url is not None
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


asyncio.run(_run_online())
