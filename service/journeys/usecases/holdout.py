"""A tenant's offer holdout share: what `journeys offers holdout` reads and sets."""

from __future__ import annotations

import math
from datetime import datetime

from journeys.domain import Environment, Tenant
from journeys.errors import InvalidArgument
from journeys.rules.holdout import DEFAULT_HOLDOUT_SHARE
from journeys.storage.database import Database
from journeys.storage.tenant_store import TenantStore


async def share_of(store: TenantStore) -> float:
    """The tenant's holdout share: its own, or the documented default."""
    share = await store.holdout_share()
    return DEFAULT_HOLDOUT_SHARE if share is None else share


async def holdout(
    database: Database,
    partner: str,
    environment: Environment,
    now: datetime,
    share: float | None = None,
) -> float | None:
    """The tenant's share after setting it to `share` (when given, 0 to 1); None for an
    unknown partner."""
    if share is not None and not (math.isfinite(share) and 0 <= share <= 1):
        raise InvalidArgument.field("share", "share must be between 0 and 1")
    async with database.transaction(write=share is not None) as tx:
        partner_id = await tx.keys.partner_id(partner)
        if partner_id is None:
            return None
        store = tx.tenant(Tenant(partner_id, environment))
        if share is not None:
            await store.set_holdout_share(share, now)
        return await share_of(store)
