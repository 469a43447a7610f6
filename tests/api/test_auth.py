"""The three documented authentication errors, over REST and gRPC."""

from __future__ import annotations

import grpc
import httpx
import pytest
from gamifyhost.userjourneys.v1 import user_journeys_service_pb2 as pb
from gamifyhost.userjourneys.v1 import user_journeys_service_pb2_grpc as pb_grpc

from scripts.stack import Stack, journeys
from tests.api.rest import error, success

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
