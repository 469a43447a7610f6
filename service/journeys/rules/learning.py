"""The learned choice among offer types competing for too few slots: Thompson sampling inside
the priority rules, pure (the sampler is passed in).

- An outcome is a success (claimed before expiry) or a failure (expired unclaimed), counted
  per offer type and context: the user's stage and tier when the offer was made.
- A type with fewer than `APPRENTICE_OUTCOMES` outcomes in a context is an apprentice there:
  it keeps its place in the documented priority order. So a tenant without outcomes ranks
  exactly by priority.
- The places the learned types hold in the priority order are given out again among them,
  best first by one draw each from Beta(1 + successes, 1 + failures).
- Exploration floor: with probability `min(1, EXPLORATION_FLOOR * k)`, the k learned
  competitors are ranked by a uniform shuffle instead of their draws. A shuffle puts each of
  them first among the learned places with probability 1 / k, so every learned competitor
  takes the best learned place, and so a slot whenever a learned type gets one, with
  probability at least `EXPLORATION_FLOOR`, however bad its record.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

APPRENTICE_OUTCOMES = 20
EXPLORATION_FLOOR = 0.05

#: (lifecycle stage, engagement tier) as stored, e.g. ("at_risk", "casual").
Context = tuple[str, str]


@dataclass(frozen=True)
class Outcome:
    successes: int = 0
    failures: int = 0

    @property
    def count(self) -> int:
        return self.successes + self.failures

    @property
    def claim_rate(self) -> float:
        """The mean of the posterior Beta(1 + successes, 1 + failures)."""
        return (1 + self.successes) / (2 + self.count)

    @property
    def learned(self) -> bool:
        return self.count >= APPRENTICE_OUTCOMES


#: A tenant's outcomes: {context: {offer type: Outcome}}.
Outcomes = Mapping[Context, Mapping[str, Outcome]]


class Sampler(Protocol):
    """What the rule draws from; `random.Random` is one."""

    def betavariate(self, alpha: float, beta: float) -> float: ...

    def random(self) -> float: ...

    def shuffle(self, x: list[Any]) -> None: ...


@dataclass(frozen=True)
class Ranked:
    offer_type: str
    #: The evidence that placed it, when its place was learned; None when priority placed it.
    evidence: Outcome | None = None


def rank(candidates: Sequence[str], known: Mapping[str, Outcome], sampler: Sampler) -> list[Ranked]:
    """`candidates` (in priority order) in the order they should take slots."""
    places = [n for n, offer_type in enumerate(candidates) if _outcome(known, offer_type).learned]
    ranked = [Ranked(offer_type) for offer_type in candidates]
    if len(places) < 2:  # nothing to choose between: priority places it
        return ranked
    learned = [candidates[n] for n in places]
    if sampler.random() < min(1.0, EXPLORATION_FLOOR * len(learned)):
        sampler.shuffle(learned)
    else:
        draws = {
            offer_type: sampler.betavariate(
                1 + _outcome(known, offer_type).successes, 1 + _outcome(known, offer_type).failures
            )
            for offer_type in learned
        }
        learned.sort(key=lambda offer_type: -draws[offer_type])
    for place, offer_type in zip(places, learned, strict=True):
        ranked[place] = Ranked(offer_type, _outcome(known, offer_type))
    return ranked


def _outcome(known: Mapping[str, Outcome], offer_type: str) -> Outcome:
    return known.get(offer_type) or Outcome()


_STAGE_WORDS = {"at_risk": "at-risk", "power_user": "power-user"}
_TIER_WORDS = {"power_user": "power"}


def evidence(outcome: Outcome, stage: str, tier: str) -> str:
    """The sentence naming what a learned choice rests on."""
    share = round(100 * outcome.successes / outcome.count) if outcome.count else 0
    who = f"{_STAGE_WORDS.get(stage, stage)} {_TIER_WORDS.get(tier, tier)} users"
    return f"claimed by {share} % of {who} (n = {outcome.count})"
