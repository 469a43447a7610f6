"""A tenant's holdout share, when it is not the documented default."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from journeys.storage.dialect import insert_for
from journeys.storage.schema import offer_holdouts
from journeys.storage.scope import ScopedStore, TenantScope

_SHARE = select(offer_holdouts.c.share).where(TenantScope.of(offer_holdouts))


class Holdouts(ScopedStore):
    async def holdout_share(self) -> float | None:
        """The tenant's share, or None when it never set one."""
        value = await self._connection.scalar(_SHARE, self._scope.binds())
        return None if value is None else float(value)

    async def set_holdout_share(self, share: float, now: datetime) -> None:
        statement = insert_for(self._connection)(offer_holdouts).values(
            **self._scope.columns(), share=share, updated_at=now
        )
        await self._connection.execute(
            statement.on_conflict_do_update(
                index_elements=TenantScope.columns_of(offer_holdouts),
                set_={"share": statement.excluded.share, "updated_at": now},
            )
        )
