"""Many rows in one driver call, without SQLAlchemy's per-row statement machinery: for the
bulk seeding path and the analytics job, where that machinery costs more than the database."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Dialect, Table
from sqlalchemy.ext.asyncio import AsyncConnection

from journeys.storage.connection import StoreConnection


class BulkInsert:
    """A plain INSERT for the driver's executemany over tuples of stored values. Values go
    through SQLAlchemy's own type processors (`processor`), so rows read back exactly as if
    SQLAlchemy had written them."""

    def __init__(self, table: Table, columns: Sequence[str], dialect: Dialect) -> None:
        self.sql = (
            f"INSERT INTO {table.name} ({', '.join(columns)}) "
            f"VALUES ({', '.join(placeholders(dialect, len(columns)))})"
        )
        self._table = table
        self._columns = tuple(columns)
        self._dialect = dialect

    async def execute(
        self, connection: AsyncConnection | StoreConnection, rows: list[tuple[Any, ...]]
    ) -> None:
        """PostgreSQL: COPY (asyncpg's copy_records_to_table); SQLite: executemany."""
        if not rows:
            return
        if self._dialect.name == "postgresql":
            assert isinstance(connection, AsyncConnection), "asyncpg runs on an AsyncConnection"
            raw = await connection.get_raw_connection()
            driver = raw.driver_connection
            assert driver is not None
            await driver.copy_records_to_table(
                self._table.name, records=rows, columns=list(self._columns)
            )
        else:
            await connection.exec_driver_sql(self.sql, rows)

    def processor(self, column: str) -> Callable[[Any], Any]:
        return bind_processor(self._table, column, self._dialect)


def bind_processor(table: Table, column: str, dialect: Dialect) -> Callable[[Any], Any]:
    """What SQLAlchemy does to a Python value of `table.column` before the driver sees it."""
    process = table.c[column].type.dialect_impl(dialect).bind_processor(dialect)
    return process if process is not None else _same


def placeholders(dialect: Dialect, count: int) -> list[str]:
    """The driver's own parameter markers (for exec_driver_sql)."""
    if dialect.paramstyle == "qmark":
        return ["?"] * count
    if dialect.paramstyle == "numeric_dollar":
        return [f"${n}" for n in range(1, count + 1)]
    raise NotImplementedError(f"paramstyle {dialect.paramstyle}")  # pragma: no cover


def _same(value: Any) -> Any:
    return value
