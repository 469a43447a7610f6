"""The one way into the database: engines, transactions and the stores they hand out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from journeys.domain import Tenant
from journeys.storage.job_store import JobStore
from journeys.storage.key_store import KeyStore
from journeys.storage.partitions import EventPartitions
from journeys.storage.tenant_store import TenantStore

SQLITE_BUSY_TIMEOUT_MS = 10_000
_BEGIN_OPTION = "journeys_sqlite_begin"


class Transaction:
    """One database transaction; everything done through it commits or rolls back together."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection
        self.keys = KeyStore(connection)
        self.partitions = EventPartitions(connection)
        self.jobs = JobStore(connection)

    def tenant(self, tenant: Tenant) -> TenantStore:
        return TenantStore(self._connection, tenant)


class Database:
    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.dialect = make_url(url).get_backend_name()
        if self.dialect == "sqlite":
            _ensure_parent_dir(url)
        self.engine: AsyncEngine = create_async_engine(url, echo=echo, **_engine_options(url))
        if self.dialect == "sqlite":
            _configure_sqlite(self.engine)

    @asynccontextmanager
    async def transaction(self, *, write: bool) -> AsyncIterator[Transaction]:
        """A transaction that reads a consistent snapshot or, with `write`, holds the right to
        write from its first statement, so concurrent writers queue instead of failing."""
        async with self.engine.connect() as connection:
            if write and self.dialect == "sqlite":
                connection = await connection.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
            elif not write and self.dialect == "postgresql":
                # Its default, READ COMMITTED, would give every statement a snapshot of its own.
                connection = await connection.execution_options(isolation_level="REPEATABLE READ")
            async with connection.begin():
                yield Transaction(connection)

    async def keep_partitions_ready(self, today: date) -> list[str]:
        """PostgreSQL: creates the events partitions of this month and the months ahead that
        are missing (storage/partitions.py); returns their names."""
        if self.dialect != "postgresql":
            return []
        async with self.transaction(write=True) as tx:
            return await tx.partitions.ensure(today)

    async def dispose(self) -> None:
        await self.engine.dispose()

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.dispose()


def _engine_options(url: str) -> dict[str, Any]:
    if make_url(url).get_backend_name() == "sqlite":
        return {}
    return {"pool_size": 10, "max_overflow": 10, "pool_pre_ping": True}


def _ensure_parent_dir(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def _configure_sqlite(engine: AsyncEngine) -> None:
    # pysqlite's implicit transactions cannot take the write lock up front; with them off we
    # issue BEGIN ourselves (SQLAlchemy's documented recipe for SQLite).
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # Checkpoint (and fsync) every ~40 MB of WAL instead of every ~4 MB: a 500-event
        # batch dirties ~1,500 pages, so the default checkpointed on nearly every commit.
        cursor.execute("PRAGMA wal_autocheckpoint=10000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")
