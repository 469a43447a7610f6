"""The three documented authentication errors, over REST and gRPC."""

from __future__ import annotations

import grpc
import httpx
import pytest
from gamifyhost.userjourneys.v1 import user_journeys_service_pb2 as pb
from gamifyhost.userjourneys.v1 import user_journeys_service_pb2_grpc as pb_grpc
from journeys.domain import Environment, KeyKind

from scripts.stack import Stack, journeys
from tests.api.rest import error, success
from tests.conftest import KeyFactory

USERS = "/v1/user-journeys/users"

ENDPOINTS = [
    ("POST", USERS, b'{"externalId":"u"}'),
    ("GET", f"{USERS}/u", None),
    ("GET", f"{USERS}/u/offers", None),
    ("POST", "/v1/user-journeys/events", b"{}"),
    ("POST", "/v1/user-journeys/track", b"{}"),
    ("GET", f"{USERS}/u/timeline", None),
    ("POST", f"{USERS}/u/offers/o/claim", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_missing_key(http: httpx.Client, method: str, path: str, body: bytes | None) -> None:
    error(http.request(method, path, content=body), 401, "Missing X-API-Key header")


@pytest.mark.parametrize(
    "presented",
    [
        "pk_live_00000000000000000000000000000000",  # well formed, never issued
        "pk_test_abc",
        "sk_live_00000000000000000000000000000000",
        "PK_LIVE_00000000000000000000000000000000",
        "pk_live_0000000000000000000000000000000G",
    ],
)
@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_invalid_key(
    http: httpx.Client, method: str, path: str, body: bytes | None, presented: str
) -> None:
    error(
        http.request(method, path, content=body, headers={"X-API-Key": presented}),
        401,
        "Invalid API key",
    )


def test_revoked_key_is_refused_on_every_endpoint(
    http: httpx.Client, stack: Stack, key: str
) -> None:
    success(http.post(USERS, headers={"X-API-Key": key}, json={"externalId": "u"}))

    result = journeys("keys", "revoke", key, env=stack.env())

    assert result.returncode == 0, result.stderr
    for method, path, body in ENDPOINTS:
        error(
            http.request(method, path, content=body, headers={"X-API-Key": key}),
            403,
            "API key has been revoked",
        )


def _stub(target: str) -> pb_grpc.UserJourneysServiceStub:
    return pb_grpc.UserJourneysServiceStub(grpc.insecure_channel(target))


@pytest.mark.parametrize("via", ["direct", "gateway"])
def test_grpc_auth_errors(stack: Stack, key: str, via: str) -> None:
    stub = _stub(stack.direct_target if via == "direct" else stack.gateway_target)
    request = pb.TrackUserRequest(external_id="u")

    with pytest.raises(grpc.RpcError) as missing:
        stub.TrackUser(request)
    with pytest.raises(grpc.RpcError) as invalid:
        stub.TrackUser(request, metadata=(("x-api-key", "pk_test_" + "0" * 32),))
    journeys("keys", "revoke", key, env=stack.env())
    with pytest.raises(grpc.RpcError) as revoked:
        stub.TrackUser(request, metadata=(("x-api-key", key),))

    assert (missing.value.code(), missing.value.details()) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "Missing X-API-Key header",
    )
    assert (invalid.value.code(), invalid.value.details()) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "Invalid API key",
    )
    assert (revoked.value.code(), revoked.value.details()) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "API key has been revoked",
    )


# --- Secret keys (Part C) ---------------------------------------------------------------------

TRACKED_ENDPOINTS = [
    ("POST", USERS, b'{"externalId":"u","country":"NG"}'),
    ("GET", f"{USERS}/u", None),
    ("GET", f"{USERS}/u/offers", None),
    (
        "POST",
        "/v1/user-journeys/events",
        b'{"externalId":"u","category":"GAME_PLAY","eventType":"spin"}',
    ),
    (
        "POST",
        "/v1/user-journeys/track",
        b'{"events":[{"externalId":"u","category":"CAMPAIGN","eventType":"join"}]}',
    ),
    ("GET", f"{USERS}/u/timeline", None),
]


def test_a_secret_key_is_accepted_on_every_documented_endpoint(
    http: httpx.Client, secret_key: str
) -> None:
    assert secret_key.startswith("sk_test_")
    headers = {"X-API-Key": secret_key, "Content-Type": "application/json"}
    for method, path, body in TRACKED_ENDPOINTS:
        success(http.request(method, path, content=body, headers=headers))
    timeline = success(http.get(f"{USERS}/u/timeline", headers=headers))
    assert [event["eventType"] for event in timeline["events"]] == ["join", "spin"]
    # An unknown offer of a known user: the key got past authentication.
    error(
        http.post(f"{USERS}/u/offers/{'0' * 8}-0000-0000-0000-{'0' * 12}/claim", headers=headers),
        404,
        "Offer not found",
    )


def test_a_secret_key_and_a_public_key_of_one_tenant_see_the_same_data(
    http: httpx.Client, new_key: KeyFactory
) -> None:
    public = new_key(partner="both-kinds")
    secret = new_key(partner="both-kinds", kind=KeyKind.SECRET)
    other_environment = new_key(Environment.LIVE, partner="both-kinds", kind=KeyKind.SECRET)

    success(http.post(USERS, headers={"X-API-Key": public}, json={"externalId": "shared"}))

    assert success(http.get(f"{USERS}/shared", headers={"X-API-Key": secret}))["externalId"] == (
        "shared"
    )
    error(
        http.get(f"{USERS}/shared", headers={"X-API-Key": other_environment}), 404, "User not found"
    )


def test_a_revoked_secret_key_is_refused(http: httpx.Client, stack: Stack, secret_key: str) -> None:
    result = journeys("keys", "revoke", secret_key, env=stack.env())

    assert result.returncode == 0, result.stderr
    error(
        http.get(f"{USERS}/u", headers={"X-API-Key": secret_key}), 403, "API key has been revoked"
    )
