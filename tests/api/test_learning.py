"""The learning offer engine end to end (Part D): outcomes counted as claims and expiries
happen, through the real Envoy, server, job and database."""

from __future__ import annotations

import subprocess
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from journeys.rules.holdout import held_out
from journeys.rules.recency import decayed, scaled

from scripts.stack import Stack, journeys, sql
from tests.api.rest import headers, success
from tests.api.test_events import play, profile, track
from tests.api.test_offers import BASE, by_type, claim, offers, run_analytics
from tests.conftest import KeyFactory


def outcomes(stack: Stack, partner: str) -> dict[tuple[str, str, str], tuple[int, int]]:
    rows = sql(
        stack.database_url,
        "SELECT o.offer_type, o.stage, o.tier, o.successes, o.failures FROM offer_outcomes o "
        f"JOIN partners p ON p.id = o.partner_id WHERE p.name = '{partner}'",
    )
    return {(kind, stage, tier): (won, lost) for kind, stage, tier, won, lost in rows}


def weights(stack: Stack, partner: str, as_of: datetime) -> dict[str, tuple[float, float]]:
    """Per offer type (one context), the recency-weighted successes and failures at `as_of`."""
    rows = sql(
        stack.database_url,
        "SELECT o.offer_type, o.successes_scaled, o.failures_scaled FROM offer_outcomes o "
        f"JOIN partners p ON p.id = o.partner_id WHERE p.name = '{partner}'",
    )
    return {kind: (decayed(won, as_of), decayed(lost, as_of)) for kind, won, lost in rows}


def test_claims_and_expiries_are_counted_in_the_context_the_offer_was_made_in(
    http: httpx.Client, new_key: KeyFactory, stack: Stack
) -> None:
    partner = f"partner-{uuid.uuid4()}"
    key = new_key(partner=partner)
    for user in ("a", "b"):
        success(http.post(f"{BASE}/users", headers=headers(key), json={"externalId": user}))
    now = datetime.now(UTC).replace(microsecond=0)
    run_analytics(stack, now)
    assert outcomes(stack, partner) == {}
    contexts = sql(
        stack.database_url,
        "SELECT DISTINCT o.context_stage, o.context_tier FROM offers o "
        f"JOIN partners p ON p.id = o.partner_id WHERE p.name = '{partner}'",
    )
    assert contexts == [("new", "casual")]

    success(claim(http, key, "a", by_type(offers(http, key, "a"))["welcome_bonus"]["id"]))
    success(claim(http, key, "b", by_type(offers(http, key, "b"))["welcome_free_play"]["id"]))
    claimed = {
        ("welcome_bonus", "new", "casual"): (1, 0),
        ("welcome_free_play", "new", "casual"): (1, 0),
    }
    assert outcomes(stack, partner) == claimed

    # A week on, the unclaimed welcome offers have expired: one failure each.
    later = now + timedelta(days=8)
    run_analytics(stack, later)
    counted = {
        ("welcome_bonus", "new", "casual"): (1, 1),
        ("welcome_free_play", "new", "casual"): (1, 1),
    }
    assert outcomes(stack, partner) == counted
    # Weighed by recency: an outcome weighs 1 when it happens (a claim when made, an expiry
    # when the sweep finds it) and half as much every 7 days on.
    for kind in ("welcome_bonus", "welcome_free_play"):
        assert weights(stack, partner, now)[kind] == pytest.approx((1.0, 2 ** (8 / 7)), rel=1e-4)
        assert weights(stack, partner, later)[kind] == pytest.approx((2 ** (-8 / 7), 1.0), rel=1e-4)
        two_weeks = later + timedelta(days=14)
        assert weights(stack, partner, two_weeks)[kind] == pytest.approx(
            (2 ** (-22 / 7), 0.25), rel=1e-4
        )
    # Another run expires nothing more and counts nothing again.
    run_analytics(stack, later)
    assert outcomes(stack, partner) == counted


def test_a_claim_refused_counts_nothing(
    http: httpx.Client, new_key: KeyFactory, stack: Stack
) -> None:
    partner = f"partner-{uuid.uuid4()}"
    key = new_key(partner=partner)
    success(http.post(f"{BASE}/users", headers=headers(key), json={"externalId": "c"}))
    run_analytics(stack)
    offer_id = by_type(offers(http, key, "c"))["welcome_bonus"]["id"]
    success(claim(http, key, "c", offer_id))

    assert claim(http, key, "c", offer_id).status_code == 400  # already claimed
    assert outcomes(stack, partner) == {("welcome_bonus", "new", "casual"): (1, 0)}


def partner_id(stack: Stack, partner: str) -> str:
    ((found,),) = sql(stack.database_url, f"SELECT id FROM partners WHERE name = '{partner}'")
    return str(found)


def users_with_offers(stack: Stack, partner: str) -> set[str]:
    rows = sql(
        stack.database_url,
        "SELECT DISTINCT u.external_id FROM users u JOIN partners p ON p.id = u.partner_id "
        f"JOIN offers o ON o.user_id = u.id WHERE p.name = '{partner}'",
    )
    return {row[0] for row in rows}


def holdout_command(stack: Stack, partner: str, *share: str) -> subprocess.CompletedProcess[str]:
    extra = ["--share", *share] if share else []
    return journeys(
        "offers", "holdout", "--partner", partner, "--environment", "test", *extra, env=stack.env()
    )


def test_a_new_tenant_holds_out_five_percent_by_a_stable_hash(
    http: httpx.Client, new_key: KeyFactory, stack: Stack
) -> None:
    partner = f"partner-{uuid.uuid4()}"
    key = new_key(partner=partner, holdout=None)  # the tenant's default
    population = [f"player-{n}" for n in range(400)]
    track(http, key, [play(user) for user in population])
    tenant_id = partner_id(stack, partner)
    expected_out = {user for user in population if held_out(tenant_id, "TEST", user, 0.05)}
    assert 0 < len(expected_out) < 50  # about 20

    assert holdout_command(stack, partner).stdout.strip().endswith(": 0.05")
    run_analytics(stack)
    assert users_with_offers(stack, partner) == set(population) - expected_out
    # Held-out users are classified like everyone else; they just get no offers.
    held = sorted(expected_out)[0]
    assert offers(http, key, held) == []
    assert profile(http, key, held)["lifecycleStage"] == "new"
    assert {
        item["offerType"] for item in offers(http, key, sorted(set(population) - expected_out)[0])
    } == {
        "welcome_free_play",
        "welcome_bonus",
    }

    # The assignment is the same in the next run.
    run_analytics(stack, datetime.now(UTC) + timedelta(hours=1))
    assert users_with_offers(stack, partner) == set(population) - expected_out

    # With the share at 0 nobody is held out any more.
    done = holdout_command(stack, partner, "0")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(": 0")
    run_analytics(stack, datetime.now(UTC) + timedelta(hours=2))
    assert users_with_offers(stack, partner) == set(population)


def test_the_holdout_command_refuses_a_share_outside_0_to_1_and_an_unknown_partner(
    new_key: KeyFactory, stack: Stack
) -> None:
    partner = f"partner-{uuid.uuid4()}"
    new_key(partner=partner, holdout=None)
    for share in ("1.5", "-0.1", "nan"):
        refused = holdout_command(stack, partner, share)
        assert refused.returncode == 2
        assert "share must be between 0 and 1" in refused.stderr
    assert holdout_command(stack, partner).stdout.strip().endswith(": 0.05")
    unknown = holdout_command(stack, f"nobody-{uuid.uuid4()}", "0.1")
    assert unknown.returncode == 1
    assert "no partner named" in unknown.stderr


def test_types_competing_for_one_slot_are_chosen_by_the_tenants_evidence(
    http: httpx.Client, new_key: KeyFactory, stack: Stack
) -> None:
    partner = f"partner-{uuid.uuid4()}"
    key = new_key(partner=partner)
    success(http.post(f"{BASE}/users", headers=headers(key), json={"externalId": "w"}))
    run_analytics(stack)  # two welcome offers: one slot left
    # Then 60 plays today: a power user of the whale tier, who qualifies for vip_play and
    # multiplier_bonus, competing for that one slot.
    track(http, key, [play("w", points=20) for _ in range(60)])
    # The evidence: 1000 outcomes each, all as of now.
    weight = scaled(datetime.now(UTC))
    sql(
        stack.database_url,
        "INSERT INTO offer_outcomes (partner_id, environment, offer_type, stage, tier, "
        "successes, failures, successes_scaled, failures_scaled) SELECT id, 'TEST', "
        f"'multiplier_bonus', 'power_user', 'whale', 900, 100, {900 * weight}, {100 * weight} "
        f"FROM partners WHERE name = '{partner}'",
        "INSERT INTO offer_outcomes (partner_id, environment, offer_type, stage, tier, "
        "successes, failures, successes_scaled, failures_scaled) SELECT id, 'TEST', "
        f"'vip_play', 'power_user', 'whale', 3, 997, {3 * weight}, {997 * weight} "
        f"FROM partners WHERE name = '{partner}'",
    )
    result = journeys("analytics", "run", env={**stack.env(), "JOURNEYS_OFFER_SEED": "11"})
    assert result.returncode == 0, result.stderr

    held = by_type(offers(http, key, "w"))
    assert len(held) == 3
    (chosen,) = set(held) - {"welcome_free_play", "welcome_bonus"}
    metadata = held[chosen]["metadata"]
    assert metadata["policy"] == "learned"
    assert metadata["outcomes"] == 1000
    if chosen == "multiplier_bonus":  # 95 % of draws (5 % go to each type by exploration)
        assert metadata["claimRate"] == 0.8992
        assert metadata["reason"].endswith("claimed by 90 % of power-user whale users (n = 1000).")
    else:
        assert metadata["claimRate"] == 0.004
        assert metadata["reason"].endswith("claimed by 0 % of power-user whale users (n = 1000).")
    assert "Lifecycle stage power_user, engagement tier whale" in metadata["reason"]
