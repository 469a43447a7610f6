"""Statements run on the raw driver (`sqlite3`, asyncpg) instead of through SQLAlchemy.

On a request's path SQLAlchemy's own work (statement caching, parameter and result
processing, the pool) cost 10 to 30 times the database's (measured: ~320 µs against ~20 µs for
one user's offers on SQLite). So the hot statements are still *built* with SQLAlchemy Core,
scoped by `TenantScope` like every other, but compiled once per dialect to the driver's own
SQL and run on the driver: values go in and come out in the driver's types, converted by the
dialect's `Codec` only where the two engines differ (SQLite has no timestamp or JSON type).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime
from operator import itemgetter
from typing import Any, Protocol

from sqlalchemy import Boolean, ColumnElement, Dialect, bindparam
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection as SyncConnection
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import Compiled, SQLCompiler
from sqlalchemy.sql.elements import BindParameter

from journeys.storage.connection import InlineConnection, StoreConnection
from journeys.storage.dialect import per_dialect

Row = tuple[Any, ...]

_DIALECTS: dict[str, Dialect] = {
    "sqlite": sqlite.pysqlite.dialect(),
    "postgresql": postgresql.asyncpg.dialect(),  # type: ignore[no-untyped-call]
}


class Codec:
    """How one engine's driver holds the values whose types SQLite lacks."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        self.sqlite = dialect == "sqlite"

    def time_in(self, value: datetime) -> Any:
        """An aware datetime as the driver binds it: SQLite stores SQLAlchemy's text form of
        naive UTC (which sorts as time does), PostgreSQL `timestamptz`."""
        if not self.sqlite:
            return value
        # Formatted by hand: strftime's %Y does not pad years before 1000 to four digits,
        # and the text must sort as time does (and parse as SQLAlchemy's).
        value = value.astimezone(UTC)
        return (
            f"{value.year:04d}-{value.month:02d}-{value.day:02d} "
            f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}.{value.microsecond:06d}"
        )

    def time_out(self, value: Any) -> datetime:
        if isinstance(value, str):
            return datetime.fromisoformat(value).replace(tzinfo=UTC)
        # asyncpg gives PostgreSQL's -infinity (what it writes for 0001-01-01T00:00:00Z) as
        # a naive `datetime.min`: read as UTC, as `types.UTCDateTime` does.
        if value.tzinfo is None:
            naive: datetime = value.replace(tzinfo=UTC)
            return naive
        result: datetime = value.astimezone(UTC)
        return result

    def date_in(self, value: date) -> Any:
        """A date as the driver binds it: SQLite stores SQLAlchemy's `YYYY-MM-DD` text."""
        return value.isoformat() if self.sqlite else value

    def list_in(self, values: Sequence[str]) -> Any:
        """The values of a `one_of` parameter: a JSON array on SQLite, an array on PostgreSQL."""
        return json.dumps(values) if self.sqlite else list(values)

    @staticmethod
    def json_in(value: Any) -> str:
        """JSON as both drivers take it here: text (SQLAlchemy's asyncpg codecs, which every
        connection of ours carries, send jsonb as text too)."""
        return json.dumps(value)

    @staticmethod
    def json_out(value: Any) -> Any:
        return json.loads(value) if isinstance(value, str | bytes) else value


class _OneOf(ColumnElement[bool]):
    type = Boolean()
    inherit_cache = True
    # A predicate itself: else SQLite (no boolean type) would be given `... = 1`.
    _is_implicitly_boolean = True

    def __init__(self, column: ColumnElement[Any], name: str) -> None:
        self.column = column
        self.values: BindParameter[Any] = bindparam(name)


def one_of(column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
    """`column IN (...)` over a list bound as one parameter `name` (its value from
    `Codec.list_in`), so the statement is compiled once whatever the list's length (an
    expanding IN is rendered again for each length)."""
    return _OneOf(column, name)


@compiles(_OneOf, "sqlite")
def _one_of_sqlite(element: _OneOf, compiler: SQLCompiler, **kw: Any) -> str:
    column, values = compiler.process(element.column, **kw), compiler.process(element.values, **kw)
    return f"{column} IN (SELECT value FROM json_each({values}))"


@compiles(_OneOf, "postgresql")
def _one_of_postgresql(element: _OneOf, compiler: SQLCompiler, **kw: Any) -> str:
    column, values = compiler.process(element.column, **kw), compiler.process(element.values, **kw)
    return f"{column} = ANY(CAST({values} AS VARCHAR[]))"


class Statement:
    """A Core statement compiled once per dialect to the driver's SQL, with the names of its
    parameters in the driver's positional order (and the values of those it fixes itself,
    such as `column == "literal"`)."""

    def __init__(self, statement: ClauseElement) -> None:
        self._statement = statement
        self._compiled: dict[str, tuple[str, tuple[str, ...], dict[str, Any]]] = {}

    def _compile(self, dialect: str) -> tuple[str, tuple[str, ...], dict[str, Any]]:
        found = self._compiled.get(dialect)
        if found is None:
            compiled: Compiled = self._statement.compile(dialect=_DIALECTS[dialect])
            names = tuple(compiled.positiontup or ())  # type: ignore[attr-defined]
            fixed = {
                name: bind.value
                for name, bind in compiled.binds.items()  # type: ignore[attr-defined]
                if not bind.required and bind.callable is None
            }
            found = self._compiled[dialect] = (compiled.string, names, fixed)
        return found

    def sql(self, dialect: str) -> tuple[str, tuple[str, ...]]:
        sql, names, _ = self._compile(dialect)
        return sql, names

    def arguments(self, dialect: str, values: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
        """The driver's SQL and its arguments from `values` by parameter name."""
        sql, names, fixed = self._compile(dialect)
        if fixed:
            values = {**fixed, **values}
        return sql, tuple(values[name] for name in names)

    def argument_rows(
        self, dialect: str, rows: Iterable[dict[str, Any]]
    ) -> tuple[str, list[tuple[Any, ...]]]:
        """`arguments` for each of several rows (an executemany)."""
        sql, names, fixed = self._compile(dialect)
        if fixed:
            rows = ({**fixed, **row} for row in rows)
        return sql, list(map(positional(names), rows))


class _PerDialect(Statement):
    def __init__(self, build: Callable[[Any], ClauseElement]) -> None:
        statements = per_dialect(build)
        super().__init__(statements["sqlite"])
        self._each = {dialect: Statement(statement) for dialect, statement in statements.items()}

    def _compile(self, dialect: str) -> tuple[str, tuple[str, ...], dict[str, Any]]:
        return self._each[dialect]._compile(dialect)


def per_dialect_statement(build: Callable[[Any], ClauseElement]) -> Statement:
    """A `Statement` built from each engine's own `insert` (`build(insert)`), for what only
    those constructs express (ON CONFLICT)."""
    return _PerDialect(build)


class Driver(Protocol):
    """The raw connection under a transaction (or the process's reader), awaitable for both
    engines."""

    codec: Codec

    async def fetch(self, statement: Statement, values: dict[str, Any]) -> list[Row]: ...

    async def execute(self, statement: Statement, values: dict[str, Any]) -> None: ...

    async def executemany(self, statement: Statement, rows: Iterable[dict[str, Any]]) -> None: ...

    async def fetchmany(self, statement: Statement, rows: Iterable[dict[str, Any]]) -> list[Row]:
        """`executemany` of a statement with RETURNING: the rows every execution returned."""
        ...


class SqliteDriver:
    """`sqlite3` called on the event loop's thread, as every SQLite transaction here is
    (storage/connection.py explains why)."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection
        self.codec = Codec("sqlite")

    async def fetch(self, statement: Statement, values: dict[str, Any]) -> list[Row]:
        sql, arguments = statement.arguments("sqlite", values)
        return self.connection.execute(sql, arguments).fetchall()

    async def execute(self, statement: Statement, values: dict[str, Any]) -> None:
        sql, arguments = statement.arguments("sqlite", values)
        self.connection.execute(sql, arguments)

    async def executemany(self, statement: Statement, rows: Iterable[dict[str, Any]]) -> None:
        self.connection.executemany(*statement.argument_rows("sqlite", rows))

    async def fetchmany(self, statement: Statement, rows: Iterable[dict[str, Any]]) -> list[Row]:
        # sqlite3's executemany drops what RETURNING returns: one execution per row.
        sql, arguments = statement.argument_rows("sqlite", rows)
        execute = self.connection.execute
        return [found for values in arguments for found in execute(sql, values).fetchall()]


class AsyncpgDriver:
    """An asyncpg connection. Its statement cache prepares each statement once per
    connection and runs it by name from then on."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.codec = Codec("postgresql")

    async def fetch(self, statement: Statement, values: dict[str, Any]) -> list[Row]:
        sql, arguments = statement.arguments("postgresql", values)
        return list(await self.connection.fetch(sql, *arguments))

    async def execute(self, statement: Statement, values: dict[str, Any]) -> None:
        sql, arguments = statement.arguments("postgresql", values)
        await self.connection.execute(sql, *arguments)

    async def executemany(self, statement: Statement, rows: Iterable[dict[str, Any]]) -> None:
        await self.connection.executemany(*statement.argument_rows("postgresql", rows))

    async def fetchmany(self, statement: Statement, rows: Iterable[dict[str, Any]]) -> list[Row]:
        return list(await self.connection.fetchmany(*statement.argument_rows("postgresql", rows)))


async def driver_of(connection: StoreConnection) -> Driver:
    """The raw driver of a transaction's connection, inside that transaction: what runs on
    it commits or rolls back with the rest."""
    if isinstance(connection, InlineConnection):
        return SqliteDriver(_sqlite_of(connection.sync))
    if isinstance(connection, AsyncConnection):
        raw = await connection.get_raw_connection()
        adapted: Any = raw.dbapi_connection
        # SQLAlchemy's adapter opens the asyncpg transaction at its first statement: a raw
        # statement run first would otherwise run outside it.
        if adapted._transaction is None:
            await adapted._start_transaction()
        return AsyncpgDriver(raw.driver_connection)
    raise TypeError(f"no raw driver for {type(connection).__name__}")


def _sqlite_of(connection: SyncConnection) -> sqlite3.Connection:
    raw: Any = connection.connection.driver_connection
    return raw  # type: ignore[no-any-return]


def positional(names: tuple[str, ...]) -> Callable[[dict[str, Any]], Row]:
    """A row's values in the driver's positional order, picked in C: per row of a batch, a
    Python loop over the names cost more than the driver's own binding (measured)."""
    if len(names) > 1:
        return itemgetter(*names)
    return lambda row: tuple(row[name] for name in names)
