"""Which offers a user should hold: pure functions of segments, offer history and a catalogue.

Who qualifies for each offer type (first column of the catalogue's priority order):

| Offer type          | Qualifies when                                   |
|---------------------|--------------------------------------------------|
| `win_back_play`     | stage `churned`                                  |
| `return_bonus`      | stage `churned`                                  |
| `retention_play`    | stage `at_risk` and churn risk >= 60             |
| `welcome_free_play` | stage `new`                                      |
| `welcome_bonus`     | stage `new`                                      |
| `vip_play`          | tier `whale`                                     |
| `multiplier_bonus`  | stage or tier `power_user`                       |
| `daily_free_spin`   | stage `active` or tier `regular`                 |

Filling a user's offers, as of an instant:
1. A user last seen more than 60 days ago gets nothing new.
2. Qualifying types are taken in catalogue priority order (lowest number first), skipping a
   type the user holds active, a type disabled in the catalogue, a type claimed or expired
   within its cooldown, and, for a type marked `once_per_utc_day`, a type already offered on
   the same UTC calendar day.
3. At most `MAX_ACTIVE_OFFERS` are active at once; only the free slots are filled. When more
   types are available than slots are free, the tenant's outcomes in the user's context may
   reorder them (`rules/learning.py`: Thompson sampling for types with enough outcomes, the
   priority for the others).
4. Each offer's metadata says why: `reason` (a sentence), `policy` (`priority`, or `learned`
   with the `claimRate` and `outcomes` its place rests on, also named in the sentence).
Because every created offer is active at the instant it is made, planning again at the same
instant creates nothing: the job is idempotent by construction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from journeys.rules.learning import Outcome, Outcomes, Ranked, Sampler, evidence, rank
from journeys.rules.segments import EngagementTier, LifecycleStage, Segments

MAX_ACTIVE_OFFERS = 3
INACTIVE_AFTER_DAYS = 60
AT_RISK_OFFER_MIN_CHURN_RISK = 60


@dataclass(frozen=True)
class CatalogueEntry:
    """How one offer type looks and behaves; data, overridable per partner and environment."""

    offer_type: str
    priority: int
    game_type: str
    title: str
    description: str
    points_value: int
    validity: timedelta
    cooldown: timedelta
    once_per_utc_day: bool = False
    enabled: bool = True
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OfferHistory:
    """What a user already has: active types, and when each type last ended or was made."""

    active_types: frozenset[str] = frozenset()
    last_ended_at: Mapping[str, datetime] = field(default_factory=dict)
    last_created_at: Mapping[str, datetime] = field(default_factory=dict)
    #: When each active type's offer expires (the analytics job's due time, `rules/due.py`).
    active_expires_at: Mapping[str, datetime] = field(default_factory=dict)


@dataclass(frozen=True)
class PlannedOffer:
    entry: CatalogueEntry
    expires_at: datetime
    metadata: dict[str, Any]


def qualifies(offer_type: str, segments: Segments) -> bool:
    stage, tier = segments.stage, segments.tier
    match offer_type:
        case "win_back_play" | "return_bonus":
            return stage is LifecycleStage.CHURNED
        case "retention_play":
            return (
                stage is LifecycleStage.AT_RISK
                and segments.churn_risk_score >= AT_RISK_OFFER_MIN_CHURN_RISK
            )
        case "welcome_free_play" | "welcome_bonus":
            return stage is LifecycleStage.NEW
        case "vip_play":
            return tier is EngagementTier.WHALE
        case "multiplier_bonus":
            return stage is LifecycleStage.POWER_USER or tier is EngagementTier.POWER_USER
        case "daily_free_spin":
            return stage is LifecycleStage.ACTIVE or tier is EngagementTier.REGULAR
    return False


def plan_offers(
    segments: Segments,
    days_since_last_seen: int,
    history: OfferHistory,
    catalogue: Sequence[CatalogueEntry],
    as_of: datetime,
    outcomes: Outcomes | None = None,
    sampler: Sampler | None = None,
) -> list[PlannedOffer]:
    """The offers to create now for one user (possibly none). Without `outcomes` and a
    `sampler`, or without types competing for slots, the priority order decides alone."""
    free_slots = MAX_ACTIVE_OFFERS - len(history.active_types)
    if days_since_last_seen > INACTIVE_AFTER_DAYS or free_slots <= 0:
        return []
    available = {
        entry.offer_type: entry
        for entry in sorted(catalogue, key=lambda item: (item.priority, item.offer_type))
        if _available(entry, segments, history, as_of)
    }
    if len(available) > free_slots and outcomes and sampler is not None:
        known = outcomes.get((segments.stage.value, segments.tier.value), {})
        ranked = rank(list(available), known, sampler)
    else:
        ranked = [Ranked(offer_type) for offer_type in available]
    return [
        _planned(
            available[choice.offer_type], choice.evidence, segments, days_since_last_seen, as_of
        )
        for choice in ranked[:free_slots]
    ]


def _planned(
    entry: CatalogueEntry,
    learned: Outcome | None,
    segments: Segments,
    days_since_last_seen: int,
    as_of: datetime,
) -> PlannedOffer:
    why = reason(entry.offer_type, segments, days_since_last_seen)
    explained: dict[str, Any] = {"reason": why, "policy": "priority"}
    if learned is not None:
        named = evidence(learned, segments.stage.value, segments.tier.value)
        explained = {
            "reason": f"{why[:-1]}; {named}.",
            "policy": "learned",
            "claimRate": round(learned.claim_rate, 4),
            "outcomes": learned.count,
        }
    return PlannedOffer(
        entry=entry, expires_at=as_of + entry.validity, metadata={**entry.metadata, **explained}
    )


def _available(
    entry: CatalogueEntry, segments: Segments, history: OfferHistory, as_of: datetime
) -> bool:
    if not entry.enabled or entry.offer_type in history.active_types:
        return False
    if not qualifies(entry.offer_type, segments):
        return False
    ended = history.last_ended_at.get(entry.offer_type)
    if ended is not None and as_of < ended + entry.cooldown:
        return False
    created = history.last_created_at.get(entry.offer_type)
    return not (entry.once_per_utc_day and created is not None and created.date() == as_of.date())


_WHY = {
    "win_back_play": "a high-value free spin to bring them back",
    "return_bonus": "bonus points for coming back",
    "retention_play": "a guaranteed win before they drift away",
    "welcome_free_play": "a free spin with a guaranteed prize to start them off",
    "welcome_bonus": "starter bonus points",
    "vip_play": "an exclusive high-stakes game for a top player",
    "multiplier_bonus": "double points on their next game",
    "daily_free_spin": "a free spin to keep the daily habit",
}


def reason(offer_type: str, segments: Segments, days_since_last_seen: int) -> str:
    """Why the engine made an offer, in a sentence naming stage, tier and churn risk."""
    seen = "today" if days_since_last_seen == 0 else f"{days_since_last_seen} days ago"
    if days_since_last_seen == 1:
        seen = "1 day ago"
    why = _WHY.get(offer_type, "an offer from the partner's catalogue")
    return (
        f"Lifecycle stage {segments.stage.value}, engagement tier {segments.tier.value}, "
        f"churn risk {segments.churn_risk_score}, last seen {seen}: {why}."
    )
