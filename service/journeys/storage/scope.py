"""The tenant scope: the one place that knows which columns make a row a tenant's and how a
statement is bound to them. Every statement on tenant-owned data goes through it, so an
unscoped query cannot be written by taking a different road."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, ColumnElement, Table, and_, bindparam

from journeys.domain import Tenant
from journeys.storage.connection import StoreConnection

#: The columns that make a row a tenant's, in the order bulk rows carry them.
COLUMNS = ("partner_id", "environment")
# The parameter names carry a prefix so they never collide with a statement's own.
_BINDS = ("tenant_partner_id", "tenant_environment")


class TenantScope:
    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant
        self._values = (tenant.partner_id, tenant.environment.value)

    @staticmethod
    def of(table: Table) -> ColumnElement[bool]:
        """The predicate keeping `table` to the tenant. Bound at execution (`binds`), so a
        statement can be built once and reused by every tenant."""
        return and_(
            *(
                table.c[column] == bindparam(name)
                for column, name in zip(COLUMNS, _BINDS, strict=True)
            )
        )

    @staticmethod
    def columns_of(table: Table) -> list[Column[Any]]:
        """`table`'s tenant columns: the leading part of every tenant key."""
        return [table.c[column] for column in COLUMNS]

    @staticmethod
    def same_tenant(left: Table, right: Table) -> ColumnElement[bool]:
        """Joins rows of two tables only within one tenant."""
        return and_(*(left.c[column] == right.c[column] for column in COLUMNS))

    @staticmethod
    def sql(table: str) -> str:
        """`of` for a text statement (named parameters, bound by `binds`)."""
        return " AND ".join(
            f"{table}.{column} = :{name}" for column, name in zip(COLUMNS, _BINDS, strict=True)
        )

    @staticmethod
    def driver_sql(table: str, placeholders: list[str]) -> str:
        """`of` for a driver-level statement, whose parameters are positional: the tenant's
        `values` then go at those placeholders."""
        return " AND ".join(
            f"{table}.{column} = {marker}"
            for column, marker in zip(COLUMNS, placeholders, strict=True)
        )

    def binds(self, **values: Any) -> dict[str, Any]:
        """The parameters of a statement scoped with `of` or `sql`, with its own `values`."""
        return {**dict(zip(_BINDS, self._values, strict=True)), **values}

    def columns(self) -> dict[str, str]:
        """The tenant's columns of a row being inserted."""
        return dict(zip(COLUMNS, self._values, strict=True))

    def values(self) -> tuple[str, str]:
        """`columns` as a bulk row carries them (in `COLUMNS` order)."""
        return self._values

    def key(self, name: str) -> str:
        """A name unique across tenants (a messageId is unique only within its tenant)."""
        return "/".join((*self._values, name))


class ScopedStore:
    """What every store of tenant data holds: its connection and its tenant's scope."""

    def __init__(self, connection: StoreConnection, scope: TenantScope) -> None:
        self._connection = connection
        self._scope = scope
