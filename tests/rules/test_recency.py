"""Recency-weighted evidence (rules/recency.py, and the posterior of rules/learning.py): an
outcome's weight halves every half-life, the posterior and `claimRate` rest on the weights,
the apprentice threshold and `outcomes` on the counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from journeys.rules import EngagementTier, LifecycleStage, Outcome, plan_offers
from journeys.rules.recency import EPOCH, HALF_LIFE, decayed, scaled

from tests.rules.test_learning import CONTEXT, ONE_SLOT, WHALE_POWER, Best
from tests.rules.test_offers import AS_OF, CATALOGUE, segments

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("age", "weight"),
    [
        (timedelta(0), 1.0),
        (timedelta(days=7), 0.5),  # the half-life
        (2 * HALF_LIFE, 0.25),
        (HALF_LIFE / 2, 2**-0.5),
        (timedelta(days=70), 2**-10),
        (-HALF_LIFE, 2.0),  # an outcome after the instant it is weighed at
    ],
)
def test_an_outcome_weighs_half_as_much_every_half_life(age: timedelta, weight: float) -> None:
    assert decayed(scaled(NOW - age), NOW) == pytest.approx(weight, rel=1e-12)


def test_stored_weights_add_up_in_any_order_to_the_sum_of_their_decayed_weights() -> None:
    instants = [NOW - timedelta(days=days) for days in (0, 3, 14, 30, 90)]
    expected = sum(2 ** -((NOW - at) / HALF_LIFE) for at in instants)
    assert decayed(sum(scaled(at) for at in instants), NOW) == pytest.approx(expected, rel=1e-12)
    assert decayed(sum(scaled(at) for at in reversed(instants)), NOW) == pytest.approx(
        expected, rel=1e-12
    )


def test_stored_weights_stay_finite_for_decades() -> None:
    assert scaled(EPOCH) == 1.0
    assert decayed(
        1000 * scaled(EPOCH + timedelta(days=365 * 18)), EPOCH + timedelta(days=365 * 18)
    ) == (pytest.approx(1000.0))


@pytest.mark.parametrize(
    ("outcome", "posterior", "claim_rate", "learned"),
    [
        # Unweighted: the counts are the evidence.
        (Outcome(8, 2), (9, 3), 0.75, False),
        (Outcome(15, 5), (16, 6), 16 / 22, True),
        # Weighted: the posterior rests on the weights, the threshold on the count.
        (Outcome(15, 5, (1.5, 0.5)), (2.5, 1.5), 2.5 / 4, True),
        (Outcome(900, 100, (0.0, 0.0)), (1, 1), 0.5, True),  # all forgotten: the prior
        (Outcome(10, 9, (10.0, 9.0)), (11, 10), 11 / 21, False),  # 19: still an apprentice
        (Outcome(0, 0, (0.0, 0.0)), (1, 1), 0.5, False),
    ],
)
def test_the_posterior_and_the_threshold(
    outcome: Outcome, posterior: tuple[float, float], claim_rate: float, learned: bool
) -> None:
    assert outcome.posterior == pytest.approx(posterior)
    assert outcome.claim_rate == pytest.approx(claim_rate)
    assert outcome.learned is learned


def test_recent_evidence_outweighs_a_longer_older_record() -> None:
    # vip_play: 1000 outcomes, mostly claimed, but long ago (weights small, mostly failures
    # lately); multiplier_bonus: fewer outcomes, recently claimed.
    vip = Outcome(600, 400, (2.0, 30.0))
    multiplier = Outcome(60, 40, (40.0, 10.0))
    (offer,) = plan_offers(
        WHALE_POWER,
        0,
        ONE_SLOT,
        CATALOGUE,
        AS_OF,
        {CONTEXT: {"vip_play": vip, "multiplier_bonus": multiplier}},
        Best(),
    )
    assert offer.entry.offer_type == "multiplier_bonus"
    assert offer.metadata["policy"] == "learned"
    assert offer.metadata["claimRate"] == round(41 / 52, 4)  # the weighted posterior mean
    assert offer.metadata["outcomes"] == 100  # the count it rests on
    assert offer.metadata["reason"].endswith("claimed by 60 % of power-user whale users (n = 100).")
    # Unweighted, the same counts would have kept vip_play (0.6 against 0.6, priority first).
    unweighted = {"vip_play": Outcome(600, 400), "multiplier_bonus": Outcome(60, 40)}
    (kept,) = plan_offers(
        segments(LifecycleStage.POWER_USER, EngagementTier.WHALE),
        0,
        ONE_SLOT,
        CATALOGUE,
        AS_OF,
        {CONTEXT: unweighted},
        Best(),
    )
    assert kept.entry.offer_type == "vip_play"
