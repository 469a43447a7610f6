"""The offer report (secret key): what the engine offered and what became of it, by type, and
what offers changed, measured against the holdout."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from journeys.domain import KeyKind, utc_now
from journeys.rules.holdout import held_out
from journeys.rules.statistics import Estimate, claim_rate, difference_of_means, mean
from journeys.storage.database import Database
from journeys.storage.reports import OfferFates
from journeys.usecases import catalogue, holdout, validation
from journeys.usecases.auth import Caller, authenticate

UPLIFT_METRIC = "plays7d"


@dataclass(frozen=True)
class TypeReport:
    offer_type: str
    fates: OfferFates
    #: claimed / (claimed + expired) with its Wilson interval; None without either.
    claim_rate: Estimate | None


@dataclass(frozen=True)
class Uplift:
    treatment: float | None
    holdout: float | None
    difference: Estimate | None
    treatment_users: int
    holdout_users: int
    metric: str = UPLIFT_METRIC


@dataclass(frozen=True)
class OfferReport:
    since: datetime
    until: datetime
    holdout_share: float
    types: tuple[TypeReport, ...]
    uplift: Uplift


def query_schema() -> dict[str, validation.Schema]:
    """GET /reports/offers' query rules as JSON Schema (see `validation.json_schemas`); that
    `since` is before now is left to the description."""
    return {"since": {"type": "string", "anyOf": [{"const": ""}, {"format": "date-time"}]}}


class Reports:
    def __init__(self, database: Database, clock: Callable[[], datetime] = utc_now) -> None:
        self._db = database
        self._clock = clock

    async def offers(self, caller: Caller, since: str) -> OfferReport:
        until = self._clock().replace(microsecond=0)
        async with self._db.transaction(write=False) as tx:
            tenant = await authenticate(tx.keys, caller, needs=KeyKind.SECRET)
            start = validation.report_since(since, until)
            store = tx.tenant(tenant)
            fates = await store.offer_fates(start, until)
            plays = await store.first_week_plays(start, until)
            share = await holdout.share_of(store)
            offer_types = catalogue.entries(await store.catalogue_override())
        treated: list[float] = []
        held: list[float] = []
        for external_id, count in plays.items():
            out = held_out(tenant.partner_id, tenant.environment.value, external_id, share)
            (held if out else treated).append(count)
        types = []
        for entry in sorted(offer_types, key=lambda item: (item.priority, item.offer_type)):
            fate = fates.get(entry.offer_type, OfferFates())
            rate = claim_rate(fate.claimed, fate.claimed + fate.expired)
            types.append(TypeReport(entry.offer_type, fate, rate))
        uplift = Uplift(
            treatment=mean(treated),
            holdout=mean(held),
            difference=difference_of_means(treated, held),
            treatment_users=len(treated),
            holdout_users=len(held),
        )
        return OfferReport(start, until, share, tuple(types), uplift)
