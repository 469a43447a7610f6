"""What the analytics job needs to fill one tenant's offers, read once per run, and the offers
it makes for one user: the guard rails and the learned choice (`rules`), the holdout."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime

from journeys import rules
from journeys.domain import NewOffer, Tenant, UserCounters
from journeys.rules import CatalogueEntry, OfferHistory, Outcomes, Segments
from journeys.rules.holdout import held_out
from journeys.storage.tenant_store import TenantStore
from journeys.usecases import catalogue, holdout


@dataclass(frozen=True)
class OfferPlan:
    tenant: Tenant
    as_of: datetime
    offer_types: list[CatalogueEntry]
    outcomes: Outcomes
    holdout_share: float
    sampler: random.Random

    def offers_for(
        self, user: UserCounters, segments: Segments, history: OfferHistory
    ) -> list[NewOffer]:
        """The offers to create for `user` now; none for a held-out user."""
        tenant = self.tenant
        if held_out(
            tenant.partner_id, tenant.environment.value, user.external_id, self.holdout_share
        ):
            return []
        planned = rules.plan_offers(
            segments,
            rules.days_since(user.last_seen_at, self.as_of),
            history,
            self.offer_types,
            self.as_of,
            self.outcomes,
            self.sampler,
        )
        return [
            NewOffer(
                user_id=user.id,
                offer_type=offer.entry.offer_type,
                game_type=offer.entry.game_type,
                title=offer.entry.title,
                description=offer.entry.description,
                points_value=offer.entry.points_value,
                expires_at=offer.expires_at,
                metadata=offer.metadata,
                context_stage=segments.stage.value,
                context_tier=segments.tier.value,
            )
            for offer in planned
        ]


async def load(
    store: TenantStore, tenant: Tenant, as_of: datetime, seed: int | None, learning: bool = True
) -> OfferPlan:
    """Read after the expiry sweep, in its transaction, so its failures are counted. Without
    `learning`, no outcomes: the priority decides every choice."""
    return OfferPlan(
        tenant=tenant,
        as_of=as_of,
        offer_types=catalogue.entries(await store.catalogue_override()),
        outcomes=await store.offer_outcomes(as_of) if learning else {},
        holdout_share=await holdout.share_of(store),
        sampler=_sampler(tenant, as_of, seed),
    )


def _sampler(tenant: Tenant, as_of: datetime, seed: int | None) -> random.Random:
    """The draws of one tenant's run. Under `JOURNEYS_OFFER_SEED` they depend only on the seed,
    the tenant and the instant (users are planned in a fixed order), so a run can be repeated
    exactly; otherwise they are fresh."""
    if seed is None:
        return random.Random()
    instant = as_of.strftime("%Y-%m-%dT%H:%M:%SZ")
    return random.Random(f"{seed}/{tenant.partner_id}/{tenant.environment.value}/{instant}")
