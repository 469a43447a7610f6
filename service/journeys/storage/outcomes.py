"""Offer outcomes: per offer type and context, the claims before expiry (successes) and the
expiries unclaimed (failures), counted and weighed by recency (`rules/recency.py`). Added to
incrementally by the claim and the expiry sweep, in their own transactions; read whole once
per tenant by the analytics job, decayed to its instant."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select

from journeys.rules import Context, Outcome, Outcomes
from journeys.rules.recency import decayed, scaled
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
            "successes_scaled": counts.successes_scaled + upsert.excluded.successes_scaled,
            "failures_scaled": counts.failures_scaled + upsert.excluded.failures_scaled,
        },
    )


class OfferOutcomes(ScopedStore):
    _ADD_OUTCOMES = per_dialect(_add)

    async def count_outcomes(
        self,
        at: datetime,
        successes: Iterable[OutcomeKey] = (),
        failures: Iterable[OutcomeKey] = (),
    ) -> None:
        """Adds one success or failure per key, happened `at` (keys of offers made before
        contexts were recorded are None and count for nothing)."""
        won = Counter(key for key in successes if None not in key)
        lost = Counter(key for key in failures if None not in key)
        keys = sorted(won.keys() | lost.keys())  # one lock order for concurrent writers
        if not keys:
            return
        tenant = self._scope.columns()
        weight = scaled(at)
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
                    "successes_scaled": won[(offer_type, stage, tier)] * weight,
                    "failures_scaled": lost[(offer_type, stage, tier)] * weight,
                }
                for offer_type, stage, tier in keys
            ],
        )

    _ALL_OUTCOMES = select(offer_outcomes).where(TenantScope.of(offer_outcomes))

    async def offer_outcomes(self, as_of: datetime) -> Outcomes:
        """Every context's outcomes, weighed at `as_of`: {(stage, tier): {offer type: Outcome}}."""
        found: dict[Context, dict[str, Outcome]] = {}
        for row in await self._connection.execute(self._ALL_OUTCOMES, self._scope.binds()):
            found.setdefault((row.stage, row.tier), {})[row.offer_type] = Outcome(
                row.successes,
                row.failures,
                (decayed(row.successes_scaled, as_of), decayed(row.failures_scaled, as_of)),
            )
        return found
