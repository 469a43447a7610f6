"""The learned choice (rules/learning.py through plan_offers): the apprentice threshold, the
Thompson ranking, the exploration floor, the explanation and reproducibility."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from journeys.rules import (
    EXPLORATION_FLOOR,
    EngagementTier,
    LifecycleStage,
    OfferHistory,
    Outcome,
    plan_offers,
)
from journeys.rules.learning import rank

from tests.rules.test_offers import AS_OF, CATALOGUE, segments

WHALE_POWER = segments(LifecycleStage.POWER_USER, EngagementTier.WHALE)
CONTEXT = ("power_user", "whale")
#: Two slots taken by types this user does not qualify for: one slot for two candidates.
ONE_SLOT = OfferHistory(active_types=frozenset({"welcome_bonus", "return_bonus"}))
GOOD, BAD = Outcome(900, 100), Outcome(10, 990)


def plan(
    outcomes: Mapping[tuple[str, str], Mapping[str, Outcome]],
    sampler: Any,
    who: Any = WHALE_POWER,
    history: OfferHistory = ONE_SLOT,
) -> list[Any]:
    return plan_offers(who, 0, history, CATALOGUE, AS_OF, outcomes, sampler)


def chosen(outcomes: Mapping[tuple[str, str], Mapping[str, Outcome]], sampler: Any) -> list[str]:
    return [offer.entry.offer_type for offer in plan(outcomes, sampler)]


class Exploring:
    """A sampler that always takes the exploration branch and reverses on shuffle."""

    def random(self) -> float:
        return 0.0

    def shuffle(self, x: list[Any]) -> None:
        x.reverse()

    def betavariate(self, alpha: float, beta: float) -> float:
        raise AssertionError("an exploring draw samples no posterior")


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        # No outcomes, or too few: the documented priority (vip_play before multiplier_bonus).
        ({}, ["vip_play"]),
        ({CONTEXT: {"multiplier_bonus": GOOD, "vip_play": BAD}}, ["multiplier_bonus"]),
        (
            {CONTEXT: {"multiplier_bonus": Outcome(19, 0), "vip_play": Outcome(0, 19)}},
            ["vip_play"],
        ),
        # One learned type among apprentices: nothing learned to choose between.
        ({CONTEXT: {"multiplier_bonus": Outcome(0, 19), "vip_play": BAD}}, ["vip_play"]),
        # Another context's evidence does not count here.
        ({("new", "whale"): {"multiplier_bonus": GOOD, "vip_play": BAD}}, ["vip_play"]),
    ],
)
def test_the_choice_by_evidence_and_its_threshold(
    outcomes: Mapping[tuple[str, str], Mapping[str, Outcome]], expected: list[str]
) -> None:
    # A draw whose exploration roll fails: the posterior draws decide.
    assert chosen(outcomes, random.Random(7)) == expected


def test_a_learned_choice_explains_itself_with_its_evidence() -> None:
    evidence = Outcome(87, 125)  # 41 % of 212
    (offer,) = plan({CONTEXT: {"vip_play": Outcome(0, 40), "multiplier_bonus": evidence}}, Best())

    assert offer.entry.offer_type == "multiplier_bonus"
    assert offer.metadata["policy"] == "learned"
    assert offer.metadata["claimRate"] == round(88 / 214, 4) == 0.4112
    assert offer.metadata["outcomes"] == 212
    assert offer.metadata["multiplier"] == 2  # the catalogue's metadata stays
    assert offer.metadata["reason"].startswith("Lifecycle stage power_user, engagement tier whale")
    assert offer.metadata["reason"].endswith(
        "; claimed by 41 % of power-user whale users (n = 212)."
    )
    assert list(offer.metadata) == ["multiplier", "reason", "policy", "claimRate", "outcomes"]


class Best:
    """Draws the posterior mean: a Thompson ranking without its noise."""

    def random(self) -> float:
        return 1.0

    def shuffle(self, x: list[Any]) -> None:
        raise AssertionError("not exploring")

    def betavariate(self, alpha: float, beta: float) -> float:
        return alpha / (alpha + beta)


def test_a_priority_choice_says_so() -> None:
    (offer,) = plan({}, random.Random(1))
    assert offer.metadata["policy"] == "priority"
    assert set(offer.metadata) == {"reason", "policy"}


def test_without_competition_every_available_type_is_offered_by_priority() -> None:
    offers = plan(
        {CONTEXT: {"vip_play": BAD, "multiplier_bonus": GOOD}}, Best(), history=OfferHistory()
    )
    assert [offer.entry.offer_type for offer in offers] == ["vip_play", "multiplier_bonus"]
    assert {offer.metadata["policy"] for offer in offers} == {"priority"}


def test_an_apprentice_keeps_its_place_among_learned_types() -> None:
    known = {"a": Outcome(0, 0), "b": BAD, "c": GOOD}
    # `a` is first by priority and stays first; b and c trade the places they hold.
    assert [r.offer_type for r in rank(["a", "b", "c"], known, Best())] == ["a", "c", "b"]
    assert [r.offer_type for r in rank(["b", "a", "c"], known, Best())] == ["c", "a", "b"]
    assert [r.evidence for r in rank(["b", "a", "c"], known, Best())] == [GOOD, None, BAD]


def test_exploration_shuffles_every_competitor_apprentices_included() -> None:
    known = {"a": Outcome(0, 0), "b": GOOD, "c": BAD}
    explored = rank(["a", "b", "c"], known, Exploring())
    assert [r.offer_type for r in explored] == ["c", "b", "a"]
    assert [r.evidence for r in explored] == [BAD, GOOD, Outcome(0, 0)]


def test_a_context_without_outcomes_never_explores() -> None:
    assert chosen({}, Exploring()) == ["vip_play"]
    assert chosen({CONTEXT: {"vip_play": Outcome(0, 0)}}, Exploring()) == ["vip_play"]
    assert chosen({("new", "whale"): {"vip_play": GOOD}}, Exploring()) == ["vip_play"]


def test_exploration_tries_a_low_priority_type_without_outcomes() -> None:
    (offer,) = plan({CONTEXT: {"vip_play": Outcome(3, 4)}}, Exploring())
    assert offer.entry.offer_type == "multiplier_bonus"
    assert offer.metadata["policy"] == "learned"
    assert (offer.metadata["claimRate"], offer.metadata["outcomes"]) == (0.5, 0)
    assert offer.metadata["reason"].endswith(
        "; tried to learn how power-user whale users take it (n = 0)."
    )


def test_the_worst_type_keeps_its_floor_in_many_draws() -> None:
    outcomes = {CONTEXT: {"vip_play": GOOD, "multiplier_bonus": BAD}}
    sampler = random.Random(2026)
    draws = 4000
    counts = Counter(chosen(outcomes, sampler)[0] for _ in range(draws))

    # Exploration (probability 2 x 5 %) gives the bad type half of its draws: ~5 %.
    assert counts["multiplier_bonus"] / draws >= EXPLORATION_FLOOR * 0.8
    assert counts["multiplier_bonus"] / draws <= EXPLORATION_FLOOR * 1.3
    assert counts["vip_play"] / draws >= 0.9


def test_the_same_seed_makes_the_same_choices() -> None:
    outcomes = {CONTEXT: {"vip_play": Outcome(30, 30), "multiplier_bonus": Outcome(31, 29)}}

    def fifty(seed: int) -> list[list[str]]:
        sampler = random.Random(seed)
        return [chosen(outcomes, sampler) for _ in range(50)]

    assert fifty(5) == fifty(5)
    assert fifty(5) != fifty(6)
    assert {choice[0] for choice in fifty(5)} == {"vip_play", "multiplier_bonus"}


counts = st.builds(Outcome, st.integers(0, 60), st.integers(0, 60))
outcome_maps = st.dictionaries(
    st.sampled_from([entry.offer_type for entry in CATALOGUE]), counts, max_size=8
)
who = st.builds(
    segments,
    st.sampled_from(list(LifecycleStage)),
    st.sampled_from(list(EngagementTier)),
    st.integers(0, 100),
)
held = st.frozensets(st.sampled_from([entry.offer_type for entry in CATALOGUE]), max_size=3)


@given(who, held, outcome_maps, st.integers(0, 2**32))
def test_learning_only_reorders_what_the_rules_allow(
    person: Any, active: frozenset[str], known: dict[str, Outcome], seed: int
) -> None:
    history = OfferHistory(active_types=active)
    context = (person.stage.value, person.tier.value)
    baseline = plan_offers(person, 0, history, CATALOGUE, AS_OF)
    learned = plan_offers(
        person, 0, history, CATALOGUE, AS_OF, {context: known}, random.Random(seed)
    )
    types = [offer.entry.offer_type for offer in learned]
    eligible = {entry.offer_type for entry in CATALOGUE} - active
    # The same number of offers, never a duplicate, never a held or unqualified type.
    assert len(learned) == len(baseline)
    assert len(set(types)) == len(types)
    assert set(types) <= eligible
    everything = plan_offers(person, 0, OfferHistory(), CATALOGUE, AS_OF)
    assert set(types) <= {offer.entry.offer_type for offer in everything}
    for offer in learned:
        outcome = known.get(offer.entry.offer_type, Outcome())
        if offer.metadata["policy"] == "learned":
            assert offer.metadata["outcomes"] == outcome.count
            assert 0 < offer.metadata["claimRate"] < 1
    if all(outcome.count == 0 for outcome in known.values()):
        assert [offer.entry.offer_type for offer in learned] == [
            offer.entry.offer_type for offer in baseline
        ]
        assert [offer.metadata for offer in learned] == [offer.metadata for offer in baseline]


class Recording:
    def __init__(self, roll: float) -> None:
        self.roll = roll
        self.shuffled = False

    def random(self) -> float:
        return self.roll

    def shuffle(self, x: list[Any]) -> None:
        self.shuffled = True

    def betavariate(self, alpha: float, beta: float) -> float:
        return 0.5


@given(st.integers(2, 8), st.floats(0, 1, exclude_max=True))
def test_the_exploration_branch_is_taken_with_probability_floor_times_k(
    k: int, roll: float
) -> None:
    # Under a uniform shuffle each of the k competitors comes first with probability 1 / k,
    # so exploring with probability min(1, 5 % x k) gives each at least 5 %.
    names = [f"t{n}" for n in range(k)]
    sampler = Recording(roll)
    rank(names, dict.fromkeys(names, GOOD), sampler)
    assert sampler.shuffled == (roll < min(1.0, EXPLORATION_FLOOR * k))
