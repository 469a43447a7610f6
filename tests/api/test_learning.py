"""The learning offer engine end to end (Part D): outcomes counted as claims and expiries
happen, through the real Envoy, server, job and database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx

from scripts.stack import Stack, sql
from tests.api.rest import headers, success
from tests.api.test_offers import BASE, by_type, claim, offers, run_analytics
from tests.conftest import KeyFactory


def outcomes(stack: Stack, partner: str) -> dict[tuple[str, str, str], tuple[int, int]]:
    rows = sql(
        stack.database_url,
        "SELECT o.offer_type, o.stage, o.tier, o.successes, o.failures FROM offer_outcomes o "
        f"JOIN partners p ON p.id = o.partner_id WHERE p.name = '{partner}'",
    )
    return {(kind, stage, tier): (won, lost) for kind, stage, tier, won, lost in rows}


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
