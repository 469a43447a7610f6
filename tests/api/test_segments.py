"""Segments for a secret key through the real Envoy and server: GET /segments and the
members of GET /users, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import grpc
import httpx
import pytest
from gamifyhost.userjourneys.v1 import segments_service_pb2 as pb
from gamifyhost.userjourneys.v1 import segments_service_pb2_grpc as pb_grpc
from journeys.domain import Environment, KeyKind

from scripts.stack import Stack, migrate, running_stack
from tests.api.rest import RFC3339_SECONDS, error, success
from tests.api.test_events import play, stamp, track
from tests.api.test_offers import run_analytics
from tests.conftest import KeyFactory

BASE = "/v1/user-journeys"
STAGES = ["new", "active", "engaged", "power_user", "at_risk", "churned"]
TIERS = ["casual", "regular", "power_user", "whale"]
MEMBER_KEYS = [
    "externalId",
    "lifecycleStage",
    "engagementTier",
    "engagementScore",
    "churnRiskScore",
    "lastSeenAt",
    "computedAt",
]


def sizes(http: httpx.Client, key: str) -> Any:
    return success(http.get(f"{BASE}/segments", headers={"X-API-Key": key}))


def members(http: httpx.Client, key: str, **query: Any) -> Any:
    return success(http.get(f"{BASE}/users", params=query, headers={"X-API-Key": key}))


class Population(NamedTuple):
    partner: str
    secret: str
    public: str
    as_of: datetime


def everyone_users(http: httpx.Client, key: str) -> list[dict[str, Any]]:
    users: list[dict[str, Any]] = members(http, key)["users"]
    return users


@pytest.fixture
def population(http: httpx.Client, new_key: KeyFactory, stack: Stack) -> Population:
    """A partner with one secret and one public key and nine users in three stages,
    classified by one analytics run as of now."""
    partner = f"partner-{uuid.uuid4()}"
    secret = new_key(partner=partner, kind=KeyKind.SECRET)
    public = new_key(partner=partner)
    now = datetime.now(UTC).replace(microsecond=0)
    items = []
    for number in range(3):
        # First and last seen today: `new`.
        items.append(play(f"new-{number}", occurredAt=stamp(now - timedelta(hours=1))))
        # Last seen 20 days ago: `at_risk` (14 to 29 days).
        items.append(play(f"risk-{number}", occurredAt=stamp(now - timedelta(days=20))))
        # Last seen 40 days ago: `churned`.
        items.append(play(f"gone-{number}", occurredAt=stamp(now - timedelta(days=40))))
    track(http, public, items)
    run_analytics(stack, now)
    return Population(partner, secret, public, now)


def test_public_keys_are_refused(http: httpx.Client, population: Population) -> None:
    public = population.public
    for path in ("/segments", "/users", "/users?lifecycleStage=new"):
        error(
            http.get(BASE + path, headers={"X-API-Key": public}),
            403,
            "This endpoint requires a secret key",
        )


def test_sizes_count_the_stored_segments_of_the_last_run(
    http: httpx.Client, population: Population
) -> None:
    _, secret, _, as_of = population

    data = sizes(http, secret)

    assert list(data) == ["computedAt", "stages", "tiers"]
    assert data["computedAt"] == stamp(as_of)
    assert list(data["stages"]) == STAGES
    assert list(data["tiers"]) == TIERS
    assert data["stages"] == {
        "new": 3,
        "active": 0,
        "engaged": 0,
        "power_user": 0,
        "at_risk": 3,
        "churned": 3,
    }
    assert sum(data["tiers"].values()) == 9


def test_members_are_listed_by_external_id_and_filtered(
    http: httpx.Client, population: Population
) -> None:
    _, secret, _, as_of = population

    everyone = members(http, secret)
    at_risk = members(http, secret, lifecycleStage="at_risk")
    threshold = sorted(user["churnRiskScore"] for user in everyone_users(http, secret))[4]
    risky = members(http, secret, minChurnRisk=threshold)

    assert list(everyone) == ["users", "nextCursor"]
    ids = [user["externalId"] for user in everyone["users"]]
    assert ids == sorted(ids)
    assert len(ids) == 9
    assert everyone["nextCursor"] == ""
    first = everyone["users"][0]
    assert list(first) == MEMBER_KEYS
    assert first["computedAt"] == stamp(as_of)
    assert RFC3339_SECONDS.fullmatch(first["lastSeenAt"])
    assert isinstance(first["engagementScore"], int | float)
    assert [user["externalId"] for user in at_risk["users"]] == ["risk-0", "risk-1", "risk-2"]
    assert {user["lifecycleStage"] for user in at_risk["users"]} == {"at_risk"}
    assert risky["users"] == [
        user for user in everyone["users"] if user["churnRiskScore"] >= threshold
    ]
    tier = first["engagementTier"]
    same_tier = members(http, secret, engagementTier=tier, lifecycleStage=first["lifecycleStage"])
    assert first in same_tier["users"]
    assert all(user["engagementTier"] == tier for user in same_tier["users"])


def test_paging_with_the_cursor_visits_everyone_once(
    http: httpx.Client, population: Population
) -> None:
    secret = population.secret
    seen: list[str] = []
    cursor = ""
    pages = 0
    while True:
        page = members(http, secret, limit=2, **({"cursor": cursor} if cursor else {}))
        seen += [user["externalId"] for user in page["users"]]
        pages += 1
        cursor = page["nextCursor"]
        if not cursor:
            break

    assert pages == 5
    assert seen == sorted(seen)
    assert len(set(seen)) == 9


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("lifecycleStage=sleeping", "lifecycleStage must be one of"),
        ("engagementTier=gold", "engagementTier must be one of"),
        ("minChurnRisk=101", "minChurnRisk must be between 0 and 100"),
        ("minChurnRisk=-1", "minChurnRisk must be between 0 and 100"),
        ("limit=0", "limit must be between 1 and 1000"),
        ("limit=1001", "limit must be between 1 and 1000"),
        ("cursor=bm90LW91cnM", "cursor is not one this API returned"),
    ],
)
def test_bad_parameters_are_named(
    http: httpx.Client, secret_key: str, query: str, message: str
) -> None:
    response = http.get(f"{BASE}/users?{query}", headers={"X-API-Key": secret_key})

    assert response.status_code == 400, response.text
    assert response.json()["message"].startswith(f"Invalid request body: {message}")


def test_other_tenants_see_none_of_it(
    http: httpx.Client, new_key: KeyFactory, stack: Stack, population: Population
) -> None:
    other_partner = new_key(kind=KeyKind.SECRET)
    # The same partner's LIVE environment is another tenant.
    other_environment = stack.new_key(population.partner, Environment.LIVE, KeyKind.SECRET)
    assert members(http, population.secret)["users"]

    for key in (other_partner, other_environment):
        assert members(http, key) == {"users": [], "nextCursor": ""}
        assert sum(sizes(http, key)["stages"].values()) == 0


def test_grpc_clients_get_the_same_through_envoy_and_direct(
    stack: Stack, population: Population
) -> None:
    _, secret, public, as_of = population
    for target in (stack.gateway_target, stack.direct_target):
        with grpc.insecure_channel(target) as channel:
            stub = pb_grpc.SegmentsServiceStub(channel)
            metadata = (("x-api-key", secret),)
            counts = stub.GetSegmentSizes(pb.GetSegmentSizesRequest(), metadata=metadata)
            page = stub.ListSegmentMembers(
                pb.ListSegmentMembersRequest(lifecycle_stage="churned", limit=2),
                metadata=metadata,
            )
            with pytest.raises(grpc.RpcError) as refused:
                stub.GetSegmentSizes(pb.GetSegmentSizesRequest(), metadata=(("x-api-key", public),))

        assert counts.computed_at.string_value == stamp(as_of)
        assert (counts.stages.churned, counts.stages.at_risk) == (3, 3)
        assert [user.external_id for user in page.users] == ["gone-0", "gone-1"]
        assert page.next_cursor
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert refused.value.details() == "This endpoint requires a secret key"


@pytest.fixture(scope="module")
def unclassified(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack on a database no analytics run has touched (SQLite)."""
    directory: Path = tmp_path_factory.mktemp("unclassified")
    url = f"sqlite+aiosqlite:///{directory / 'journeys.db'}"
    migrate(url)
    with running_stack(url) as running:
        yield running


def test_before_the_first_run_computed_at_is_null_and_nobody_is_listed(
    unclassified: Stack,
) -> None:
    secret = unclassified.new_key("fresh", Environment.TEST, KeyKind.SECRET)
    public = unclassified.new_key("fresh", Environment.TEST)
    with httpx.Client(base_url=unclassified.base_url, timeout=30) as http:
        track(http, public, [play("someone")])

        data = sizes(http, secret)
        listed = members(http, secret)

    assert data["computedAt"] is None
    assert data["stages"] == dict.fromkeys(STAGES, 0)
    assert data["tiers"] == dict.fromkeys(TIERS, 0)
    assert listed == {"users": [], "nextCursor": ""}
