"""The tenant's suppression list: erased ids that may not come back, kept as digests only.

Profiles are created in two places (`Profiles.upsert_user`, `Ingestion`); both ask
`suppressed_among` about the profiles they have just created, never about existing ones, so
users who exist cost nothing extra."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import bindparam, delete, select

from journeys.domain import external_id_digest
from journeys.storage.dialect import per_dialect
from journeys.storage.driver import Driver, Statement, one_of
from journeys.storage.schema import suppressions
from journeys.storage.scope import ScopedStore, TenantScope

_SUPPRESSED = Statement(
    select(suppressions.c.external_id_digest).where(
        TenantScope.of(suppressions), one_of(suppressions.c.external_id_digest, "digests")
    )
)


async def suppressed_among(
    db: Driver, scope: TenantScope, external_ids: Collection[str]
) -> set[str]:
    """Which of `external_ids` the tenant's suppression list holds.

    Asked after the profiles were inserted, in the same transaction: on PostgreSQL an erasure
    with suppression that commits meanwhile either is seen here or finds (and erases) the
    new profile, so an erased id never slips back in."""
    if not external_ids:
        return set()
    by_digest = {external_id_digest(external_id): external_id for external_id in external_ids}
    rows = await db.fetch(_SUPPRESSED, scope.binds(digests=db.codec.list_in(sorted(by_digest))))
    return {by_digest[digest] for (digest,) in rows}


class Suppressions(ScopedStore):
    _ADD = per_dialect(
        lambda insert: insert(suppressions).on_conflict_do_nothing(
            index_elements=list(suppressions.primary_key)
        )
    )

    async def suppress(self, external_id: str, now: datetime) -> None:
        """Puts the id on the list; already there is fine."""
        await self._connection.execute(
            self._ADD[self._connection.dialect.name],
            {
                **self._scope.columns(),
                "external_id_digest": external_id_digest(external_id),
                "created_at": now,
            },
        )

    _LIFT = delete(suppressions).where(
        TenantScope.of(suppressions),
        suppressions.c.external_id_digest == bindparam("digest"),
    )

    async def lift_suppression(self, external_id: str) -> bool:
        """Takes the id off the list; False if it was not on it."""
        result = await self._connection.execute(
            self._LIFT, self._scope.binds(digest=external_id_digest(external_id))
        )
        return bool(result.rowcount)
