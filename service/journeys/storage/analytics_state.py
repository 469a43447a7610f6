"""What a tenant's stored analytics were last computed by, and as of when: the incremental
run's proof that a user who is not due needs no recomputing (`rules/due.py`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from journeys.storage.dialect import per_dialect
from journeys.storage.schema import analytics_tenants
from journeys.storage.scope import ScopedStore, TenantScope


@dataclass(frozen=True)
class AnalyticsState:
    #: The catalogue, holdout share and rules version the users were computed by.
    fingerprint: str
    #: The instant of the last run that finished the tenant: every classified user's stored
    #: segments hold as of it, recomputed then or provably unchanged.
    confirmed_as_of: datetime


def _record(insert: Any) -> Any:
    upsert = insert(analytics_tenants)
    return upsert.on_conflict_do_update(
        index_elements=list(analytics_tenants.primary_key),
        set_={
            "fingerprint": upsert.excluded.fingerprint,
            "confirmed_as_of": upsert.excluded.confirmed_as_of,
        },
    )


class AnalyticsStates(ScopedStore):
    _STATE = select(analytics_tenants.c.fingerprint, analytics_tenants.c.confirmed_as_of).where(
        TenantScope.of(analytics_tenants)
    )
    _RECORD_STATE = per_dialect(_record)

    async def analytics_state(self) -> AnalyticsState | None:
        """None before any run finished the tenant (since migration 0010)."""
        row = (await self._connection.execute(self._STATE, self._scope.binds())).first()
        return None if row is None else AnalyticsState(row.fingerprint, row.confirmed_as_of)

    async def record_analytics_state(self, state: AnalyticsState) -> None:
        await self._connection.execute(
            self._RECORD_STATE[self._connection.dialect.name],
            {
                **self._scope.columns(),
                "fingerprint": state.fingerprint,
                "confirmed_as_of": state.confirmed_as_of,
            },
        )
