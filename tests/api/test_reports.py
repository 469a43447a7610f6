"""GET /reports/offers (secret key) through the real Envoy, server, job and database: counts
that match the offers made and claimed, claim rates with Wilson intervals, the uplift over the
holdout."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from journeys.domain import KeyKind
from journeys.rules.holdout import held_out

from scripts.stack import Stack, journeys, sql
from tests.api.rest import error, headers, success
from tests.api.test_events import play, stamp, track
from tests.api.test_offers import BASE, by_type, claim, offers, run_analytics
from tests.conftest import KeyFactory

REPORT = f"{BASE}/reports/offers"
TYPE_KEYS = [
    "offerType",
    "created",
    "claimed",
    "expired",
    "active",
    "claimRate",
    "claimRateLow",
    "claimRateHigh",
]
PRIORITY = [
    "win_back_play",
    "return_bonus",
    "retention_play",
    "welcome_free_play",
    "welcome_bonus",
    "vip_play",
    "multiplier_bonus",
    "daily_free_spin",
]


def report(http: httpx.Client, secret: str, since: str | None = None) -> Any:
    params = {} if since is None else {"since": since}
    return success(http.get(REPORT, headers={"X-API-Key": secret}, params=params))


def new_users(http: httpx.Client, key: str, *names: str) -> None:
    for name in names:
        success(http.post(f"{BASE}/users", headers=headers(key), json={"externalId": name}))


def test_a_public_key_gets_403(http: httpx.Client, key: str) -> None:
    error(http.get(REPORT, headers={"X-API-Key": key}), 403, "This endpoint requires a secret key")


def test_since_must_be_a_timestamp_before_now(http: httpx.Client, secret_key: str) -> None:
    for since in ("yesterday", "2025-01-15T10:30:00"):
        error(
            http.get(REPORT, headers={"X-API-Key": secret_key}, params={"since": since}),
            400,
            "Invalid request body: since must be an RFC 3339 timestamp such as "
            "2025-01-15T10:30:00Z",
        )
    future = stamp(datetime.now(UTC) + timedelta(hours=1))
    error(
        http.get(REPORT, headers={"X-API-Key": secret_key}, params={"since": future}),
        400,
        "Invalid request body: since must be before now",
    )


def test_a_new_tenant_reports_nothing_with_the_default_window_and_share(
    http: httpx.Client, new_key: KeyFactory
) -> None:
    secret = new_key(kind=KeyKind.SECRET, holdout=None)
    before = datetime.now(UTC).replace(microsecond=0)
    data = report(http, secret)

    assert list(data) == ["since", "until", "holdoutShare", "types", "uplift"]
    until = datetime.fromisoformat(data["until"])
    assert before <= until <= before + timedelta(seconds=30)
    assert datetime.fromisoformat(data["since"]) == until - timedelta(days=30)
    assert data["holdoutShare"] == 0.05
    assert [item["offerType"] for item in data["types"]] == PRIORITY
    for item in data["types"]:
        assert list(item) == TYPE_KEYS
        assert item | {"offerType": ""} == {
            "offerType": "",
            "created": 0,
            "claimed": 0,
            "expired": 0,
            "active": 0,
            "claimRate": None,
            "claimRateLow": None,
            "claimRateHigh": None,
        }
    assert data["uplift"] == {
        "metric": "plays7d",
        "treatment": None,
        "holdout": None,
        "difference": None,
        "low": None,
        "high": None,
        "treatmentUsers": 0,
        "holdoutUsers": 0,
    }


def test_the_counts_match_the_offers_made_claimed_and_expired(
    http: httpx.Client, new_key: KeyFactory, stack: Stack
) -> None:
    partner = f"partner-{uuid.uuid4()}"
    key = new_key(partner=partner)
    secret = new_key(partner=partner, kind=KeyKind.SECRET)
    now = datetime.now(UTC).replace(microsecond=0)
    new_users(http, key, "a", "b")
    run_analytics(stack, now - timedelta(days=8))  # welcome offers that expire a day ago
    new_users(http, key, "c", "d", "e")
    run_analytics(stack, now - timedelta(days=2))  # welcome offers valid 5 days more
    for user in ("c", "d"):
        success(claim(http, key, user, by_type(offers(http, key, user))["welcome_bonus"]["id"]))
    run_analytics(stack, now)  # expires those of a and b

    data = report(http, secret)
    types = {item["offerType"]: item for item in data["types"]}
    assert data["holdoutShare"] == 0
    assert types["welcome_bonus"] | {"claimRateLow": 0, "claimRateHigh": 0} == {
        "offerType": "welcome_bonus",
        "created": 5,
        "claimed": 2,
        "expired": 2,
        "active": 1,
        "claimRate": 0.5,
        "claimRateLow": 0,
        "claimRateHigh": 0,
    }
    # Wilson, 2 of 4: 0.1500-0.8500.
    assert (types["welcome_bonus"]["claimRateLow"], types["welcome_bonus"]["claimRateHigh"]) == (
        0.15,
        0.85,
    )
    assert types["welcome_free_play"] == {
        "offerType": "welcome_free_play",
        "created": 5,
        "claimed": 0,
        "expired": 2,
        "active": 3,
        "claimRate": 0.0,
        "claimRateLow": 0.0,
        "claimRateHigh": 0.6576,  # Wilson, 0 of 2
    }
    assert {kind for kind, item in types.items() if item["created"]} == {
        "welcome_bonus",
        "welcome_free_play",
    }
    # The counts are those of the offers table.
    rows = sql(
        stack.database_url,
        "SELECT o.offer_type, o.status, count(*) FROM offers o JOIN partners p "
        f"ON p.id = o.partner_id WHERE p.name = '{partner}' GROUP BY o.offer_type, o.status",
    )
    assert {(kind, status): n for kind, status, n in rows} == {
        ("welcome_bonus", "claimed"): 2,
        ("welcome_bonus", "expired"): 2,
        ("welcome_bonus", "active"): 1,
        ("welcome_free_play", "expired"): 2,
        ("welcome_free_play", "active"): 3,
    }

    # A window that starts after the first run holds only the second run's offers.
    later = report(http, secret, stamp(now - timedelta(days=5)))
    later_types = {item["offerType"]: item for item in later["types"]}
    assert later["since"] == stamp(now - timedelta(days=5))
    assert [later_types["welcome_bonus"][name] for name in TYPE_KEYS[1:6]] == [3, 2, 0, 1, 1.0]
    assert [later_types["welcome_free_play"][name] for name in TYPE_KEYS[1:6]] == [
        3,
        0,
        0,
        3,
        None,
    ]
    # Only a and b were first classified 7 days or more before now: their week had no plays.
    assert data["uplift"] | {"treatment": None} == {
        "metric": "plays7d",
        "treatment": None,
        "holdout": None,
        "difference": None,
        "low": None,
        "high": None,
        "treatmentUsers": 2,
        "holdoutUsers": 0,
    }
    assert data["uplift"]["treatment"] == 0


def test_the_uplift_compares_first_week_plays_of_treated_and_held_out_users(
    http: httpx.Client, new_key: KeyFactory, stack: Stack
) -> None:
    partner = f"partner-{uuid.uuid4()}"
    key = new_key(partner=partner, holdout=0.5)
    secret = new_key(partner=partner, kind=KeyKind.SECRET, holdout=None)
    now = datetime.now(UTC).replace(microsecond=0)
    ((partner_id,),) = sql(stack.database_url, f"SELECT id FROM partners WHERE name = '{partner}'")
    population = [f"p{n}" for n in range(40)]
    out = {user for user in population if held_out(str(partner_id), "TEST", user, 0.5)}
    assert 2 <= len(out) <= len(population) - 2
    plays: dict[str, int] = {}
    events = []
    for n, user in enumerate(population):
        plays[user] = (1 + n % 2) if user in out else (3 + n % 3)
        week = [play(user, occurredAt=stamp(now - timedelta(days=9))) for _ in range(plays[user])]
        # Plays after the first week do not count.
        late = [play(user, occurredAt=stamp(now - timedelta(days=1)))]
        events += week + late
    track(http, key, events)
    run_analytics(stack, now - timedelta(days=10))
    result = journeys(
        "offers", "holdout", "--partner", partner, "--environment", "test", env=stack.env()
    )
    assert result.stdout.strip().endswith(": 0.5")

    uplift = report(http, secret)["uplift"]

    treated = [plays[user] for user in population if user not in out]
    held = [plays[user] for user in population if user in out]
    mean_treated, mean_held = sum(treated) / len(treated), sum(held) / len(held)
    assert uplift["metric"] == "plays7d"
    assert (uplift["treatmentUsers"], uplift["holdoutUsers"]) == (len(treated), len(held))
    assert uplift["treatment"] == round(mean_treated, 4)
    assert uplift["holdout"] == round(mean_held, 4)
    assert uplift["difference"] == round(mean_treated - mean_held, 4)
    assert uplift["low"] < uplift["difference"] < uplift["high"]
    assert uplift["low"] > 0  # 3-5 plays against 1-2: clearly above zero
