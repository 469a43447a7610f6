"""A tenant's override of the offer catalogue."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from journeys.domain import JsonObject
from journeys.storage.dialect import insert_for
from journeys.storage.schema import catalogue_overrides
from journeys.storage.scope import ScopedStore, TenantScope

_OVERRIDE = select(catalogue_overrides.c.overrides).where(TenantScope.of(catalogue_overrides))


class Catalogue(ScopedStore):
    async def catalogue_override(self) -> dict[str, JsonObject]:
        value = await self._connection.scalar(_OVERRIDE, self._scope.binds())
        return dict(value) if value else {}

    async def set_catalogue_override(self, override: dict[str, JsonObject], now: datetime) -> None:
        statement = insert_for(self._connection)(catalogue_overrides).values(
            **self._scope.columns(), overrides=override, updated_at=now
        )
        await self._connection.execute(
            statement.on_conflict_do_update(
                index_elements=TenantScope.columns_of(catalogue_overrides),
                set_={"overrides": statement.excluded.overrides, "updated_at": now},
            )
        )
