"""The learned choice among offer types competing for too few slots: Thompson sampling inside
the priority rules, pure (the sampler is passed in).

- An outcome is a success (claimed before expiry) or a failure (expired unclaimed), counted
  per offer type and context: the user's stage and tier when the offer was made. Each is
  also weighed by its recency (`recency.py`: half as much every 7 days), and the posterior
  rests on those weights, so old evidence gives way to new when users change.
- A context without any outcome (so every context of a new tenant) is ranked exactly by the
  documented priority.
- Otherwise, a type with fewer than `APPRENTICE_OUTCOMES` outcomes in the context is an
  apprentice there (the count, not the weights, decides): it keeps its place in the priority
  order. The places the learned types hold are given out again among them, best first by one
  draw each from Beta(1 + weighted successes, 1 + weighted failures).
- Exploration floor: with probability `min(1, EXPLORATION_FLOOR * k)`, the k competitors
  (apprentices included) are ranked by a uniform shuffle instead. A shuffle puts each of them
  first with probability 1 / k, and the first place always gets a slot, so every competing
  type is chosen with probability at least `EXPLORATION_FLOOR` (for k <= 20), however poor
  its record or low its priority. This is also how an apprentice of low priority gathers the
  outcomes that end its apprenticeship.
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
    #: The same successes and failures weighed by recency at the instant of the choice
    #: (`recency.py`); None: each outcome weighs 1.
    weighted: tuple[float, float] | None = None

    @property
    def count(self) -> int:
        return self.successes + self.failures

    @property
    def posterior(self) -> tuple[float, float]:
        """(alpha, beta) of the posterior: the prior Beta(1, 1) and the weighted outcomes."""
        won, lost = self.weighted if self.weighted is not None else (self.successes, self.failures)
        return 1 + won, 1 + lost

    @property
    def claim_rate(self) -> float:
        """The mean of the posterior."""
        alpha, beta = self.posterior
        return alpha / (alpha + beta)

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
    ranked = [Ranked(offer_type) for offer_type in candidates]
    if not any(_outcome(known, offer_type).count for offer_type in candidates):
        return ranked  # no evidence at all: the documented priority
    if sampler.random() < min(1.0, EXPLORATION_FLOOR * len(candidates)):
        explored = list(candidates)
        sampler.shuffle(explored)
        return [Ranked(offer_type, _outcome(known, offer_type)) for offer_type in explored]
    places = [n for n, offer_type in enumerate(candidates) if _outcome(known, offer_type).learned]
    if len(places) < 2:  # nothing learned to choose between: priority places them
        return ranked
    learned = [candidates[n] for n in places]
    draws = {
        offer_type: sampler.betavariate(*_outcome(known, offer_type).posterior)
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
    who = f"{_STAGE_WORDS.get(stage, stage)} {_TIER_WORDS.get(tier, tier)} users"
    if not outcome.count:
        return f"tried to learn how {who} take it (n = 0)"
    share = round(100 * outcome.successes / outcome.count)
    return f"claimed by {share} % of {who} (n = {outcome.count})"
