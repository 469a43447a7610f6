"""Offer planning rules: qualification, priority, slots, cooldowns, the 60-day cut-off."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from journeys.rules import (
    MAX_ACTIVE_OFFERS,
    EngagementTier,
    LifecycleStage,
    OfferHistory,
    Segments,
    plan_offers,
    qualifies,
)
from journeys.usecases import catalogue

AS_OF = datetime(2025, 1, 15, 10, 30, tzinfo=UTC)
CATALOGUE = catalogue.entries()
ALL_TYPES = {entry.offer_type for entry in CATALOGUE}


def segments(
    stage: LifecycleStage = LifecycleStage.ACTIVE,
    tier: EngagementTier = EngagementTier.CASUAL,
    churn: int = 0,
    score: float = 40.0,
) -> Segments:
    return Segments(stage=stage, tier=tier, engagement_score=score, churn_risk_score=churn)


def planned_types(
    who: Segments,
    history: OfferHistory | None = None,
    days_silent: int = 0,
    as_of: datetime = AS_OF,
) -> list[str]:
    return [
        offer.entry.offer_type
        for offer in plan_offers(who, days_silent, history or OfferHistory(), CATALOGUE, as_of)
    ]


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        (segments(LifecycleStage.NEW), ["welcome_free_play", "welcome_bonus"]),
        (segments(LifecycleStage.CHURNED), ["win_back_play", "return_bonus"]),
        (segments(LifecycleStage.AT_RISK, churn=60), ["retention_play"]),
        (segments(LifecycleStage.AT_RISK, churn=59), []),
        (segments(LifecycleStage.ACTIVE), ["daily_free_spin"]),
        (segments(LifecycleStage.ENGAGED, EngagementTier.REGULAR), ["daily_free_spin"]),
        (segments(LifecycleStage.ENGAGED, EngagementTier.CASUAL), []),
        (
            segments(LifecycleStage.POWER_USER, EngagementTier.WHALE),
            ["vip_play", "multiplier_bonus"],
        ),
        (
            segments(LifecycleStage.ACTIVE, EngagementTier.WHALE),
            ["vip_play", "daily_free_spin"],
        ),
        (
            segments(LifecycleStage.ACTIVE, EngagementTier.POWER_USER),
            ["multiplier_bonus", "daily_free_spin"],
        ),
        (
            segments(LifecycleStage.AT_RISK, EngagementTier.REGULAR, churn=75),
            ["retention_play", "daily_free_spin"],
        ),
    ],
)
def test_who_qualifies_for_what_in_priority_order(who: Segments, expected: list[str]) -> None:
    assert planned_types(who) == expected


def test_documented_welcome_free_play_values() -> None:
    spin = next(
        offer
        for offer in plan_offers(segments(LifecycleStage.NEW), 0, OfferHistory(), CATALOGUE, AS_OF)
        if offer.entry.offer_type == "welcome_free_play"
    )

    assert (spin.entry.game_type, spin.entry.title, spin.entry.points_value) == (
        "spin_the_wheel",
        "Welcome Free Spin",
        50,
    )
    assert spin.expires_at == AS_OF + timedelta(days=7)
    assert spin.metadata["reason"].startswith("Lifecycle stage new, engagement tier casual")


def test_multiplier_bonus_carries_its_multiplier_and_a_reason() -> None:
    (offer,) = plan_offers(
        segments(LifecycleStage.POWER_USER, EngagementTier.POWER_USER, churn=3),
        0,
        OfferHistory(),
        CATALOGUE,
        AS_OF,
    )

    assert offer.metadata == {
        "multiplier": 2,
        "reason": (
            "Lifecycle stage power_user, engagement tier power_user, churn risk 3, last seen "
            "today: double points on their next game."
        ),
        "policy": "priority",
    }


@pytest.mark.parametrize(("days", "expected"), [(60, ["win_back_play", "return_bonus"]), (61, [])])
def test_nobody_silent_more_than_60_days_gets_offers(days: int, expected: list[str]) -> None:
    assert planned_types(segments(LifecycleStage.CHURNED), days_silent=days) == expected


def test_only_free_slots_are_filled_and_held_types_are_skipped() -> None:
    who = segments(LifecycleStage.ACTIVE, EngagementTier.WHALE)

    assert planned_types(who, OfferHistory(frozenset({"vip_play"}))) == ["daily_free_spin"]
    assert planned_types(who, OfferHistory(frozenset({"a", "b"}))) == ["vip_play"]
    assert planned_types(who, OfferHistory(frozenset({"a", "b", "c"}))) == []


@pytest.mark.parametrize(
    ("ended_hours_ago", "offered"),
    [(719, False), (720, True)],  # win_back_play: 30-day cooldown after a claim or expiry
)
def test_cooldown_after_claim_or_expiry(ended_hours_ago: int, offered: bool) -> None:
    history = OfferHistory(
        last_ended_at={"win_back_play": AS_OF - timedelta(hours=ended_hours_ago)}
    )

    types = planned_types(segments(LifecycleStage.CHURNED), history)

    assert ("win_back_play" in types) is offered
    assert "return_bonus" in types


@pytest.mark.parametrize(
    ("made", "offered"),
    [
        (datetime(2025, 1, 15, 0, 0, tzinfo=UTC), False),  # earlier the same UTC day
        (datetime(2025, 1, 14, 23, 59, tzinfo=UTC), True),  # the day before
    ],
)
def test_daily_free_spin_at_most_once_per_utc_day(made: datetime, offered: bool) -> None:
    history = OfferHistory(
        last_ended_at={"daily_free_spin": made}, last_created_at={"daily_free_spin": made}
    )

    assert ("daily_free_spin" in planned_types(segments(), history)) is offered


def test_welcome_offers_are_once_per_user() -> None:
    history = OfferHistory(last_ended_at={"welcome_free_play": AS_OF - timedelta(days=365)})

    assert planned_types(segments(LifecycleStage.NEW), history) == ["welcome_bonus"]


def test_disabled_types_are_never_offered() -> None:
    entries = catalogue.entries({"welcome_bonus": {"enabled": False}})

    planned = plan_offers(segments(LifecycleStage.NEW), 0, OfferHistory(), entries, AS_OF)

    assert [offer.entry.offer_type for offer in planned] == ["welcome_free_play"]


def test_qualifies_knows_nothing_of_unknown_types() -> None:
    assert not qualifies("mystery_box", segments(LifecycleStage.NEW))


@given(
    stage=st.sampled_from(list(LifecycleStage)),
    tier=st.sampled_from(list(EngagementTier)),
    churn=st.integers(0, 100),
    days=st.integers(0, 400),
    active=st.sets(st.sampled_from(sorted(ALL_TYPES)), max_size=3),
    ended=st.dictionaries(st.sampled_from(sorted(ALL_TYPES)), st.integers(0, 24 * 400)),
)
def test_plans_never_exceed_three_active_or_repeat_a_type(
    stage: LifecycleStage,
    tier: EngagementTier,
    churn: int,
    days: int,
    active: set[str],
    ended: dict[str, int],
) -> None:
    history = OfferHistory(
        frozenset(active), {kind: AS_OF - timedelta(hours=h) for kind, h in ended.items()}
    )
    who = segments(stage, tier, churn)

    planned = planned_types(who, history, days)

    assert len(active) + len(planned) <= MAX_ACTIVE_OFFERS
    assert len(set(planned)) == len(planned)
    assert not set(planned) & active
    assert all(qualifies(kind, who) for kind in planned)
    if days > 60:
        assert planned == []
    # Planning again with the new offers held creates nothing (idempotence).
    again = OfferHistory(frozenset(active | set(planned)), history.last_ended_at)
    assert planned_types(who, again, days) == []
