"""The one way into the database: engines, transactions and the stores they hand out."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from journeys.domain import Tenant
from journeys.storage.connection import InlineConnection, StoreConnection
from journeys.storage.job_store import JobStore
from journeys.storage.key_store import KeyStore
from journeys.storage.lookups import Lookups
from journeys.storage.partitions import EventPartitions
from journeys.storage.tenant_store import TenantStore
from journeys.storage.webhooks import Outbox
from journeys.storage.write_lock import SQLITE_BUSY_TIMEOUT_MS, begin_immediate

_BEGIN_OPTION = "journeys_sqlite_begin"
_BEGUN = "begun"


class Transaction:
    """One database transaction; everything done through it commits or rolls back together."""

    def __init__(self, connection: StoreConnection) -> None:
        self._connection = connection
        self.keys = KeyStore(connection)
        self.partitions = EventPartitions(connection)
        self.jobs = JobStore(connection)
        self.outbox = Outbox(connection)
        #: Whether webhook messages were written (the dispatcher is woken on commit).
        self.announced = False

    def tenant(self, tenant: Tenant) -> TenantStore:
        return TenantStore(self._connection, tenant, self._announce)

    def _announce(self) -> None:
        self.announced = True


StatementListener = Callable[[str, Any], None]
CommitListener = Callable[[], None]


class Database:
    def __init__(self, url: str, *, echo: bool = False, connections: int | None = None) -> None:
        """`connections`: on PostgreSQL, the most this process opens, half for the request
        path's reads and half for everything else (no overflow beyond them); unset, 20 and
        10 (a command's own process)."""
        self.url = url
        self.dialect = make_url(url).get_backend_name()
        reads, others = _pool_split(connections)
        #: For bulk work and inspection; transactions on SQLite run on `_inline` instead.
        self.engine: AsyncEngine = create_async_engine(
            url, echo=echo, **_engine_options(url, others)
        )
        self._inline: Engine | None = None
        self._on_announced: list[CommitListener] = []
        #: The request path's reads, on the raw driver (storage/lookups.py).
        self.lookups = Lookups(url, pool_size=reads)
        if self.dialect == "sqlite":
            _ensure_parent_dir(url)
            _configure_sqlite(self.engine.sync_engine)
            # The standard library driver, called on the event loop (storage/connection.py).
            self._inline = create_engine(make_url(url).set(drivername="sqlite+pysqlite"), echo=echo)
            _configure_sqlite(self._inline)

    @asynccontextmanager
    async def transaction(self, *, write: bool) -> AsyncIterator[Transaction]:
        """A transaction that reads a consistent snapshot or, with `write`, holds the right to
        write from its first statement, so concurrent writers queue instead of failing."""
        if self._inline is not None:
            with self._inline.connect() as inline:
                if write:
                    # Waits for another process's write lock off the loop (storage/write_lock.py);
                    # the transaction below then only records that it has begun.
                    await begin_immediate(inline.connection.driver_connection)
                    inline = inline.execution_options(**{_BEGIN_OPTION: _BEGUN})
                with inline.begin():
                    transaction = Transaction(InlineConnection(inline))
                    yield transaction
        else:
            async with self.engine.connect() as connection:
                if write and self.dialect == "sqlite":
                    connection = await connection.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
                elif not write and self.dialect == "postgresql":
                    # Its default, READ COMMITTED, would give every statement a snapshot of
                    # its own.
                    connection = await connection.execution_options(
                        isolation_level="REPEATABLE READ"
                    )
                async with connection.begin():
                    transaction = Transaction(connection)
                    yield transaction
        if transaction.announced:
            for listener in self._on_announced:
                listener()

    def on_announced(self, listener: CommitListener) -> None:
        """Calls `listener()` after each commit that wrote webhook messages."""
        self._on_announced.append(listener)

    async def keep_partitions_ready(self, today: date) -> list[str]:
        """PostgreSQL: creates the events partitions of this month and the months ahead that
        are missing (storage/partitions.py); returns their names."""
        if self.dialect != "postgresql":
            return []
        async with self.transaction(write=True) as tx:
            return await tx.partitions.ensure(today)

    def on_statement(self, listener: StatementListener) -> None:
        """Calls `listener(sql, parameters)` before each statement a transaction runs."""

        def before(_c: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
            listener(statement, parameters)

        target = self._inline if self._inline is not None else self.engine.sync_engine
        event.listen(target, "before_cursor_execute", before)

    async def dispose(self) -> None:
        await self.lookups.close()
        await self.engine.dispose()
        if self._inline is not None:
            self._inline.dispose()

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.dispose()


def _pool_split(connections: int | None) -> tuple[int, tuple[int, int]]:
    """(read pool size, (pool size, overflow) for the rest) within `connections`."""
    if connections is None:
        return 10, (10, 10)
    reads = max(1, connections // 2)
    return reads, (max(1, connections - reads), 0)


def _engine_options(url: str, pool: tuple[int, int]) -> dict[str, Any]:
    if make_url(url).get_backend_name() == "sqlite":
        return {}
    size, overflow = pool
    return {"pool_size": size, "max_overflow": overflow, "pool_pre_ping": True}


def _ensure_parent_dir(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def _configure_sqlite(engine: Engine) -> None:
    # pysqlite's implicit transactions cannot take the write lock up front; with them off we
    # issue BEGIN ourselves (SQLAlchemy's documented recipe for SQLite).
    @event.listens_for(engine, "connect")
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

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
        if mode != _BEGUN:
            connection.exec_driver_sql(f"BEGIN {mode}")
