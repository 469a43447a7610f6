"""The connection the stores talk to: an asyncio one (PostgreSQL) or SQLite run inline.

SQLite is a library, not a server: a statement on a local file takes microseconds, while
handing each one to aiosqlite's thread and back cost ~0.2 ms of hand-offs (measured), more than
most statements themselves. So transactions on SQLite run the standard library driver on the
event loop's own thread. A transaction never waits for anything else in between, so it also
never interleaves with another one of this process: the process's writers cannot contend with
each other, only with other processes (`busy_timeout` bounds that wait).
"""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import Connection as SyncConnection
from sqlalchemy import CursorResult, Dialect, Executable


class StoreConnection(Protocol):
    """What the stores use of SQLAlchemy's `AsyncConnection`. Results are `CursorResult`s,
    typed `Any` here: their row types vary with each statement."""

    @property
    def dialect(self) -> Dialect: ...

    async def execute(self, statement: Executable, parameters: Any = None) -> Any: ...

    async def scalar(self, statement: Executable, parameters: Any = None) -> Any: ...

    async def exec_driver_sql(
        self, statement: str, parameters: Any = None
    ) -> CursorResult[Any]: ...


class InlineConnection:
    """A synchronous connection behind `StoreConnection`'s awaitable methods."""

    def __init__(self, connection: SyncConnection) -> None:
        self._connection = connection

    @property
    def dialect(self) -> Dialect:
        return self._connection.dialect

    @property
    def sync(self) -> SyncConnection:
        """The synchronous connection itself (its raw driver: storage/driver.py)."""
        return self._connection

    async def execute(self, statement: Executable, parameters: Any = None) -> CursorResult[Any]:
        return self._connection.execute(statement, parameters)

    async def scalar(self, statement: Executable, parameters: Any = None) -> Any:
        return self._connection.scalar(statement, parameters)

    async def exec_driver_sql(self, statement: str, parameters: Any = None) -> CursorResult[Any]:
        return self._connection.exec_driver_sql(statement, parameters)
