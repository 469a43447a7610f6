"""What the analytics job needs to fill one tenant's offers, read once per run, and the offers
it makes for one user: the guard rails and the learned choice (`rules`), the holdout."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from journeys import rules
from journeys.domain import NewOffer, Tenant, UserCounters
from journeys.rules import CatalogueEntry, OfferHistory, Outcomes, Sampler, Segments
from journeys.rules.due import RULES_VERSION
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
    seed: int | None
    #: Unseeded, one source of fresh draws serves every user.
    fresh: random.Random = field(default_factory=random.Random)

    @property
    def fingerprint(self) -> str:
        """What every user's stored offers and due times depend on beyond the user's own
        data: a change recomputes the whole tenant (`rules/due.py`)."""
        described = json.dumps(
            {
                "rules": RULES_VERSION,
                "holdout": self.holdout_share,
                "catalogue": [dataclasses.asdict(entry) for entry in self.offer_types],
            },
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(described.encode()).hexdigest()

    def _sampler(self, external_id: str) -> Sampler:
        """A run repeats exactly under a seed; otherwise draws are fresh."""
        if self.seed is None:
            return self.fresh
        tenant = self.tenant
        instant = self.as_of.strftime("%Y-%m-%dT%H:%M:%SZ")
        return _SeededDraws(
            f"{self.seed}/{tenant.partner_id}/{tenant.environment.value}/{instant}/{external_id}"
        )

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
            self._sampler(user.external_id),
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
        seed=seed,
    )


class _SeededDraws:
    """One user's draws under `JOURNEYS_OFFER_SEED`, seeded by the seed, the tenant, the
    instant and the user alone: the same whichever other users a run plans, and in whatever
    order (an incremental run plans only the due ones). The generator is made only if the
    user's plan draws at all, as most never do."""

    def __init__(self, key: str) -> None:
        self._key = key
        self._random: random.Random | None = None

    def _draws(self) -> random.Random:
        if self._random is None:
            self._random = random.Random(self._key)
        return self._random

    def betavariate(self, alpha: float, beta: float) -> float:
        return self._draws().betavariate(alpha, beta)

    def random(self) -> float:
        return self._draws().random()

    def shuffle(self, x: list[Any]) -> None:
        self._draws().shuffle(x)
