"""The offer engine end to end: `journeys analytics run`, GET offers and claim, through the
real Envoy, server and database."""

from __future__ import annotations

import asyncio
import subprocess
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from journeys.domain import Environment
from journeys.storage.database import Database
from journeys.storage.schema import offers as offers_table
from journeys.storage.schema import users
from sqlalchemy import select

from scripts.stack import Stack, journeys
from tests.api.rest import LOWER_UUID, RFC3339_SECONDS, error, headers, success
from tests.api.test_events import play, profile, stamp, track
from tests.conftest import KeyFactory

BASE = "/v1/user-journeys"
OFFER_KEYS = [
    "id",
    "externalId",
    "offerType",
    "gameType",
    "title",
    "description",
    "pointsValue",
    "status",
    "expiresAt",
    "claimedAt",
    "metadata",
]


def run_analytics(stack: Stack, as_of: datetime | None = None) -> str:
    args = ["analytics", "run"] + ([] if as_of is None else ["--as-of", stamp(as_of)])
    result = journeys(*args, env=stack.env())
    assert result.returncode == 0, result.stderr
    return result.stdout


def offers(http: httpx.Client, key: str, external_id: str) -> list[dict[str, Any]]:
    data = success(http.get(f"{BASE}/users/{external_id}/offers", headers={"X-API-Key": key}))
    assert list(data) == ["offers"]
    result: list[dict[str, Any]] = data["offers"]
    return result


def by_type(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["offerType"]: item for item in items}


def claim(http: httpx.Client, key: str, external_id: str, offer_id: str) -> httpx.Response:
    return http.post(
        f"{BASE}/users/{external_id}/offers/{offer_id}/claim", headers={"X-API-Key": key}
    )


def set_catalogue(stack: Stack, partner: str, override: Path) -> subprocess.CompletedProcess[str]:
    """`journeys catalogue set` for the partner's TEST environment."""
    return journeys(
        "catalogue",
        "set",
        "--partner",
        partner,
        "--environment",
        "test",
        str(override),
        env=stack.env(),
    )


def days_ago(days: float) -> str:
    return stamp(datetime.now(UTC) - timedelta(days=days))


def test_a_new_user_gets_the_documented_welcome_offers(
    http: httpx.Client, key: str, stack: Stack
) -> None:
    success(http.post(f"{BASE}/users", headers=headers(key), json={"externalId": "newbie"}))

    run_analytics(stack)
    response = http.get(f"{BASE}/users/newbie/offers", headers={"X-API-Key": key})
    held = by_type(offers(http, key, "newbie"))

    assert set(held) == {"welcome_free_play", "welcome_bonus"}
    spin = held["welcome_free_play"]
    assert list(spin) == OFFER_KEYS
    assert LOWER_UUID.fullmatch(spin["id"])
    assert spin["externalId"] == "newbie"
    assert spin["gameType"] == "spin_the_wheel"
    assert spin["title"] == "Welcome Free Spin"
    assert spin["description"] == "Try a free spin on us — new players get a guaranteed prize!"
    assert spin["pointsValue"] == 50
    assert spin["status"] == "active"
    assert RFC3339_SECONDS.fullmatch(spin["expiresAt"])
    assert spin["claimedAt"] is None
    assert '"claimedAt":null,"metadata":{' in response.text
    # A new tenant has no outcomes: the documented priority decides (Part D).
    assert set(spin["metadata"]) == {"reason", "policy"}
    assert spin["metadata"]["policy"] == "priority"
    assert "Lifecycle stage new" in spin["metadata"]["reason"]
    assert "churn risk 0" in spin["metadata"]["reason"]


def test_a_user_silent_40_days_gets_win_back_offers(
    http: httpx.Client, key: str, stack: Stack
) -> None:
    track(http, key, [play("silent40", occurredAt=days_ago(d)) for d in (60, 50, 40)])

    run_analytics(stack)

    assert set(by_type(offers(http, key, "silent40"))) == {"win_back_play", "return_bonus"}


def test_a_user_silent_70_days_gets_nothing(http: httpx.Client, key: str, stack: Stack) -> None:
    track(http, key, [play("silent70", occurredAt=days_ago(d)) for d in (90, 80, 70)])

    run_analytics(stack)

    assert profile(http, key, "silent70")["lifecycleStage"] == "churned"
    assert offers(http, key, "silent70") == []


def test_a_whale_gets_the_vip_game(http: httpx.Client, key: str, stack: Stack) -> None:
    track(http, key, [play("whale", occurredAt=days_ago(n / 10)) for n in range(60)])

    run_analytics(stack)

    held = by_type(offers(http, key, "whale"))
    assert profile(http, key, "whale")["engagementTier"] == "whale"
    assert "vip_play" in held
    assert len(held) <= 3


def test_a_power_user_gets_double_points(http: httpx.Client, key: str, stack: Stack) -> None:
    items = [play("power", points=100, occurredAt=days_ago(n / 10)) for n in range(35)]
    items += [
        {
            "externalId": "power",
            "category": "CAMPAIGN",
            "eventType": "join",
            "metadata": {"campaignId": f"c{n}"},
        }
        for n in range(3)
    ]
    track(http, key, items)

    run_analytics(stack)

    held = by_type(offers(http, key, "power"))
    assert held["multiplier_bonus"]["metadata"]["multiplier"] == 2
    assert "reason" in held["multiplier_bonus"]["metadata"]


def test_an_at_risk_user_with_high_churn_risk_gets_a_guaranteed_win(
    http: httpx.Client, key: str, stack: Stack
) -> None:
    # Daily logins (no plays: casual tier, so no tier-based offers) until 15 days ago.
    logins = [
        {
            "externalId": "slipping",
            "category": "CUSTOM",
            "eventType": "login",
            "occurredAt": days_ago(d),
        }
        for d in range(15, 45)
    ]
    track(http, key, logins)

    run_analytics(stack)

    data = profile(http, key, "slipping")
    assert (data["lifecycleStage"], data["churnRiskScore"] >= 60) == ("at_risk", True)
    assert set(by_type(offers(http, key, "slipping"))) == {"retention_play"}


def test_a_second_run_at_the_same_instant_creates_nothing(
    http: httpx.Client, key: str, stack: Stack
) -> None:
    success(http.post(f"{BASE}/users", headers=headers(key), json={"externalId": "twice"}))
    as_of = datetime.now(UTC).replace(microsecond=0)
    run_analytics(stack, as_of)
    first = offers(http, key, "twice")

    summary = run_analytics(stack, as_of)

    assert "0 offers created" in summary
    assert offers(http, key, "twice") == first


def test_an_expired_offer_disappears_and_cannot_be_claimed(
    http: httpx.Client, key: str, stack: Stack
) -> None:
    success(http.post(f"{BASE}/users", headers=headers(key), json={"externalId": "late"}))
    # Made 8 days ago with a 7-day validity: past its expiry now, though still stored active.
    run_analytics(stack, datetime.now(UTC) - timedelta(days=8))
    assert offers(http, key, "late") == []
    stale = _offer_ids(stack, key, "late")
    assert stale, "the run did make offers"

    error(claim(http, key, "late", stale[0]), 400, "Offer has expired")
    run_analytics(stack)  # now the job marks them expired
    error(claim(http, key, "late", stale[0]), 400, "Offer has expired")


def test_claim_succeeds_once_and_records_the_points(
    http: httpx.Client, key: str, stack: Stack
) -> None:
    success(http.post(f"{BASE}/users", headers=headers(key), json={"externalId": "claimer"}))
    run_analytics(stack)
    spin = by_type(offers(http, key, "claimer"))["welcome_free_play"]

    claimed = success(claim(http, key, "claimer", spin["id"]))["offer"]

    assert list(claimed) == OFFER_KEYS
    assert claimed["id"] == spin["id"]
    assert claimed["status"] == "claimed"
    assert RFC3339_SECONDS.fullmatch(claimed["claimedAt"])
    latest = success(http.get(f"{BASE}/users/claimer/timeline", headers={"X-API-Key": key}))[
        "events"
    ][0]
    assert (latest["category"], latest["eventType"], latest["points"]) == (
        "POINTS",
        "offer_claimed",
        50,
    )
    assert spin["id"] not in {item["id"] for item in offers(http, key, "claimer")}
    error(claim(http, key, "claimer", spin["id"]), 400, "Offer is no longer active")
    assert profile(http, key, "claimer")["pointsEarned7d"] == 50


def test_claim_of_anything_but_this_users_offer_is_not_found(
    http: httpx.Client, new_key: KeyFactory, stack: Stack
) -> None:
    key, other_partner = new_key(), new_key()
    for external_id in ("owner", "neighbour"):
        success(http.post(f"{BASE}/users", headers=headers(key), json={"externalId": external_id}))
    run_analytics(stack)
    offer_id = offers(http, key, "owner")[0]["id"]

    for user, candidate, with_key in [
        ("owner", "not-a-uuid", key),
        ("owner", str(uuid.uuid4()), key),
        ("neighbour", offer_id, key),
        ("nobody", offer_id, key),
        ("owner", offer_id, other_partner),
    ]:
        error(claim(http, with_key, user, candidate), 404, "Offer not found")
    assert offer_id in {item["id"] for item in offers(http, key, "owner")}, "still active"


def test_two_simultaneous_claims_exactly_one_succeeds(
    http: httpx.Client, key: str, stack: Stack
) -> None:
    success(http.post(f"{BASE}/users", headers=headers(key), json={"externalId": "race"}))
    run_analytics(stack)
    offer_id = offers(http, key, "race")[0]["id"]
    barrier = threading.Barrier(6)
    responses: list[httpx.Response] = []

    def attempt() -> None:
        with httpx.Client(base_url=stack.base_url, timeout=30) as client:
            barrier.wait()
            responses.append(claim(client, key, "race", offer_id))

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    codes = sorted(response.status_code for response in responses)
    assert codes == [200, 400, 400, 400, 400, 400]
    for response in responses:
        if response.status_code == 400:
            error(response, 400, "Offer is no longer active")
    claimed_events = [
        e
        for e in success(http.get(f"{BASE}/users/race/timeline", headers={"X-API-Key": key}))[
            "events"
        ]
        if e["eventType"] == "offer_claimed"
    ]
    assert len(claimed_events) == 1


def test_profile_shows_the_journey_newest_first(http: httpx.Client, key: str, stack: Stack) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    track(
        http,
        key,
        [play("journey", occurredAt=stamp(now - timedelta(days=40, hours=n))) for n in range(5)],
    )

    run_analytics(stack, now - timedelta(days=39))  # 5 events, seen a day ago: active
    run_analytics(stack, now - timedelta(days=20))  # 20 days silent: at risk
    run_analytics(stack, now)  # 40 days silent: churned

    journey = profile(http, key, "journey")["journey"]
    assert journey == [
        {"fromStage": "at_risk", "toStage": "churned", "at": stamp(now)},
        {"fromStage": "active", "toStage": "at_risk", "at": stamp(now - timedelta(days=20))},
        {"fromStage": "new", "toStage": "active", "at": stamp(now - timedelta(days=39))},
    ]


def test_a_partner_catalogue_override_applies_to_its_environment_only(
    http: httpx.Client, new_key: KeyFactory, stack: Stack, tmp_path: Path
) -> None:
    partner = f"partner-{uuid.uuid4()}"
    test_key = new_key(Environment.TEST, partner)
    live_key = new_key(Environment.LIVE, partner)
    override = tmp_path / "override.toml"
    override.write_text(
        '[welcome_free_play]\npoints_value = 75\ntitle = "Big Welcome Spin"\n'
        "[welcome_bonus]\nenabled = false\n"
    )
    result = set_catalogue(stack, partner, override)
    assert result.returncode == 0, result.stderr
    for key in (test_key, live_key):
        success(http.post(f"{BASE}/users", headers=headers(key), json={"externalId": "cat"}))

    run_analytics(stack)

    in_test = by_type(offers(http, test_key, "cat"))
    in_live = by_type(offers(http, live_key, "cat"))
    assert set(in_test) == {"welcome_free_play"}
    assert (in_test["welcome_free_play"]["pointsValue"], in_test["welcome_free_play"]["title"]) == (
        75,
        "Big Welcome Spin",
    )
    assert set(in_live) == {"welcome_free_play", "welcome_bonus"}
    assert in_live["welcome_free_play"]["pointsValue"] == 50


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[no_such_offer]\npoints_value = 1\n", "unknown offer type 'no_such_offer'"),
        ("[vip_play]\nsparkles = true\n", "vip_play.sparkles is not a catalogue field"),
        ('[vip_play]\npoints_value = "lots"\n', "vip_play.points_value has the wrong type"),
        ("[vip_play]\nvalidity_hours = -1\n", "vip_play.validity_hours must not be negative"),
    ],
)
def test_a_bad_catalogue_override_is_refused(
    stack: Stack, new_key: KeyFactory, tmp_path: Path, content: str, message: str
) -> None:
    partner = f"partner-{uuid.uuid4()}"
    new_key(partner=partner)
    override = tmp_path / "bad.toml"
    override.write_text(content)

    result = set_catalogue(stack, partner, override)

    assert result.returncode == 2
    assert message in result.stderr


def _offer_ids(stack: Stack, key: str, external_id: str) -> list[str]:
    """Offer ids of a user whatever their status, read over gRPC-free SQL (GET offers shows
    only active, unexpired ones)."""

    async def read() -> list[str]:
        async with Database(stack.database_url) as database, database.engine.connect() as db:
            rows = await db.execute(
                select(offers_table.c.id)
                .join(users, users.c.id == offers_table.c.user_id)
                .where(users.c.external_id == external_id)
            )
            return [row.id for row in rows]

    del key
    return asyncio.run(read())


def test_offers_come_in_the_catalogue_priority_order(
    http: httpx.Client, new_key: KeyFactory, stack: Stack, tmp_path: Path
) -> None:
    # One run makes both win-back offers at one instant: only the priority can order them.
    partner = f"partner-{uuid.uuid4()}"
    usual, swapped = new_key(Environment.TEST, partner), new_key(Environment.LIVE, partner)
    override = tmp_path / "override.toml"
    override.write_text("[return_bonus]\npriority = 0\n")
    result = journeys(
        "catalogue", "set", "--partner", partner, "--environment", "live", str(override),
        env=stack.env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    users = [f"order-{n}" for n in range(12)]
    for key in (usual, swapped):
        track(http, key, [play(user, occurredAt=days_ago(40)) for user in users])

    run_analytics(stack)

    for user in users:
        assert [o["offerType"] for o in offers(http, usual, user)] == [
            "win_back_play",
            "return_bonus",
        ]
        assert [o["offerType"] for o in offers(http, swapped, user)] == [
            "return_bonus",
            "win_back_play",
        ]


#: Partner values that look like an unclaimed offer's JSON text.
LOOKALIKE = {
    "expiresAt": "2025-01-01T00:00:00Z",
    "metadata": {"expiresAt": "2025-01-01T00:00:00Z", "metadata": {}},
    "text": '"expiresAt":"2025-01-01T00:00:00Z","metadata":{}',
}


def test_claimed_at_is_added_to_offers_only_never_to_partner_values(
    http: httpx.Client, new_key: KeyFactory, stack: Stack, tmp_path: Path
) -> None:
    """`"claimedAt":null` used to be written wherever the text matched on a path holding
    `/offers`: into the metadata of a user whose id starts with `offers`."""
    partner = f"partner-{uuid.uuid4()}"
    key = new_key(Environment.TEST, partner)
    override = tmp_path / "override.toml"
    override.write_text(
        "[welcome_bonus.metadata]\n"
        'expiresAt = "2025-01-01T00:00:00Z"\n'
        'text = "\\"expiresAt\\":\\"2025-01-01T00:00:00Z\\",\\"metadata\\":{}"\n'
        "[welcome_bonus.metadata.metadata]\n"
        'expiresAt = "2025-01-01T00:00:00Z"\n'
    )
    assert set_catalogue(stack, partner, override).returncode == 0
    user = "offers-lookalike"
    sent = {
        "externalId": user,
        "tags": {"expiresAt": "2025-01-01T00:00:00Z"},
        "metadata": LOOKALIKE,
    }
    created = success(http.post(f"{BASE}/users", headers=headers(key), json=sent))
    event = {**play(user), "metadata": LOOKALIKE}
    recorded = success(http.post(f"{BASE}/events", headers=headers(key), json=event))["event"]

    run_analytics(stack)
    held = by_type(offers(http, key, user))
    claimed = success(claim(http, key, user, held["welcome_bonus"]["id"]))["offer"]

    assert created["metadata"] == LOOKALIKE
    assert recorded["metadata"] == LOOKALIKE
    assert profile(http, key, user)["metadata"] == LOOKALIKE
    assert profile(http, key, user)["tags"] == sent["tags"]
    events = success(http.get(f"{BASE}/users/{user}/timeline", headers={"X-API-Key": key}))
    assert [item["metadata"] for item in events["events"]][-1] == LOOKALIKE
    assert set(held) == {"welcome_free_play", "welcome_bonus"}
    for offer in held.values():
        assert list(offer) == OFFER_KEYS
        assert offer["claimedAt"] is None
    bonus_metadata = held["welcome_bonus"]["metadata"]
    explained = ("reason", "policy")
    assert {name: value for name, value in bonus_metadata.items() if name not in explained} == {
        "expiresAt": "2025-01-01T00:00:00Z",
        "metadata": {"expiresAt": "2025-01-01T00:00:00Z"},
        "text": LOOKALIKE["text"],
    }
    assert list(claimed) == OFFER_KEYS
    assert RFC3339_SECONDS.fullmatch(claimed["claimedAt"])
    assert claimed["metadata"] == bonus_metadata
