"""Offer outcomes: per offer type and context, the claims before expiry (successes) and the
expiries unclaimed (failures). Added to incrementally by the claim and the expiry sweep, in
their own transactions; read whole once per tenant by the analytics job."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select

from journeys.rules import Context, Outcome, Outcomes
from journeys.storage.dialect import per_dialect
from journeys.storage.schema import offer_outcomes
from journeys.storage.scope import ScopedStore, TenantScope

#: An offer's outcome key: its type and context (stage, tier).
OutcomeKey = tuple[str, str, str]


def _add(insert: Any) -> Any:
    upsert = insert(offer_outcomes)
    counts = offer_outcomes.c
    return upsert.on_conflict_do_update(
        index_elements=list(offer_outcomes.primary_key),
        set_={
            "successes": counts.successes + upsert.excluded.successes,
            "failures": counts.failures + upsert.excluded.failures,
        },
    )


class OfferOutcomes(ScopedStore):
    _ADD_OUTCOMES = per_dialect(_add)

    async def count_outcomes(
        self, successes: Iterable[OutcomeKey] = (), failures: Iterable[OutcomeKey] = ()
    ) -> None:
        """Adds one success or failure per key (keys of offers made before contexts were
        recorded are None and count for nothing)."""
        won = Counter(key for key in successes if None not in key)
        lost = Counter(key for key in failures if None not in key)
        keys = sorted(won.keys() | lost.keys())  # one lock order for concurrent writers
        if not keys:
            return
        tenant = self._scope.columns()
        await self._connection.execute(
            self._ADD_OUTCOMES[self._connection.dialect.name],
            [
                {
                    **tenant,
                    "offer_type": offer_type,
                    "stage": stage,
                    "tier": tier,
                    "successes": won[(offer_type, stage, tier)],
                    "failures": lost[(offer_type, stage, tier)],
                }
                for offer_type, stage, tier in keys
            ],
        )

    _ALL_OUTCOMES = select(offer_outcomes).where(TenantScope.of(offer_outcomes))

    async def offer_outcomes(self) -> Outcomes:
        """Every context's outcomes: {(stage, tier): {offer type: Outcome}}."""
        found: dict[Context, dict[str, Outcome]] = {}
        for row in await self._connection.execute(self._ALL_OUTCOMES, self._scope.binds()):
            found.setdefault((row.stage, row.tier), {})[row.offer_type] = Outcome(
                row.successes, row.failures
            )
        return found
